"""What a hostile or careless caller sends: deep JSON, unknown query parameters, priorities above
a role's cap; and the worker filter that must find failed attempts too. A real server over a real mongod."""
from __future__ import annotations

import json

import pytest
import requests

from fsm.store.tasks import Claimant
from scheduler.request_guard import MAX_JSON_DEPTH, json_depth
from tests.apiserver import api  # noqa: F401 (a fixture)


def nested(depth: int) -> str:
    return '{"function": "echo", "args": [' + "[" * (depth - 2) + "]" * (depth - 2) + "]}"


@pytest.mark.parametrize("depth", [65, 200, 900, 1000, 5000, 100_000])
def test_deep_json_gets_422_naming_the_limit(api, depth):
    before = api.snapshot()
    for method, path in (("POST", "/tasks"), ("POST", "/users"), ("POST", "/functions"), ("POST", "/schedules")):
        resp = api.call(method, path, "admin", data=nested(depth), headers={"Content-Type": "application/json"})
        assert resp.status_code == 422, (path, resp.text[:300])
        err = resp.json()["error"]
        assert err["code"] == "too_deep" and str(MAX_JSON_DEPTH) in err["message"]
    assert api.snapshot() == before


def test_json_at_the_limit_is_accepted(api):
    resp = api.call("POST", "/tasks", "admin", data=nested(MAX_JSON_DEPTH),
                    headers={"Content-Type": "application/json"})
    assert resp.status_code == 201, resp.text


def test_depth_counts_brackets_outside_strings_only():
    assert json_depth(b'"[[[["') == 0
    assert json_depth(b'{"a": "]]}", "b": [1, {"c": "\\"[["}]}') == 3
    assert json_depth(b'[' * 70 + b'"unterminated') == 70


@pytest.mark.parametrize("path", ["/tasks", "/workers", "/functions", "/schedules", "/users", "/repos",
                                  "/subscriptions", "/deliveries", "/stats", "/stats/resources"])
def test_every_list_endpoint_refuses_unknown_query_parameters(api, path):
    resp = api.call("GET", f"{path}?stauts=failed", "admin")
    assert resp.status_code == 422, resp.text
    assert "stauts" in resp.json()["error"]["message"]
    # without a token the answer is 401 whatever the parameters: nothing to probe
    assert api.call("GET", f"{path}?stauts=failed").status_code == 401


def test_the_priority_a_role_may_set_is_capped(api):
    before = api.snapshot()
    resp = api.call("POST", "/tasks", "business", json={"function": "echo", "priority": 1_000_000})
    assert resp.status_code == 403 and "100" in resp.json()["error"]["message"], resp.text
    bulk = [{"function": "noop"}, {"function": "noop", "priority": 101}]
    resp = api.call("POST", "/tasks", "business", json=bulk)
    assert resp.status_code == 403 and "[1]" in resp.json()["error"]["message"]
    resp = api.call("POST", "/schedules", "business", json={"id": "s1", "trigger": {"type": "interval", "seconds": 60},
                                                            "task": {"function": "noop", "priority": 5000}})
    assert resp.status_code == 403, resp.text
    assert api.snapshot() == before
    assert api.publish({"function": "echo", "priority": 100}, "business")["priority"] == 100
    assert api.publish({"function": "echo", "priority": 1_000_000}, "super")["priority"] == 1_000_000


def test_filter_by_worker_finds_tasks_whose_attempts_there_failed(api):
    # Given a task whose attempt on w1 failed (and was retried elsewhere), one that ran on w2 only,
    failed_there = api.publish({"function": "echo", "max_retries": 2, "retry_backoff_s": 0})["id"]
    claim = api.store.tasks.claim_next(Claimant("w1", distinct_grace_s=-1))
    api.store.tasks.finish_attempt(claim.task_id, claim.attempt_id, "failed", error="boom", worker="w1")
    other = api.publish({"function": "echo", "priority": -5})["id"]
    for _ in range(2):
        claim = api.store.tasks.claim_next(Claimant("w2", distinct_grace_s=-1))
        api.store.tasks.finish_attempt(claim.task_id, claim.attempt_id, "succeeded", result=1, worker="w2")
    # and one whose failed attempt on w1 was before a manual re-queue,
    requeued = api.publish({"function": "echo", "max_retries": 0, "priority": -9})["id"]
    claim = api.store.tasks.claim_next(Claimant("w1", distinct_grace_s=-1))
    assert claim.task_id == requeued
    api.store.tasks.finish_attempt(claim.task_id, claim.attempt_id, "failed", error="boom", worker="w1")
    assert api.call("POST", f"/tasks/{requeued}/requeue", "admin").status_code == 200
    # when the tasks are filtered by worker w1, then both show, and the other does not
    found = {t["id"] for t in api.call("GET", "/tasks?worker=w1", "admin").json()["items"]}
    assert found == {failed_there, requeued}
    assert {t["id"] for t in api.call("GET", "/tasks?worker=w2", "admin").json()["items"]} == {failed_there, other}
    # and the query walks an index, never the whole collection
    plan = api.store.db.tasks.find({"$or": [{"attempts.worker": "w1"}, {"previous_attempts.worker": "w1"}]}) \
        .sort([("created_at", -1)]).explain()
    assert "COLLSCAN" not in json.dumps(plan["queryPlanner"]["winningPlan"])


def test_metrics_and_healthz_answer_at_the_root_too(api):
    for path in ("/metrics", "/api/v1/metrics"):
        resp = requests.get(api.base + path, timeout=10)
        assert resp.status_code == 200 and "suanwang_" in resp.text
    for path in ("/healthz", "/api/v1/healthz"):
        resp = requests.get(api.base + path, timeout=10)
        assert resp.status_code == 200 and resp.json()["status"] == "ok"


def test_the_priority_caps_are_a_server_setting(store, db_uri, db_name):
    from suanwang.cli import _priority_caps
    from tests.apiserver import start

    assert _priority_caps(()) == {"business": 100, "general": 100}
    assert _priority_caps(("business=5", "general=none", "super=1000")) == {"business": 5, "super": 1000}
    running = start(store, db_uri, db_name, priority_caps=_priority_caps(("business=5",)))
    try:
        assert running.call("POST", "/tasks", "business", json={"function": "noop", "priority": 6}).status_code == 403
        assert running.call("POST", "/tasks", "business", json={"function": "noop", "priority": 5}).status_code == 201
    finally:
        running.server.stop()
