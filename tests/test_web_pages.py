"""The web blueprint without a browser: on a small Flask app of its own (the server's
``create_app`` is covered by test_web_browser.py), over a real mongod.

The tables' queries must be served by an index (never an in-memory sort), the worker charts'
downsampling must average into time buckets, every form must carry a CSRF token, and the
pages must still render when the front-end assets were never built.
"""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from flask import Flask
from werkzeug.datastructures import MultiDict

import web
import web.pages
from fsm.store import server_now
from fsm.store.spec import validate
from web.tables import SORTABLE, parse_tasks

PASSWORD = "correct-horse-1"
COLUMNS = {"columns[0][data]": "id", "columns[1][data]": "function", "columns[2][data]": "status",
           "columns[3][data]": "priority", "columns[4][data]": "created_at"}


@pytest.fixture
def app(store):
    """The blueprint on a bare Flask app: the two things a host app must give it."""
    app = Flask("web-test")
    app.secret_key = "test-secret"
    app.extensions[web.STORE_KEY] = store
    app.register_blueprint(web.bp)
    for role in ("admin", "super", "general"):
        store.users.add(f"{role}1", role, PASSWORD)
    return app


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)


def logged_in(app, name):
    client = app.test_client()
    token = csrf_of(client.get("/login").get_data(as_text=True))
    resp = client.post("/login", data={"name": name, "password": PASSWORD, "csrf_token": token})
    assert resp.status_code == 302
    return client, csrf_of(client.get("/").get_data(as_text=True))


def plan_stages(plan: dict) -> set[str]:
    stages = {plan.get("stage")}
    for key in ("inputStage", "queryPlan"):
        if key in plan:
            stages |= plan_stages(plan[key])
    for child in plan.get("inputStages", []):
        stages |= plan_stages(child)
    return stages


@pytest.mark.parametrize("column", sorted(SORTABLE))
@pytest.mark.parametrize("direction", ["asc", "desc"])
@pytest.mark.parametrize("filters", [{}, {"status": "queued"}, {"search[value]": "ren"}])
def test_every_table_sort_walks_an_index(store, column, direction, filters):
    # Given a few thousand tasks
    store.tasks.insert([store.tasks.document(validate({"function": f"f{i % 5}", "priority": i % 10}), "u")
                        for i in range(2000)])
    names = {v: k.split("[")[1].split("]")[0] for k, v in COLUMNS.items()}
    # When the table asks for any sortable column, either way, with or without a filter
    table = parse_tasks(MultiDict({**COLUMNS, "order[0][column]": names[column], "order[0][dir]": direction,
                                   "length": "25", **filters}), None)
    plan = store.db.tasks.find(table.query).sort(table.sort).skip(table.skip).limit(table.limit).explain()
    # Then MongoDB walks an index in the asked order: no SORT stage, no collection scan
    stages = plan_stages(plan["queryPlanner"]["winningPlan"])
    served = (not filters or ("status" in filters and column in ("status", "created_at"))
              or ("search[value]" in filters and column == "function"))
    if served:  # where one index holds both the filter and the order; otherwise the planner may pick a top-k sort
        assert "SORT" not in stages, (column, direction, filters, stages)
    assert "COLLSCAN" not in stages, (column, direction, filters, stages)


def test_table_request_is_one_page_and_non_super_users_see_their_own(app, store):
    store.tasks.insert([store.tasks.document(validate({"function": "echo", "args": [i]}),
                                             "general1" if i % 10 == 0 else "super1") for i in range(300)])
    client, _ = logged_in(app, "super1")
    body = client.get("/data/tasks", query_string={**COLUMNS, "draw": 3, "start": 25, "length": 25}).get_json()
    assert body["draw"] == 3 and body["recordsTotal"] == 300 and len(body["data"]) == 25
    client, _ = logged_in(app, "general1")
    body = client.get("/data/tasks", query_string={**COLUMNS, "length": 100}).get_json()
    assert body["recordsFiltered"] == 30 and {row["user"] for row in body["data"]} == {"general1"}
    # a malformed request is a 400, not a 500
    assert client.get("/data/tasks", query_string={"start": "x"}).status_code == 400
    assert client.get("/data/tasks", query_string={"status": "bogus"}).status_code == 400


def test_worker_samples_are_averaged_into_time_buckets(app, store):
    # Given three hours of heartbeat samples, one every 30 s, CPU alternating 20 and 40
    now = server_now(store.db)
    store.db.worker_samples.insert_many([
        {"worker": "box1", "at": now - timedelta(seconds=30 * i), "cpu": 20.0 if i % 2 else 40.0, "mem": 50.0,
         "load": 1.0, "gpus": [{"index": 0, "util": 80.0, "mem_used": 1, "temp": 60}]} for i in range(360)]
        + [{"worker": "other", "at": now, "cpu": 99.0, "mem": 99.0, "load": 9.0, "gpus": []}])
    client, _ = logged_in(app, "general1")
    # When the chart asks for the last six hours
    body = client.get("/data/workers/box1/samples?hours=6").get_json()
    # Then it gets about 3 h / 3 min buckets, each the mean of its samples, of this worker only
    assert body["bin_minutes"] == 3
    assert 55 <= len(body["points"]) <= 62
    inner = body["points"][1:-1]
    assert all(p["cpu"] == 30.0 and p["mem"] == 50.0 and p["gpu"] == 80.0 for p in inner)
    assert [p["at"] for p in body["points"]] == sorted(p["at"] for p in body["points"])


def test_every_form_carries_a_csrf_token_and_posts_without_one_are_refused(app, store):
    store.db.workers.insert_one({"_id": "box1", "host": "box1", "state": "online", "cpu": {"percent": 5.0},
                                 "mem": {"percent": 10.0}, "disk": {"percent": 20.0}, "gpus": [], "running": []})
    task_id = store.tasks.insert([store.tasks.document(validate({"function": "echo"}), "super1")])[0]
    client, token = logged_in(app, "admin1")
    for path in ("/", "/tasks", f"/tasks/{task_id}", "/workers", "/workers/box1", "/users"):
        html = client.get(path).get_data(as_text=True)
        for form in re.findall(r"<form[^>]*method=\"post\".*?</form>", html, flags=re.S):
            assert 'name="csrf_token"' in form, (path, form[:200])
    # Given a logged-in admin, a request without the token changes nothing
    for path, data in (("/actions/workers/box1/drain", {}), ("/actions/users", {"name": "x1", "role": "general",
                                                                                  "password": "longenough"}),
                       ("/actions/tasks", {"action": "cancel", "ids": task_id}), ("/logout", {})):
        assert client.post(path, data=data).status_code == 403
        assert client.post(path, data={**data, "csrf_token": "forged"}).status_code == 403
    assert store.workers.get("box1")["state"] == "online" and store.tasks.get(task_id)["status"] == "queued"
    assert store.db.users.count_documents({"_id": "x1"}) == 0
    # and with it, the admin drains the worker, adds a user, and sees the outcome
    resp = client.post("/actions/workers/box1/drain", data={"csrf_token": token, "next": "/workers/box1"},
                       follow_redirects=True)
    assert store.workers.get("box1")["state"] == "draining" and "box1 is now draining" in resp.get_data(as_text=True)
    resp = client.post("/actions/users", data={"csrf_token": token, "name": "x1", "role": "business",
                                               "password": "longenough"}, follow_redirects=True)
    assert store.db.users.find_one({"_id": "x1"})["role"] == "business"
    assert "x1 added as business" in resp.get_data(as_text=True)
    # the task page's form acts through the FSM and reports a refused transition
    resp = client.post("/actions/tasks", data={"csrf_token": token, "action": "requeue", "ids": task_id,
                                               "next": f"/tasks/{task_id}"}, follow_redirects=True)
    assert "refused" in resp.get_data(as_text=True) and store.tasks.get(task_id)["status"] == "queued"


def test_roles_limit_pages_and_actions(app, store):
    task_id = store.tasks.insert([store.tasks.document(validate({"function": "echo"}), "super1")])[0]
    client, token = logged_in(app, "general1")
    assert client.get("/users").status_code == 403
    assert client.get(f"/tasks/{task_id}").status_code == 403  # not their task
    refused = client.post("/actions/tasks", data={"csrf_token": token, "action": "cancel", "ids": task_id})
    assert refused.status_code == 403
    assert client.post("/actions/users", data={"csrf_token": token, "name": "x2", "role": "admin",
                                               "password": "longenough"}).status_code == 403
    anonymous = app.test_client()
    assert anonymous.get("/tasks").status_code == 302 and anonymous.get("/data/tasks").status_code == 401
    assert store.tasks.get(task_id)["status"] == "queued" and store.db.users.count_documents({"_id": "x2"}) == 0


def test_pages_render_with_a_clear_note_when_the_assets_were_never_built(app, tmp_path, monkeypatch):
    monkeypatch.setattr(web.pages, "VENDOR", tmp_path / "vendor")  # an install that never ran the setup step
    client, _ = logged_in(app, "super1")
    html = client.get("/tasks").get_data(as_text=True)
    assert "scripts/build_web_assets.sh" in html and "front-end libraries are not installed" in html
    assert client.get("/").status_code == 200


def test_schedules_show_their_owner_s_own_and_their_last_run(app, store):
    store.db.schedules.insert_many([
        {"_id": "nightly", "trigger": {"type": "cron", "hour": 3}, "task": {"function": "echo", "args": [1]},
         "paused": False, "owner": "super1"},
        {"_id": "hourly", "trigger": {"type": "interval", "seconds": 3600}, "task": {"function": "noop"},
         "paused": True, "owner": "general1"},
        {"_id": "greeting", "trigger": {"type": "interval", "seconds": 60}, "task": {"service": "greet"},
         "paused": False, "owner": "super1"}])
    doc = store.tasks.document(validate({"function": "echo", "args": [1]}), "super1")
    doc.update({"_id": "nightly@2026-11-24T03:00:00Z", "schedule_id": "nightly",
                "scheduled_for": server_now(store.db)})
    store.tasks.insert([doc])
    client, _ = logged_in(app, "super1")
    html = client.get("/schedules").get_data(as_text=True)
    assert "nightly" in html and "hourly" in html and "/tasks/nightly@2026-11-24T03:00:00Z" in html
    assert "service greet" in html  # a service's schedule names it
    client, _ = logged_in(app, "general1")
    html = client.get("/schedules").get_data(as_text=True)
    assert "hourly" in html and "nightly" not in html and "paused" in html


def test_functions_list_versions_and_show_the_source_to_those_allowed(app, store):
    now = server_now(store.db)
    for version, public in (("1.0.0", True), ("2.0.0-rc1", False)):
        store.db.functions.insert_one({
            "_id": f"train@{version}", "code": "train", "version": version, "name": "Train a model",
            "description": "fits the model", "entrypoint": "ml.train:main", "repo": "ml", "commit": "a" * 40,
            "content": f"def main(epochs):\n    return 'version {version} <ok>'\n", "public": public,
            "deprecated": False, "create_time": now, "developer_name": "Ada"})
    client, _ = logged_in(app, "super1")
    html = client.get("/functions").get_data(as_text=True)
    assert "/functions/train/1.0.0" in html and "/functions/train/2.0.0-rc1" in html and "noop" in html
    source = client.get("/functions/train/2.0.0-rc1").get_data(as_text=True)
    assert "return &#39;version 2.0.0-rc1 &lt;ok&gt;&#39;" in source  # shown as text, escaped
    client, _ = logged_in(app, "general1")
    assert "/functions/train/2.0.0-rc1" not in client.get("/functions").get_data(as_text=True)
    assert client.get("/functions/train/2.0.0-rc1").status_code == 404
    assert client.get("/functions/train/1.0.0").status_code == 200


def test_logout_ends_the_session_and_a_wrong_password_starts_none(app):
    client, token = logged_in(app, "super1")
    assert client.get("/tasks").status_code == 200
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/tasks").status_code == 302 and client.get("/data/tasks").status_code == 401
    token = csrf_of(client.get("/login").get_data(as_text=True))
    resp = client.post("/login", data={"name": "super1", "password": "wrong-password", "csrf_token": token})
    assert resp.status_code == 401 and client.get("/tasks").status_code == 302
    # after logging in, ``next`` goes back to the page asked for, never to another site
    resp = client.post("/login", data={"name": "super1", "password": PASSWORD, "csrf_token": token,
                                       "next": "//evil.example/x"})
    assert resp.headers["Location"] == "/"


def test_workers_page_shows_quarantines(app, store):
    store.db.workers.insert_one({"_id": "box9", "host": "box9", "state": "online", "quarantined": [
        {"function": "mlfuncs.train", "until": "2026-12-01T12:00:00Z", "reason": "3 failed attempts in a row"}]})
    client, _ = logged_in(app, "general1")
    html = client.get("/workers").get_data(as_text=True)
    assert "quarantined" in html and "mlfuncs.train" in html and "3 failed attempts in a row" in html


def test_the_functions_menu_offers_only_the_partitions_open_to_the_viewer(app, store):
    now = server_now(store.db)
    for code, partition in (("tokenize", "nlp"), ("detect", "vision"), ("train", None)):
        store.db.functions.insert_one({
            "_id": f"{code}@1.0", "code": code, "version": "1.0", "name": code, "entrypoint": "m:f", "repo": "ml",
            "commit": "a" * 40, "content": "", "public": True, "deprecated": False, "create_time": now,
            **({"partition": partition} if partition else {})})
    store.groups.add("nlp-team", ["nlp"])
    store.users.change("general1", groups=["nlp-team"])

    def menu(client):
        html = client.get("/functions").get_data(as_text=True)
        return re.findall(r'data-partition="([^"]+)"', html), html

    client, _ = logged_in(app, "general1")
    offered, html = menu(client)
    assert offered == ["nlp", "public"]
    assert "/functions/tokenize/1.0" in html and "/functions/detect/1.0" not in html
    # one partition's page shows only its functions; a closed one is not found
    nlp = client.get("/functions?partition=nlp").get_data(as_text=True)
    assert "/functions/tokenize/1.0" in nlp and "/functions/train/1.0" not in nlp and "noop" not in nlp
    assert client.get("/functions?partition=vision").status_code == 404
    # an admin is offered every partition in use
    client, _ = logged_in(app, "admin1")
    assert menu(client)[0] == ["nlp", "public", "vision"]
