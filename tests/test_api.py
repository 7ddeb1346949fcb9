"""The HTTP API over a real waitress server and a real mongod: publish, read, act, watch."""
from datetime import datetime

from prometheus_client.parser import text_string_to_metric_families

from fsm.store import Claimant
from tests.apiserver import api  # noqa: F401 - the fixture

ECHO = {"function": "echo", "args": [{"x": 1}], "kwargs": {}, "version": "builtin", "priority": 5, "redundancy": 1,
        "quorum": 1, "timeout_s": 60, "max_retries": 3, "requires": {"gpus": 0, "tags": []}}


def iso(value: str) -> datetime:
    when = datetime.fromisoformat(value)
    assert when.tzinfo is not None, value
    return when


def test_publish_one_task_and_read_it_back(api):
    # When a business user publishes the design's example body
    resp = api.call("POST", "/tasks", "business", json=ECHO)
    # Then it is stored queued, with the exact version, and the answer says so
    assert resp.status_code == 201, resp.text
    made = resp.json()
    assert made["status"] == "queued" and made["version"] == "builtin" and made["priority"] == 5
    stored = api.store.tasks.get(made["id"])
    assert stored["args"] == [{"x": 1}] and stored["submitted_by"] == "u-business"
    got = api.call("GET", f"/tasks/{made['id']}", "business").json()
    assert got["id"] == made["id"] and got["status"] == "queued"
    assert got["result"] is None and got["error"] is None and got["reason"] is None and got["attempts"] == []
    assert [h["to"] for h in got["history"]] == ["queued"]
    assert iso(got["created_at"]) == stored["created_at"] and iso(got["history"][0]["at"])
    assert "_id" not in got and "rev" not in got


def test_bulk_publish_stores_every_task_in_one_request(api):
    bodies = [{"function": "echo", "args": [i], "priority": i % 3} for i in range(40)]
    resp = api.call("POST", "/tasks", "super", json=bodies)
    assert resp.status_code == 201, resp.text
    items = resp.json()["items"]
    assert len(items) == 40 and resp.json()["total"] == 40
    assert {i["status"] for i in items} == {"queued"} and {i["version"] for i in items} == {"builtin"}
    stored = {d["_id"]: d["args"] for d in api.store.db.tasks.find({}, {"args": 1})}
    assert [stored[i["id"]] for i in items] == [[i] for i in range(40)]


def test_a_task_runs_and_its_result_is_shown(api):
    task_id = api.publish({"function": "echo", "args": [42]})["id"]
    claim = api.store.tasks.claim_next(Claimant("w1"))
    running = api.call("GET", f"/tasks/{task_id}", "admin").json()
    assert running["status"] == "running" and running["attempts"][0]["worker"] == "w1"
    assert iso(running["attempts"][0]["lease_until"])
    api.store.tasks.finish_attempt(task_id, claim.attempt_id, "succeeded", result=42, worker="w1")
    done = api.call("GET", f"/tasks/{task_id}", "admin").json()
    assert done["status"] == "succeeded" and done["result"] == 42
    assert [h["to"] for h in done["history"]] == ["queued", "running", "succeeded"]
    assert iso(done["finished_at"]) >= iso(done["started_at"])


def test_listing_filters_pages_and_shows_each_user_their_own(api):
    mine = [api.publish({"function": "echo", "args": [i]}, "business")["id"] for i in range(3)]
    for _ in range(4):
        api.publish({"function": "noop"}, "super")
    # business users see only their own tasks; super-users see every task
    own = api.call("GET", "/tasks", "business").json()
    assert own["total"] == 3 and {t["id"] for t in own["items"]} == set(mine)
    assert api.call("GET", "/tasks?submitted_by=u-super", "business").status_code == 403
    assert api.call("GET", "/tasks", "super").json()["total"] == 7
    # filters and paging
    assert api.call("GET", "/tasks?function=noop", "admin").json()["total"] == 4
    assert api.call("GET", "/tasks?status=queued&submitted_by=u-business", "admin").json()["total"] == 3
    first = api.call("GET", "/tasks?limit=5&sort=created_at&order=asc", "admin").json()
    rest = api.call("GET", "/tasks?limit=5&offset=5&sort=created_at&order=asc", "admin").json()
    assert len(first["items"]) == 5 and len(rest["items"]) == 2 and rest["skip"] == 5
    assert not {t["id"] for t in first["items"]} & {t["id"] for t in rest["items"]}
    assert "args" not in first["items"][0] and "history" not in first["items"][0]
    # a worker filter matches the tasks it ran
    api.store.tasks.claim_next(Claimant("w9"))
    assert api.call("GET", "/tasks?worker=w9", "admin").json()["total"] == 1


def test_patch_priority_and_is_enabled_take_effect_on_the_next_claim(api):
    low = api.publish({"function": "noop", "priority": 1})["id"]
    high = api.publish({"function": "noop", "priority": 5})["id"]
    # Raising the low one above the high one makes it the next claim
    resp = api.call("PATCH", f"/tasks/{low}", "super", json={"priority": 9})
    assert resp.status_code == 200 and resp.json()["priority"] == 9
    assert api.store.tasks.claim_next(Claimant("w1")).task_id == low
    # Disabling the other keeps it from being claimed until it is enabled again
    assert api.call("PATCH", f"/tasks/{high}", "admin", json={"is_enabled": False}).json()["is_enabled"] is False
    assert api.store.tasks.claim_next(Claimant("w2")) is None
    assert api.call("PATCH", f"/tasks/{high}", "super", json={"is_enabled": True}).status_code == 200
    assert api.store.tasks.claim_next(Claimant("w2")).task_id == high


def test_cancel_own_task_and_only_super_cancels_others(api):
    mine = api.publish({"function": "noop"}, "business")["id"]
    theirs = api.publish({"function": "noop"}, "super")["id"]
    resp = api.call("POST", f"/tasks/{mine}/cancel", "business")
    assert resp.status_code == 200 and resp.json()["status"] == "cancelled"
    assert resp.json()["history"][-1]["by"] == "u-business"
    assert api.call("POST", f"/tasks/{theirs}/cancel", "business").status_code == 403
    assert api.store.tasks.get(theirs)["status"] == "queued"
    assert api.call("POST", f"/tasks/{theirs}/cancel", "super").json()["status"] == "cancelled"
    assert api.store.tasks.claim_next(Claimant("w1")) is None


def test_requeue_a_failed_task(api):
    task_id = api.publish({"function": "fail", "max_retries": 0})["id"]
    claim = api.store.tasks.claim_next(Claimant("w1"))
    api.store.tasks.finish_attempt(task_id, claim.attempt_id, "failed", error="boom", worker="w1")
    assert api.call("GET", f"/tasks/{task_id}", "admin").json()["status"] == "failed"
    assert api.call("POST", f"/tasks/{task_id}/requeue", "business").status_code == 403
    resp = api.call("POST", f"/tasks/{task_id}/requeue", "super")
    assert resp.status_code == 200 and resp.json()["status"] == "queued" and resp.json()["attempts"] == []
    assert api.store.tasks.claim_next(Claimant("w2")).task_id == task_id


def test_workers_drain_and_stats(api):
    api.store.db.workers.insert_one({"_id": "m1", "state": "online", "cpu": {"percent": 12.5}, "gpus": [],
                                     "last_seen": datetime.now().astimezone()})
    for body in ([{"function": "echo"}] * 3, {"function": "noop", "delay_s": 3600}):
        api.call("POST", "/tasks", "admin", json=body)
    workers = api.call("GET", "/workers", "general").json()
    assert workers["total"] == 1 and workers["items"][0]["name"] == "m1"
    assert iso(workers["items"][0]["last_seen"])
    assert api.call("GET", "/workers?state=offline", "general").json()["total"] == 0
    assert api.call("GET", "/workers/m1", "general").json()["cpu"]["percent"] == 12.5
    assert api.call("POST", "/workers/m1/drain", "super").status_code == 403
    assert api.call("POST", "/workers/m1/drain", "admin").json()["state"] == "draining"
    assert api.store.workers.get("m1")["state"] == "draining"
    assert api.call("POST", "/workers/m1/resume", "admin").json()["state"] == "online"
    stats = api.call("GET", "/stats", "general").json()
    assert stats["counts"]["queued"] == 3 and stats["counts"]["pending"] == 1 and stats["queue_depth"] == 4
    assert stats["workers_online"] == 1 and stats["finished_last_minute"] == 0
    assert stats["oldest_queued_age_s"] >= 0


def test_admin_creates_users_and_their_token_works(api):
    made = api.call("POST", "/users", "admin", json={"name": "carol", "role": "business", "password": "s3cret-pw"})
    assert made.status_code == 201 and made.json()["role"] == "business"
    token = made.json()["token"]
    assert api.call("POST", "/tasks", token=token, json={"function": "noop"}).status_code == 201
    users = api.call("GET", "/users", "admin").json()["items"]
    assert {"admin", "carol", "u-super"} <= {u["name"] for u in users}
    assert all("tokens" not in u and "password_hash" not in u for u in users)
    assert api.call("GET", "/users", "super").status_code == 403


def test_metrics_parse_and_match_the_database(api):
    api.call("POST", "/tasks", "admin", json=[{"function": "echo"}] * 3 + [{"function": "noop"}])
    api.publish({"function": "noop"})
    claim = api.store.tasks.claim_next(Claimant("w1"))
    api.store.tasks.finish_attempt(claim.task_id, claim.attempt_id, "succeeded", result=None, worker="w1")
    api.store.db.workers.insert_one({"_id": "m1", "state": "online", "cpu": {"percent": 12.5},
                                     "mem": {"percent": 40}, "temps": {"cpu": 55.0},
                                     "gpus": [{"index": 0, "util": 77, "mem_used": 1, "mem_total": 2, "temp": 60}]})
    resp = api.call("GET", "/metrics")
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(resp.text)}
    counted = {(s.labels["status"], s.labels["function"]): s.value for s in families["suanwang_tasks"].samples}
    in_db = {}
    for doc in api.store.db.tasks.find({}, {"status": 1, "function": 1}):
        in_db[(doc["status"], doc["function"])] = in_db.get((doc["status"], doc["function"]), 0) + 1
    assert counted == in_db and sum(counted.values()) == 5
    started = families["suanwang_attempts_started"].samples
    assert [(s.name, s.value) for s in started] == [("suanwang_attempts_started_total", 1)]
    hist = {s.name: s.value for s in families["suanwang_task_duration_seconds"].samples if s.name.endswith("_count")}
    assert list(hist.values()) == [1]
    assert families["suanwang_workers_online"].samples[0].value == 1
    gpu = families["suanwang_gpu_utilization_percent"].samples[0]
    assert gpu.labels == {"worker": "m1", "gpu": "0"} and gpu.value == 77
    assert families["suanwang_worker_temperature_celsius"].samples[0].value == 55.0
    assert families["suanwang_queue_oldest_age_seconds"].samples[0].value >= 0


def test_openapi_lists_every_route(api):
    doc = api.call("GET", "/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    rules = {(m.lower(), r.rule[len("/api/v1"):].replace("<", "{").replace(">", "}"))
             for r in api.server.app.url_map.iter_rules() if r.rule.startswith("/api/v1/")
             for m in r.methods - {"HEAD", "OPTIONS"}}
    listed = {(m, path) for path, ops in doc["paths"].items() for m in ops}
    assert rules == listed
    assert {"/tasks", "/tasks/{task_id}", "/tasks/{task_id}/cancel", "/tasks/{task_id}/requeue", "/workers",
            "/workers/{name}/drain", "/stats", "/healthz", "/metrics", "/functions"} <= set(doc["paths"])
    assert doc["paths"]["/healthz"]["get"]["security"] == []
    assert "requestBody" in doc["paths"]["/tasks"]["post"]


def test_healthz_needs_no_token(api):
    resp = api.call("GET", "/healthz")
    assert resp.status_code == 200 and resp.json() == {"status": "ok", "mongodb": "ok"}


def test_a_web_session_is_a_login(api):
    # Given a signed cookie that holds only a user's name (as cookies did before sessions were kept on the
    # server): it is no login
    client = api.server.app.test_client()
    assert client.get("/api/v1/tasks").status_code == 401
    with client.session_transaction() as session:
        session["user"] = "u-business"
    assert client.get("/api/v1/tasks").status_code == 401
    # Given the web login put the user's name and a server-side session's id in the signed session
    with client.session_transaction() as session:
        session["user"] = "u-business"
        session["sid"] = api.store.sessions.create("u-business", 3600)
    # Then API calls from that browser act as that user; changes need the page's CSRF token
    assert client.get("/api/v1/tasks").status_code == 200
    assert client.post("/api/v1/tasks", json={"function": "noop"}).status_code == 403
    import re

    token = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/tasks").get_data(as_text=True)).group(1)
    resp = client.post("/api/v1/tasks", json={"function": "noop"}, headers={"X-CSRFToken": token})
    assert resp.status_code == 201 and api.store.tasks.get(resp.get_json()["id"])["submitted_by"] == "u-business"
    assert client.get("/api/v1/users").status_code == 403


def test_the_session_key_is_shared_through_the_database(api, store, db_uri, db_name):
    from scheduler.app import create_app
    from scheduler.config import ServerConfig

    other = create_app(ServerConfig(mongo_uri=db_uri, db_name=db_name, run_scheduler=False), store)
    assert other.secret_key == api.server.app.secret_key and len(other.secret_key) >= 32
