"""The audit trail: role, groups and password changes (PATCH /users/<name>) are recorded and readable
by admins (GET /api/v1/audit, the Audit page); priority and enable changes go into the task itself."""
from __future__ import annotations

import requests

from tests.apiserver import api  # noqa: F401  (fixture)


def test_patch_user_changes_role_and_groups_and_the_trail_says_who(api):  # noqa: F811
    # Given two groups
    for group in ("lab", "nlp"):
        assert api.call("POST", "/groups", "admin", json={"name": group, "partitions": [group]}).status_code == 201
    # When an admin promotes u-general and puts it in both
    resp = api.call("PATCH", "/users/u-general", "admin", json={"role": "super", "groups": ["lab", "nlp"]})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {**resp.json(), "name": "u-general", "role": "super", "groups": ["lab", "nlp"]}
    # Then the user's own view agrees, and its rights follow at once
    mine = api.call("GET", "/users/u-general", "general").json()
    assert (mine["role"], mine["groups"], mine["has_password"]) == ("super", ["lab", "nlp"], False)
    assert api.call("GET", "/tasks?submitted_by=u-business", "general").status_code == 200  # super reads all
    # ... and the trail holds one entry per change, with the values before and after
    trail = api.call("GET", "/audit?target=u-general", "admin").json()
    assert [(e["action"], e["actor"], e["details"]) for e in trail["items"]] == [
        ("user.groups", "admin", {"old": [], "new": ["lab", "nlp"]}),
        ("user.role", "admin", {"old": "general", "new": "super"})]
    # Setting the same values again records nothing
    assert api.call("PATCH", "/users/u-general", "admin", json={"role": "super"}).status_code == 200
    assert api.call("GET", "/audit?target=u-general", "admin").json()["total"] == 2


def test_patch_user_refusals_are_clear_and_write_nothing(api):  # noqa: F811
    before = api.snapshot()
    cases = [({"role": "boss"}, "admin", 422, "role"), ({"groups": "lab"}, "admin", 422, "groups"),
             ({"groups": ["a", "a"]}, "admin", 422, "groups"), ({"groups": [""]}, "admin", 422, "groups"),
             ({"password": "short"}, "admin", 422, "password"), ({"password": 12345678}, "admin", 422, "password"),
             ({"credits": 5}, "admin", 422, "credits"), ({}, "admin", 422, None),
             ({"role": "admin"}, "business", 403, None), ({"password": "long-enough"}, "super", 403, None)]
    for body, role, status, field in cases:
        resp = api.call("PATCH", "/users/u-business", role, json=body)
        assert resp.status_code == status, (body, role, resp.text)
        assert resp.json()["error"].get("field") == field, (body, resp.text)
    assert api.call("PATCH", "/users/nobody", "admin", json={"role": "super"}).status_code == 404
    assert api.call("GET", "/users/u-business", "super").status_code == 403
    # The only admin may not demote themself (nobody could manage users afterwards)
    last = api.call("PATCH", "/users/admin", "admin", json={"role": "super"})
    assert last.status_code == 409 and "only admin" in last.json()["error"]["message"]
    assert api.snapshot() == before and api.call("GET", "/audit", "admin").json()["total"] == 0


def test_the_audit_listing_is_admin_only_filtered_and_paged(api):  # noqa: F811
    for n in range(5):
        api.call("POST", "/users/u-super/tokens", "super", json={"label": f"t{n}"})
    api.call("PATCH", "/users/u-business", "admin", json={"role": "general"})
    # Only admins read it
    assert api.call("GET", "/audit", "super").status_code == 403
    # Filters are equalities; pages are newest first, limit and skip as the task listing's
    tokens = api.call("GET", "/audit?action=token.create&limit=2", "admin").json()
    assert (tokens["total"], tokens["limit"], tokens["skip"]) == (5, 2, 0)
    assert [e["details"]["label"] for e in tokens["items"]] == ["t4", "t3"]
    rest = api.call("GET", "/audit?action=token.create&limit=2&skip=4", "admin").json()
    assert [e["details"]["label"] for e in rest["items"]] == ["t0"]
    assert api.call("GET", "/audit?actor=admin", "admin").json()["total"] == 1
    assert api.call("GET", "/audit?actor=admin&action=token.create", "admin").json()["total"] == 0
    # Unknown parameters and bad paging: 422
    for query, field in (("?who=admin", "who"), ("?limit=0", "limit"), ("?limit=x", "limit"), ("?skip=-1", "skip")):
        resp = api.call("GET", f"/audit{query}", "admin")
        assert resp.status_code == 422 and resp.json()["error"]["field"] == field, (query, resp.text)


def test_priority_and_enable_changes_go_into_the_tasks_own_record(api):  # noqa: F811
    task = api.publish({"function": "echo", "args": [1], "is_enabled": False})
    # When a super-user re-prioritises and enables it, and sets the priority it already has
    assert api.call("PATCH", f"/tasks/{task['id']}", "super", json={"priority": 7}).status_code == 200
    done = api.call("PATCH", f"/tasks/{task['id']}", "admin", json={"is_enabled": True, "priority": 7})
    assert done.status_code == 200
    # Then the task keeps each real change: when, who, the field, the value before and after
    changes = api.call("GET", f"/tasks/{task['id']}", "admin").json()["changes"]
    assert [(c["by"], c["field"], c["old"], c["new"]) for c in changes] == [
        ("u-super", "priority", 0, 7), ("admin", "is_enabled", False, True)]
    assert changes[0]["at"] <= changes[1]["at"]
    # ... and the task page shows them in its timeline
    page = requests.get(f"{api.base}/tasks/{task['id']}", headers={"Authorization": f"Bearer {api.tokens['admin']}"},
                        timeout=30).text
    assert "priority: 0 → 7" in page and "is_enabled: false → true" in page


def test_the_audit_page_is_for_admins_only(api):  # noqa: F811
    api.call("POST", "/groups", "admin", json={"name": "vision", "partitions": ["vision"]})
    assert api.call("PATCH", "/users/u-general", "admin", json={"groups": ["vision"]}).status_code == 200

    def page(role, query=""):
        return requests.get(f"{api.base}/audit{query}", headers={"Authorization": f"Bearer {api.tokens[role]}"},
                            timeout=30, allow_redirects=False)

    shown = page("admin")
    assert shown.status_code == 200 and "user.groups" in shown.text and "u-general" in shown.text
    assert 'href="/audit"' in shown.text  # in the admin's navigation
    assert "Nothing in the audit trail matches" in page("admin", "?action=token.revoke").text
    assert page("super").status_code == 403
    assert 'href="/audit"' not in requests.get(f"{api.base}/tasks", timeout=30, headers={
        "Authorization": f"Bearer {api.tokens['super']}"}).text


def test_the_openapi_document_describes_the_account_routes(api):  # noqa: F811
    paths = api.call("GET", "/openapi.json").json()["paths"]
    from scheduler.api_accounts import BODIES, SUMMARIES

    for method, path in SUMMARIES:
        assert paths[path][method]["summary"] == SUMMARIES[(method, path)], (method, path)
    for method, path in BODIES:
        assert "requestBody" in paths[path][method], (method, path)
    assert "201" in paths["/users/{name}/tokens"]["post"]["responses"]
