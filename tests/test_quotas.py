"""Quotas against a real server and mongod (and a real worker for the running limit): tasks waiting
(429 with Retry-After, nothing written), a group's members together, bytes stored, tasks running
enforced at claim while other users' work goes on, and the refusals of bad limits."""
from __future__ import annotations

import threading
import time

import pytest

from tests.apiserver import start
from tests.procs import wait_for

BOB, SUE, GUS = "u-business", "u-super", "u-general"


@pytest.fixture
def api(store, db_uri, db_name):
    running = start(store, db_uri, db_name, run_scheduler=True, leader_lease_s=2)
    yield running
    running.server.stop()


def put(api, path, body, role="admin"):
    return api.call("PUT", path, role, json=body)


def waiting(store, owner):
    return store.db.tasks.count_documents({"submitted_by": owner})


def test_a_queued_quota_answers_429_with_retry_after_and_writes_nothing(api, store):
    resp = put(api, f"/users/{BOB}/quotas", {"queued": 3})
    assert resp.status_code == 200, resp.text
    assert resp.json()["queued"] == 3 and resp.json()["running"] is None
    assert api.call("POST", "/tasks", "business", json=[{"function": "noop"}] * 2).status_code == 201

    # A bulk publish counts every item: two more would make four
    resp = api.call("POST", "/tasks", "business", json=[{"function": "noop"}] * 2)
    assert resp.status_code == 429 and int(resp.headers["Retry-After"]) >= 1
    err = resp.json()["error"]
    assert err["code"] == "quota_exceeded" and (err["quota"], err["limit"], err["used"]) == ("queued", 3, 2)
    assert "queued quota of user u-business" in err["message"]
    assert waiting(store, BOB) == 2  # nothing of the refused request was written

    # One more fits; other users are not bound by it
    assert api.call("POST", "/tasks", "business", json={"function": "noop"}).status_code == 201
    assert api.call("POST", "/tasks", "super", json=[{"function": "noop"}] * 5).status_code == 201
    usage = api.call("GET", f"/users/{BOB}/quotas", "business").json()["usage"]
    assert usage == {"queued": 3, "running": 0, "data_bytes": 0}
    # an admin lifts it (null: no limit)
    assert put(api, f"/users/{BOB}/quotas", {"queued": None}).json()["queued"] is None
    assert api.call("POST", "/tasks", "business", json={"function": "noop"}).status_code == 201


def test_a_group_quota_counts_its_members_together(api, store):
    assert api.call("POST", "/groups", "admin", json={"name": "team", "partitions": []}).status_code == 201
    for user in (BOB, SUE):
        assert api.call("PATCH", f"/users/{user}", "admin", json={"groups": ["team"]}).status_code == 200
    assert put(api, "/groups/team/quotas", {"queued": 3}).status_code == 200
    assert api.call("POST", "/tasks", "business", json=[{"function": "noop"}] * 2).status_code == 201
    assert api.call("POST", "/tasks", "super", json={"function": "noop"}).status_code == 201
    resp = api.call("POST", "/tasks", "super", json={"function": "noop"})
    assert resp.status_code == 429 and "queued quota of group team" in resp.json()["error"]["message"]

    # members read it, others may not
    seen = api.call("GET", "/groups/team/quotas", "business")
    assert seen.status_code == 200 and seen.json()["usage"]["queued"] == 3
    assert api.call("GET", "/groups/team/quotas", "general").status_code == 403
    # a user who leaves the group no longer counts (nor is bound)
    assert api.call("PATCH", f"/users/{SUE}", "admin", json={"groups": []}).status_code == 200
    assert api.call("GET", "/groups/team/quotas", "admin").json()["usage"]["queued"] == 2
    assert api.call("POST", "/tasks", "super", json={"function": "noop"}).status_code == 201
    assert api.call("POST", "/tasks", "business", json={"function": "noop"}).status_code == 201


def test_bad_limits_and_callers_are_refused_and_change_nothing(api, store):
    for body, field in [({"queued": -1}, "queued"), ({"running": 1.5}, "running"), ({"queued": "3"}, "queued"),
                        ({"data_bytes": True}, "data_bytes"), ({"cpus": 2}, "cpus")]:
        resp = put(api, f"/users/{BOB}/quotas", body)
        assert resp.status_code == 422 and resp.json()["error"]["field"] == field, resp.text
    assert put(api, f"/users/{BOB}/quotas", [1]).status_code == 422
    assert put(api, f"/users/{BOB}/quotas", {"queued": 1}, role="super").status_code == 403
    assert put(api, "/users/nobody/quotas", {"queued": 1}).status_code == 404
    assert put(api, "/groups/nogroup/quotas", {"queued": 1}).status_code == 404
    assert api.call("GET", f"/users/{BOB}/quotas", "general").status_code == 403
    assert store.db.quotas.count_documents({}) == 0
    # a change is audited with the old and the new limits
    put(api, f"/users/{BOB}/quotas", {"queued": 5})
    entry = api.call("GET", "/audit", "admin", params={"action": "quota.set"}).json()["items"][0]
    assert entry["target"] == f"user:{BOB}" and entry["details"]["new"]["queued"] == 5


def test_a_data_quota_refuses_an_upload_past_it(api, store):
    assert put(api, f"/users/{BOB}/quotas", {"data_bytes": 1000}).status_code == 200
    headers = {"Content-Type": "application/octet-stream"}
    first = api.call("POST", "/data", "business", params={"name": "a.bin"}, data=b"x" * 600, headers=headers)
    assert first.status_code == 201, first.text
    second = api.call("POST", "/data", "business", params={"name": "b.bin"}, data=b"y" * 600, headers=headers)
    assert second.status_code == 507 and "storage quota" in second.json()["error"]["message"]
    assert api.call("GET", f"/users/{BOB}/quotas", "business").json()["usage"]["data_bytes"] == 600
    # another user's uploads are theirs to make
    assert api.call("POST", "/data", "super", params={"name": "c.bin"}, data=b"z" * 600,
                    headers=headers).status_code == 201


def test_a_running_quota_holds_at_claim_while_other_users_work_runs(api, store, cluster):
    # Bob may run one task at a time; his tasks are older (claimed first) than Sue's
    assert put(api, f"/users/{BOB}/quotas", {"running": 1}).status_code == 200
    bob = [api.call("POST", "/tasks", "business", json={"function": "sleep", "args": [1.5]}).json()["id"]
           for _ in range(3)]
    sue = [api.call("POST", "/tasks", "super", json={"function": "sleep", "args": [1.5]}).json()["id"]
           for _ in range(2)]
    # the leader has counted the room (a worker starting reads it before its first claim)
    wait_for(lambda: store.quotas.room(), 15, what="the leader's count of the room under the limit")

    peak = {"bob": 0, "sue": 0}
    done = threading.Event()

    def watch():
        while not done.is_set():
            for who, owner in (("bob", BOB), ("sue", SUE)):
                peak[who] = max(peak[who], store.db.tasks.count_documents({"submitted_by": owner,
                                                                             "status": "running"}))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    cluster.start_worker("w1", concurrency=2)
    try:
        wait_for(lambda: all(store.tasks.get(t)["status"] == "succeeded" for t in bob + sue), 60,
                 what="every task")
    finally:
        done.set()
        watcher.join()
    # never two of Bob's at once, and Sue's ran alongside his on the second slot
    assert peak["bob"] == 1, peak
    assert peak["sue"] >= 1
    first_sue = min(store.tasks.get(t)["attempts"][0]["started_at"] for t in sue)
    last_bob = max(store.tasks.get(t)["attempts"][0]["started_at"] for t in bob)
    assert first_sue < last_bob  # Sue did not wait for Bob's queue to drain
