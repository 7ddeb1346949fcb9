"""The HTTP API over a real waitress server: publish, read, act, and every bad input refused
with the right status, a clear message, and the database unchanged."""

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

import web
from fsm.store import Claimant, Store
from scheduler.server import Server
from scheduler.config import ServerConfig
from scheduler.housekeeping import tick
from scheduler.leader_loop import Leader

ADMIN = "admin-token-for-tests"


@pytest.fixture
def server(db, db_uri):
    store = Store(db)
    http = Server(ServerConfig(mongo_uri=db_uri, admin_token=ADMIN, run_scheduler=False, port=0), store,
                  extensions=(web.init_app,)).start()
    url = f"{http.url}/api/v1"
    tokens = {"admin": ADMIN, **{role: store.users.add(f"u-{role}", role) for role in ("super", "business",
                                                                                     "general")}}
    yield url, tokens, store
    http.stop()


def call(method, url, token=None, **kwargs):
    headers = kwargs.pop("headers", {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return requests.request(method, url, headers=headers, timeout=30, **kwargs)


def snapshot(store):
    return {name: sorted(map(repr, store.db[name].find({}, {"last_seen": 0}))) for name in ("tasks", "users",
                                                                                           "functions")}


def test_publish_single_and_bulk_then_read(server):
    url, tokens, store = server
    one = call("POST", f"{url}/tasks", tokens["business"], json={"function": "echo", "args": [1], "priority": 5})
    assert one.status_code == 201
    body = one.json()
    assert body["status"] == "queued" and body["version"] == "builtin" and body["priority"] == 5
    bulk = call("POST", f"{url}/tasks", tokens["super"], json=[{"function": "noop"} for _ in range(25)])
    assert bulk.status_code == 201 and bulk.json()["total"] == 25
    got = call("GET", f"{url}/tasks/{body['id']}", tokens["business"]).json()
    assert got["id"] == body["id"] and got["status"] == "queued" and got["result"] is None
    assert got["history"][0]["to"] == "queued" and got["attempts"] == []
    # business users see their own tasks only; super-users see all
    assert call("GET", f"{url}/tasks", tokens["business"]).json()["total"] == 1
    assert call("GET", f"{url}/tasks?limit=10", tokens["super"]).json()["total"] == 26
    assert len(call("GET", f"{url}/tasks?limit=10", tokens["super"]).json()["items"]) == 10
    assert call("GET", f"{url}/tasks/{bulk.json()['items'][0]['id']}", tokens["business"]).status_code == 403


@pytest.mark.parametrize("case", [
    "no_token", "bad_token", "bad_scheme", "wrong_role", "unknown_function", "malformed_json", "wrong_types",
    "unknown_fields", "huge_body", "not_json", "empty_bulk", "bad_bulk_item", "quorum_over_redundancy",
    "bool_as_int", "huge_args", "custom_code_by_business", "bad_id"])
def test_bad_inputs_get_clear_errors_and_change_nothing(server, case):
    url, tokens, store = server
    before = snapshot(store)
    cases = {
        "no_token": (401, dict(json={"function": "echo"})),
        "bad_token": (401, dict(token="nope", json={"function": "echo"})),
        "bad_scheme": (401, dict(headers={"Authorization": "Basic abc"}, json={"function": "echo"})),
        "wrong_role": (403, dict(token=tokens["general"], json={"function": "echo"})),
        "unknown_function": (404, dict(token=ADMIN, json={"function": "no_such_function"})),
        "malformed_json": (400, dict(token=ADMIN, data="{\"function\": ", headers={
            "Content-Type": "application/json"})),
        "wrong_types": (422, dict(token=ADMIN, json={"function": "echo", "priority": "high"})),
        "unknown_fields": (422, dict(token=ADMIN, json={"function": "echo", "colour": "red"})),
        "huge_body": (413, dict(token=ADMIN, data=b"[" + b"1," * (10 << 20) + b"1]", headers={
            "Content-Type": "application/json"})),
        "not_json": (415, dict(token=ADMIN, data="function=echo", headers={
            "Content-Type": "application/x-www-form-urlencoded"})),
        "empty_bulk": (422, dict(token=ADMIN, json=[])),
        "bad_bulk_item": (422, dict(token=ADMIN, json=[{"function": "echo"}, {"function": "echo", "args": 3}])),
        "quorum_over_redundancy": (422, dict(token=ADMIN, json={"function": "echo", "redundancy": 2, "quorum": 3})),
        "bool_as_int": (422, dict(token=ADMIN, json={"function": "echo", "max_retries": True})),
        "huge_args": (413, dict(token=ADMIN, json={"function": "echo", "args": ["x" * (2 << 20)]})),
        "custom_code_by_business": (403, dict(token=tokens["business"], json={"function": "os:system",
                                                                              "args": ["touch /tmp/x"]})),
        "bad_id": (422, dict(token=ADMIN, json={"function": "echo", "id": "$where"})),
    }
    status, kwargs = cases[case]
    token = kwargs.pop("token", None)
    resp = call("POST", f"{url}/tasks", token, **kwargs)
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert error["code"] and len(error["message"]) > 10
    assert snapshot(store) == before


def test_errors_name_the_problem(server):
    url, tokens, _ = server
    msg = call("POST", f"{url}/tasks", ADMIN, json={"function": "echo", "colour": 1}).json()["error"]["message"]
    assert "colour" in msg
    msg = call("POST", f"{url}/tasks", ADMIN, json=[{"function": "echo"}, {"function": "x y"}]).json()["error"]
    assert "task [1]" in msg["message"]
    assert call("GET", f"{url}/tasks/nope", ADMIN).status_code == 404
    assert call("GET", f"{url}/nowhere", ADMIN).json()["error"]["code"] == "not_found"
    assert call("DELETE", f"{url}/tasks", ADMIN).status_code == 405
    assert call("GET", f"{url}/tasks?status=bogus", ADMIN).status_code == 422


def test_patch_cancel_requeue_and_illegal_transitions(server):
    url, tokens, store = server
    low = call("POST", f"{url}/tasks", ADMIN, json={"function": "noop", "priority": 1}).json()["id"]
    high = call("POST", f"{url}/tasks", ADMIN, json={"function": "noop", "priority": 5}).json()["id"]
    # re-prioritising takes effect on the next claim
    assert call("PATCH", f"{url}/tasks/{low}", tokens["business"], json={"priority": 9}).status_code == 403
    resp = call("PATCH", f"{url}/tasks/{low}", tokens["super"], json={"priority": 9})
    assert resp.status_code == 200 and resp.json()["priority"] == 9
    assert call("PATCH", f"{url}/tasks/{low}", tokens["super"], json={"status": "succeeded"}).status_code == 422
    claim = store.tasks.claim_next(Claimant("w"))
    assert claim.task_id == low
    store.tasks.finish_attempt(low, claim.attempt_id, "succeeded", result=None, worker="w")
    # disabling: not claimed until enabled
    assert call("PATCH", f"{url}/tasks/{high}", tokens["super"], json={"is_enabled": False}).status_code == 200
    assert store.tasks.claim_next(Claimant("w")) is None
    # a succeeded task cannot be cancelled or changed: 409, unchanged
    before = store.tasks.get(low)
    assert call("POST", f"{url}/tasks/{low}/cancel", ADMIN).status_code == 409
    assert call("PATCH", f"{url}/tasks/{low}", ADMIN, json={"priority": 1}).status_code == 409
    assert store.tasks.get(low) == before
    # cancel and requeue
    assert call("POST", f"{url}/tasks/{high}/cancel", ADMIN).json()["status"] == "cancelled"
    assert call("POST", f"{url}/tasks/{high}/requeue", tokens["business"]).status_code == 403
    assert call("POST", f"{url}/tasks/{high}/requeue", tokens["super"]).json()["status"] == "queued"


def test_users_workers_stats_metrics_openapi(server):
    url, tokens, store = server
    assert call("POST", f"{url}/users", tokens["super"], json={"name": "x", "role": "general"}).status_code == 403
    made = call("POST", f"{url}/users", ADMIN, json={"name": "carol", "role": "business", "password": "s3cret-pw"})
    assert made.status_code == 201
    assert call("GET", f"{url}/stats", made.json()["token"]).status_code == 200
    assert call("POST", f"{url}/users", ADMIN, json={"name": "carol", "role": "business"}).status_code == 409
    assert call("POST", f"{url}/users", ADMIN, json={"name": "dave", "role": "root"}).status_code == 422
    for body in ([{"function": "echo"}] * 3, {"function": "fail"}):
        call("POST", f"{url}/tasks", ADMIN, json=body)
    store.db.workers.insert_one({"_id": "m1", "state": "online", "cpu": {"percent": 12.5}, "mem": {"percent": 40},
                                 "gpus": [{"index": 0, "util": 77, "mem_used": 1, "mem_total": 2, "temp": 60}]})
    assert call("GET", f"{url}/workers", tokens["general"]).json()["items"][0]["name"] == "m1"
    assert call("POST", f"{url}/workers/m1/drain", tokens["super"]).status_code == 403
    assert call("POST", f"{url}/workers/m1/drain", ADMIN).json()["state"] == "draining"
    stats = call("GET", f"{url}/stats", tokens["general"]).json()
    assert stats["counts"]["queued"] == 4 and stats["queue_depth"] == 4
    text = call("GET", f"{url}/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    echo = [s.value for s in families["suanwang_tasks"].samples if s.labels == {"status": "queued",
                                                                               "function": "echo"}]
    assert echo == [store.db.tasks.count_documents({"function": "echo", "status": "queued"})]
    gpu = families["suanwang_gpu_utilization_percent"].samples[0]
    assert gpu.labels == {"worker": "m1", "gpu": "0"} and gpu.value == 77
    doc = call("GET", f"{url}/openapi.json").json()
    assert doc["openapi"].startswith("3.") and {"/tasks", "/tasks/{task_id}", "/tasks/{task_id}/cancel",
                                                "/workers", "/functions", "/stats"} <= set(doc["paths"])
    assert "post" in doc["paths"]["/tasks"] and "patch" in doc["paths"]["/tasks/{task_id}"]
    assert call("GET", f"{url}/healthz").json()["status"] == "ok"


def test_housekeeping_tick_requeues_expired_and_promotes_due(store):
    from fsm.store.spec import validate

    lost, later = store.tasks.insert([store.tasks.document(validate({"function": "noop", "retry_backoff_s": 0}), "t"),
                                      store.tasks.document(validate({"function": "noop", "delay_s": 0}), "t")])
    store.tasks.claim_next(Claimant("gone", lease_s=0.01))
    store.db.workers.insert_one({"_id": "gone", "state": "online", "last_seen": store.db.client.admin.command(
        "hello")["localTime"].replace(year=2000)})
    import time
    time.sleep(0.05)
    result = tick(store, offline_after_s=5)
    assert result["offline"] == ["gone"] and result["lost"] == 1 and result["due"] == 1
    assert store.tasks.get(lost)["status"] == "queued" and store.tasks.get(later)["status"] == "queued"
    assert tick(store, offline_after_s=5) == {"offline": [], "lost": 0, "due": 0}  # idempotent


def test_exactly_one_leader(store, db_uri):
    a = Leader(store, lease_s=30)
    b = Leader(store, lease_s=30)
    a.step()
    b.step()
    try:
        assert a.is_leader and not b.is_leader
        assert a.runner is not None and b.runner is None
        a.stop()  # releases the lease
        b.step()
        assert b.is_leader
    finally:
        a.stop()
        b.stop()


def test_a_browser_session_cannot_change_anything_through_the_api_without_csrf(server):
    import re as _re

    url, tokens, store = server
    store.users.add("browser", "super", "browser-password")
    base = url.rsplit("/api/v1", 1)[0]
    web = requests.Session()
    csrf = _re.search(r'name="csrf_token" value="([^"]+)"', web.get(f"{base}/login").text).group(1)
    web.post(f"{base}/login", data={"name": "browser", "password": "browser-password", "csrf_token": csrf})
    assert web.get(f"{url}/tasks", timeout=10).status_code == 200  # reading with the session is fine
    before = store.db.tasks.count_documents({})
    forged = web.post(f"{url}/tasks", json={"function": "echo"}, timeout=10)
    assert forged.status_code == 403 and "X-CSRFToken" in forged.json()["error"]["message"]
    assert store.db.tasks.count_documents({}) == before
    page_token = _re.search(r'name="csrf-token" content="([^"]+)"', web.get(f"{base}/tasks").text).group(1)
    ok = web.post(f"{url}/tasks", json={"function": "echo"}, headers={"X-CSRFToken": page_token}, timeout=10)
    assert ok.status_code == 201
