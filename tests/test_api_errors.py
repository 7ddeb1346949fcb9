"""Every bad input gets the right status, a JSON error with a clear message, and changes nothing."""
import pytest
import requests

from fsm.store import Claimant
from tests.apiserver import ADMIN_TOKEN, api, start  # noqa: F401 - the fixture

JSON = {"Content-Type": "application/json"}

#: case -> (status, code, words the message must contain, request keyword arguments)
PUBLISH_CASES = {
    "no_token": (401, "unauthorized", "token", dict(json={"function": "echo"})),
    "bad_token": (401, "unauthorized", "not valid", dict(token="nope-nope", json={"function": "echo"})),
    "bad_scheme": (401, "unauthorized", "Bearer", dict(headers={"Authorization": "Basic abc"},
                                                       json={"function": "echo"})),
    "general_user": (403, "forbidden", "business role", dict(role="general", json={"function": "echo"})),
    "business_custom_code": (403, "forbidden", "module:function",
                             dict(role="business", json={"function": "os:system", "args": ["touch /tmp/x"]})),
    "unknown_function": (404, "function_not_found", "no_such_function",
                         dict(role="admin", json={"function": "no_such_function"})),
    "unknown_version": (404, "function_not_found", "builtin", dict(role="admin", json={"function": "echo",
                                                                                        "version": "v9"})),
    "malformed_json": (400, "malformed_json", "malformed", dict(role="admin", data='{"function": ', headers=JSON)),
    "not_json": (415, "unsupported_media_type", "application/json",
                 dict(role="admin", data="function=echo",
                      headers={"Content-Type": "application/x-www-form-urlencoded"})),
    "wrong_type": (422, "invalid", "priority", dict(role="admin", json={"function": "echo", "priority": "high"})),
    "bool_as_int": (422, "invalid", "max_retries", dict(role="admin", json={"function": "echo", "max_retries": True})),
    "unknown_field": (422, "invalid", "colour", dict(role="admin", json={"function": "echo", "colour": "red"})),
    "unknown_requires": (422, "invalid", "tpus", dict(role="admin", json={"function": "echo",
                                                                           "requires": {"tpus": 2}})),
    "missing_function": (422, "invalid", "function", dict(role="admin", json={"args": [1]})),
    "not_an_object": (422, "invalid", "JSON object", dict(role="admin", json="echo")),
    "quorum_over_redundancy": (422, "invalid", "quorum", dict(role="admin", json={"function": "echo", "redundancy": 2,
                                                                                   "quorum": 3})),
    "bad_id": (422, "invalid", "id", dict(role="admin", json={"function": "echo", "id": "$where"})),
    "empty_bulk": (422, "invalid", "empty", dict(role="admin", json=[])),
    "bad_bulk_item": (422, "invalid", "task [2]", dict(role="admin", json=[{"function": "echo"}] * 2 + [
        {"function": "echo", "args": 3}])),
    "unknown_function_in_bulk": (404, "function_not_found", "task [1]", dict(role="admin", json=[
        {"function": "echo"}, {"function": "nope"}])),
    "same_id_twice_in_bulk": (422, "invalid", "twice", dict(role="admin", json=[{"function": "echo", "id": "a1"},
                                                                                 {"function": "echo", "id": "a1"}])),
    "huge_args": (413, "too_large", "limit", dict(role="admin", json={"function": "echo", "args": ["x" * (2 << 20)]})),
    "body_of_20_mb": (413, "too_large", "limit", dict(role="admin", data=b"[" + b"1," * (10 << 20) + b"1]",
                                                     headers=JSON)),
}


@pytest.mark.parametrize("case", sorted(PUBLISH_CASES))
def test_bad_publish_is_refused_clearly_and_changes_nothing(api, case):
    status, code, words, kwargs = PUBLISH_CASES[case]
    api.publish({"function": "noop", "id": "already-there"})
    before = api.snapshot()
    resp = api.call("POST", "/tasks", kwargs.pop("role", None), **kwargs)
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"] == "application/json"
    error = resp.json()["error"]
    assert error["code"] == code and words in error["message"], error
    assert api.snapshot() == before


def test_a_taken_id_is_a_conflict_and_a_bulk_with_one_stores_nothing(api):
    api.publish({"function": "noop", "id": "job-1"})
    before = api.snapshot()
    resp = api.call("POST", "/tasks", "admin", json=[{"function": "noop", "id": "job-2"},
                                                     {"function": "noop", "id": "job-1"}])
    assert resp.status_code == 409 and "job-1" in resp.json()["error"]["message"]
    assert api.snapshot() == before


def test_401_says_how_to_authenticate(api):
    resp = api.call("GET", "/tasks")
    assert resp.status_code == 401 and resp.headers["WWW-Authenticate"].startswith("Bearer")


def test_unknown_task_is_404_for_every_verb(api):
    before = api.snapshot()
    for method, path, kwargs in (("GET", "/tasks/nope", {}), ("PATCH", "/tasks/nope", {"json": {"priority": 1}}),
                                 ("POST", "/tasks/nope/cancel", {}), ("POST", "/tasks/nope/requeue", {})):
        resp = api.call(method, path, "admin", **kwargs)
        assert resp.status_code == 404, (method, path, resp.text)
        assert resp.json()["error"]["code"] == "task_not_found" and "nope" in resp.json()["error"]["message"]
    assert api.call("GET", "/workers/nope", "admin").status_code == 404
    assert api.call("POST", "/workers/nope/drain", "admin").status_code == 404
    assert api.snapshot() == before


def test_illegal_transitions_are_409_and_change_nothing(api):
    done = api.publish({"function": "noop"})["id"]
    claim = api.store.tasks.claim_next(Claimant("w1"))
    api.store.tasks.finish_attempt(done, claim.attempt_id, "succeeded", result=None, worker="w1")
    queued = api.publish({"function": "noop"})["id"]
    before = api.snapshot()
    for method, path, kwargs in (("POST", f"/tasks/{done}/cancel", {}), ("POST", f"/tasks/{done}/requeue", {}),
                                 ("PATCH", f"/tasks/{done}", {"json": {"priority": 3}}),
                                 ("POST", f"/tasks/{queued}/requeue", {})):
        resp = api.call(method, path, "admin", **kwargs)
        assert resp.status_code == 409, (method, path, resp.text)
        assert resp.json()["error"]["code"] == "invalid_transition"
        assert "succeeded" in resp.json()["error"]["message"] or "queued" in resp.json()["error"]["message"]
    assert api.snapshot() == before


@pytest.mark.parametrize("body, status, words", [
    ({"priority": "high"}, 422, "priority"),
    ({"is_enabled": "no"}, 422, "is_enabled"),
    ({"status": "succeeded"}, 422, "status"),
    ({}, 422, "nothing"),
    ([1], 422, "object"),
])
def test_bad_patch_is_refused(api, body, status, words):
    task_id = api.publish({"function": "noop"})["id"]
    before = api.snapshot()
    resp = api.call("PATCH", f"/tasks/{task_id}", "super", json=body)
    assert resp.status_code == status and words in resp.json()["error"]["message"], resp.text
    assert api.call("PATCH", f"/tasks/{task_id}", "business", json={"priority": 1}).status_code == 403
    assert api.snapshot() == before


@pytest.mark.parametrize("query, words", [
    ("status=bogus", "status"), ("limit=501", "limit"), ("limit=x", "limit"), ("skip=-1", "skip"),
    ("sort=args", "sort"), ("order=up", "order"), ("colour=red", "colour"), ("skip=1&offset=2", "offset"),
])
def test_bad_listing_parameters_are_422(api, query, words):
    resp = api.call("GET", f"/tasks?{query}", "admin")
    assert resp.status_code == 422 and words in resp.json()["error"]["message"], resp.text


def test_unknown_routes_and_methods(api):
    resp = api.call("GET", "/nowhere", "admin")
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found"
    resp = api.call("DELETE", "/tasks", "admin")
    assert resp.status_code == 405 and resp.json()["error"]["code"] == "method_not_allowed"
    assert "GET" in resp.headers["Allow"] and "POST" in resp.headers["Allow"]


def test_bad_user_bodies(api):
    before = api.snapshot()
    for body, status in (({"name": "x1", "role": "root"}, 422), ({"name": 5, "role": "general"}, 422),
                         ({"name": "x2", "role": "general", "password": ["a"]}, 422),
                         ({"name": "x3", "role": "general", "admin": True}, 422),
                         ({"name": "u-super", "role": "general"}, 409)):
        resp = api.call("POST", "/users", "admin", json=body)
        assert resp.status_code == status, (body, resp.text)
    assert api.call("POST", "/users", "super", json={"name": "x4", "role": "general"}).status_code == 403
    assert api.snapshot() == before


def test_a_chunked_body_over_the_limit_is_refused_as_it_arrives(store, db_uri, db_name):
    small = start(store, db_uri, db_name, max_body_bytes=64 << 10)
    try:
        def chunks():
            for _ in range(64):
                yield b" " * 4096
        resp = requests.post(f"{small.url}/tasks", data=chunks(), timeout=30,
                             headers={**JSON, "Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert resp.status_code == 413 and resp.json()["error"]["code"] == "too_large"
        assert str(64 << 10) in resp.json()["error"]["message"]
        # a body just under the limit is read and answered normally
        ok = small.call("POST", "/tasks", "admin", data=b'{"function": "noop"}' + b" " * (60 << 10), headers=JSON)
        assert ok.status_code == 201, ok.text
    finally:
        small.server.stop()
