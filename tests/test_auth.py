"""One authentication module for the API and the pages: authenticate before any lookup,
the same CSRF refusal (403 csrf_failed) on both fronts, the same rights (one table)."""
from __future__ import annotations

import re

import pytest
import requests

from fsm.errors import Forbidden
from fsm.store.spec import validate
from fsm import rights
from tests.apiserver import api  # noqa: F401  (fixture)

PASSWORD = "a-long-password"


def test_without_a_token_unknown_and_known_things_answer_the_same_401(api):  # noqa: F811
    # Given a task, a built-in function and a schedule that exist
    task = api.publish({"function": "echo", "args": [1]})
    assert api.call("POST", "/schedules", "admin", json={"id": "s1", "interval_s": 60,
                                                         "task": {"function": "noop"}}).status_code == 201
    # When an anonymous caller asks for each, and for things that do not exist
    pairs = [("/functions/echo", "/functions/no_such_function"), (f"/tasks/{task['id']}", "/tasks/no-such-task"),
             ("/schedules/s1", "/schedules/no-such"), ("/workers/none", "/workers/none-either"),
             ("/functions/echo/builtin", "/functions/echo/v9")]
    for known, unknown in pairs:
        answers = [api.call("GET", path) for path in (known, unknown)]
        # Then both answer 401 unauthorized: existence cannot be probed
        assert [a.status_code for a in answers] == [401, 401], (known, [a.text for a in answers])
        assert {a.json()["error"]["code"] for a in answers} == {"unauthorized"}
    assert api.call("POST", f"/tasks/{task['id']}/cancel").status_code == 401
    assert api.call("POST", "/tasks/no-such-task/cancel").status_code == 401
    # ... while the public routes stay open and an unknown route is a plain 404
    assert api.call("GET", "/healthz").status_code == 200
    assert api.call("GET", "/openapi.json").status_code == 200
    assert api.call("GET", "/no-such-route").status_code == 404


def _browser(api, name: str):
    """A requests session logged in through the login page; returns it and the pages' CSRF token."""
    api.store.users.add(name, "business", PASSWORD)
    web = requests.Session()
    token = re.search(r'name="csrf_token" value="([^"]+)"', web.get(f"{api.base}/login").text).group(1)
    assert web.post(f"{api.base}/login", data={"name": name, "password": PASSWORD, "csrf_token": token},
                    allow_redirects=False).status_code == 302
    page_token = re.search(r'name="csrf-token" content="([^"]+)"', web.get(f"{api.base}/tasks").text).group(1)
    return web, page_token


def test_a_missing_csrf_token_is_the_same_403_on_the_api_and_the_pages(api):  # noqa: F811
    web, token = _browser(api, "ann")
    own = api.call("POST", "/tasks", token=None, headers={}, json={})  # anonymous: 401, not a CSRF question
    assert own.status_code == 401
    task = web.post(f"{api.url}/tasks", json={"function": "echo"}, headers={"X-CSRFToken": token}).json()
    refusals = [web.post(f"{api.url}/tasks/{task['id']}/cancel"),
                web.post(f"{api.base}/actions/tasks", data={"action": "cancel", "ids": task["id"]}),
                web.post(f"{api.base}/actions/tasks", data={"action": "cancel", "ids": task["id"],
                                                            "csrf_token": "forged"}),
                web.post(f"{api.base}/logout")]
    for resp in refusals:
        assert resp.status_code == 403, resp.text
        assert resp.json()["error"]["code"] == "csrf_failed" and "CSRF" in resp.json()["error"]["message"]
    assert api.store.tasks.get(task["id"])["status"] == "queued"


def test_the_api_and_the_pages_grant_the_same_rights_to_cancel(api):  # noqa: F811
    # Given a business user with a task of their own, and a task of another user
    web, token = _browser(api, "bob")
    mine = web.post(f"{api.url}/tasks", json={"function": "echo"}, headers={"X-CSRFToken": token}).json()["id"]
    theirs = [api.publish({"function": "echo"}, "business")["id"] for _ in range(2)]
    # When the user cancels through the pages: their own task goes, the other is refused
    resp = web.post(f"{api.base}/actions/tasks", data={"action": "cancel", "ids": [mine, theirs[0]]},
                    headers={"X-CSRFToken": token})
    assert resp.status_code == 200, resp.text
    outcome = {r["id"]: r for r in resp.json()["results"]}
    assert outcome[mine]["ok"] and not outcome[theirs[0]]["ok"]
    assert "only your own" in outcome[theirs[0]]["error"]
    # ... and through the API (bearer token of the same role): the same refusal
    bob = api.store.users.add("bob-api", "business")
    assert api.call("POST", f"/tasks/{theirs[1]}/cancel", token=bob).status_code == 403
    # Then only the own task is cancelled; re-prioritising needs super on both fronts
    assert api.store.tasks.get(mine)["status"] == "cancelled"
    assert {api.store.tasks.get(t)["status"] for t in theirs} == {"queued"}
    assert web.post(f"{api.base}/actions/tasks", data={"action": "priority", "value": "5", "ids": mine},
                    headers={"X-CSRFToken": token}).status_code == 403
    assert api.call("PATCH", f"/tasks/{theirs[1]}", "business", json={"priority": 5}).status_code == 403


def test_error_details_reach_the_json_body(api):  # noqa: F811
    bad = api.call("POST", "/tasks", "admin", json={"function": "echo", "priority": "high"}).json()["error"]
    assert bad["code"] == "invalid" and bad["field"] == "priority"
    bulk = api.call("POST", "/tasks", "admin", json=[{"function": "echo"}, {"function": "echo", "colour": 1}])
    assert bulk.status_code == 422 and bulk.json()["error"]["index"] == 1 and bulk.json()["error"]["field"] == "colour"
    refused = api.call("POST", "/workers/w1/drain", "super").json()["error"]
    assert refused["code"] == "forbidden" and refused["right"] == "manage_workers" and refused["role"] == "admin"


@pytest.mark.parametrize("role,allowed", [
    ("general", set()),
    ("business", {"publish", "cancel_task_own", "create_schedule"}),
    ("super", {"publish", "cancel_task_own", "cancel_task_any", "read_task_any", "change_task",
               "manage_functions", "see_private_functions", "create_schedule", "manage_schedule_any",
               "manage_services"}),
    ("admin", set(rights.RIGHTS)),
])
def test_the_rights_table(role, allowed):
    user = {"_id": "u", "role": role}
    assert {r for r in rights.RIGHTS if rights.may(user, r)} == allowed
    for right in set(rights.RIGHTS) - allowed:
        with pytest.raises(Forbidden, match=rights.RIGHTS[right][1]):
            rights.check(user, right)
    assert rights.may_cancel(user, "u") == (role != "general")
    assert rights.may_cancel(user, "someone-else") == (role in ("super", "admin"))
    assert not rights.may(None, "publish")


def test_validation_errors_name_their_field():
    with pytest.raises(Exception) as info:
        validate({"function": "echo", "redundancy": 99})
    assert info.value.details == {"field": "redundancy"}
