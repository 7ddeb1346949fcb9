"""The registry's HTTP routes (/api/v1/functions, /api/v1/repos) through the real app and auth.

Runs once ``scheduler/auth.py`` and ``scheduler/app.py`` (``create_app``) exist; the app
must call ``scheduler.api_functions.init_registry(app, db)`` (done here when it does not).
"""
from __future__ import annotations

import pytest

from fsm.store import Store
from tests.test_registry import calc_files, make_repo

pytest.importorskip("scheduler.auth")
app_module = pytest.importorskip("scheduler.app")
config_module = pytest.importorskip("scheduler.config")


@pytest.fixture
def client(db, db_uri, tmp_path):
    from scheduler.api_functions import EXTENSION, init_registry

    app = app_module.create_app(config_module.ServerConfig(mongo_uri=db_uri, run_scheduler=False))
    init_registry(app, db, cache_dir=str(tmp_path / "cache"), roots=(str(tmp_path / "repos"),))
    assert EXTENSION in app.extensions
    return app.test_client()


def test_registry_routes_enforce_roles_and_return_the_source(client, db, tmp_path):
    users = Store(db).users
    tokens = {role: users.add(f"u-{role}", role) for role in ("admin", "super", "business")}

    def call(method, path, role=None, **kwargs):
        headers = {"Authorization": f"Bearer {tokens[role]}"} if role else {}
        return client.open(f"/api/v1{path}", method=method, headers=headers, **kwargs)

    repo = make_repo(tmp_path / "repos" / "funcs", calc_files("v1"), tag="v1")
    assert call("POST", "/repos", "super", json={"location": str(repo)}).status_code == 403
    bad = call("POST", "/repos", "admin", json={"location": "--upload-pack=touch /tmp/x"})
    assert bad.status_code == 422 and "starts with '-'" in bad.get_json()["error"]["message"]
    added = call("POST", "/repos", "admin", json={"location": str(repo), "name": "funcs"})
    assert added.status_code == 201 and added.get_json()["name"] == "funcs"
    assert call("GET", "/repos", "admin").get_json()["total"] == 1

    body = {"repo": "funcs", "ref": "v1", "entrypoint": "calc:answer", "code": "func1", "version": "1.0"}
    assert call("POST", "/functions", "business", json=body).status_code == 403
    created = call("POST", "/functions", "super", json=body)
    assert created.status_code == 201 and len(created.get_json()["commit"]) == 40
    assert call("POST", "/functions", "super", json=body).status_code == 200
    conflict = call("POST", "/functions", "super", json={**body, "ref": "0" * 40})
    assert conflict.status_code == 422 and conflict.get_json()["error"]["code"] == "registry"

    assert call("GET", "/functions/func1/1.0", "business").status_code == 403  # not public
    shown = call("GET", "/functions/func1/1.0", "super").get_json()
    assert shown["content"] == calc_files("v1")["calc.py"]
    assert call("PATCH", "/functions/func1/1.0", "super", json={"public": True}).get_json()["public"] is True
    listed = call("GET", "/functions", "business").get_json()
    assert "func1" in [i["code"] for i in listed["items"]] and "echo" in [i["code"] for i in listed["items"]]
    missing = call("GET", "/functions/func1/9.9", "business")
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "function_not_found"
    assert call("GET", "/functions").status_code == 401
