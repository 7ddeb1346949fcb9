"""Services: create, deploy, roll back, undeploy, calls pinned to the deployed version, partitions.

Through the real app (``create_app``) on the real mongod; function versions registered from
real git repositories.
"""
from __future__ import annotations

import json

import pytest

from fsm.store import Store
from scheduler.app import create_app
from scheduler.api_functions import init_registry
from scheduler.config import ServerConfig
from tests.test_registry import calc_files, commit, make_repo, registration


@pytest.fixture
def api(db, db_uri, tmp_path):
    app = create_app(ServerConfig(mongo_uri=db_uri, run_scheduler=False))
    init_registry(app, db, cache_dir=str(tmp_path / "cache"), roots=(str(tmp_path / "repos"),))
    client = app.test_client()
    users = Store(db).users
    tokens = {"admin": users.add("root", "admin"), "super": users.add("sue", "super"),
              "nlp": users.add("nina", "business", groups=["nlp-team"]), "plain": users.add("bob", "business")}

    def call(method, path, who, **kwargs):
        return client.open(f"/api/v1{path}", method=method, headers={"Authorization": f"Bearer {tokens[who]}"},
                           **kwargs)
    return call


@pytest.fixture
def versions(api, tmp_path):
    """func1 versions 1.0 and 2.0 registered (not public: only a service opens them to business users)."""
    repo = make_repo(tmp_path / "repos" / "funcs", calc_files("v1"), tag="v1")
    commit(repo, calc_files("v2"), tag="v2")
    assert api("POST", "/repos", "admin", json={"location": str(repo), "name": "funcs"}).status_code == 201
    for version, ref in (("1.0", "v1"), ("2.0", "v2")):
        resp = api("POST", "/functions", "super", json=registration(version, ref))
        assert resp.status_code == 201, resp.get_json()
    return ("1.0", "2.0")


def test_deploy_rollback_undeploy_and_pinned_calls(api, versions, db):
    created = api("POST", "/services", "super", json={"name": "answer", "function": "func1", "version": "1.0",
                                                       "price": 2})
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["partition"] == "public" and created.get_json()["deployed"] == "1.0"
    assert api("POST", "/services", "plain", json={"name": "x", "function": "func1", "version": "1.0"}).status_code == 403
    unknown = api("POST", "/services", "super", json={"name": "y", "function": "func1", "version": "9.9"})
    assert unknown.status_code == 404
    assert api("POST", "/services/answer/rollback", "super").status_code == 409  # nothing to go back to

    # A business user with credits calls it: the task is pinned to 1.0 with the service's price.
    assert api("POST", "/users/bob/credits", "admin", json={"amount": 100}).status_code == 200
    first = api("POST", "/tasks", "plain", json={"service": "answer", "args": []})
    assert first.status_code == 201, first.get_json()
    assert (first.get_json()["function"], first.get_json()["version"]) == ("func1", "1.0")
    assert first.get_json()["service"] == "answer" and first.get_json()["price"] == {"per_call": 2}

    deployed = api("POST", "/services/answer/deploy", "super", json={"version": "2.0"}).get_json()
    assert (deployed["deployed"], deployed["previous"]) == ("2.0", "1.0")
    bulk = api("POST", "/tasks", "plain", json=[{"service": "answer"}, {"service": "answer", "priority": 1}])
    assert bulk.status_code == 201 and {i["version"] for i in bulk.get_json()["items"]} == {"2.0"}
    # The first task stays pinned to the version deployed when it was published.
    assert api("GET", f"/tasks/{first.get_json()['id']}", "plain").get_json()["version"] == "1.0"

    rolled = api("POST", "/services/answer/rollback", "super").get_json()
    assert (rolled["deployed"], rolled["previous"]) == ("1.0", "2.0")
    assert api("POST", "/tasks", "plain", json={"service": "answer"}).get_json()["version"] == "1.0"

    assert api("POST", "/services/answer/undeploy", "super").status_code == 200
    refused = api("POST", "/tasks", "plain", json={"service": "answer"})
    assert refused.status_code == 409 and "undeployed" in refused.get_json()["error"]["message"]
    assert api("GET", f"/tasks/{first.get_json()['id']}", "plain").get_json()["status"] == "queued"  # left alone
    assert api("POST", "/services/answer/deploy", "super", json={"version": "2.0"}).status_code == 200
    assert api("POST", "/tasks", "plain", json={"service": "answer"}).get_json()["version"] == "2.0"

    both = api("POST", "/tasks", "plain", json={"service": "answer", "function": "echo"})
    assert both.status_code == 422 and both.get_json()["error"]["field"] == "service"

    detail = api("GET", "/services/answer", "plain").get_json()
    assert [h["action"] for h in detail["history"]] == ["create", "deploy", "rollback", "undeploy", "deploy"]
    trail = [e["action"] for e in db.audit.find({"target": "answer"}).sort("at", 1)]
    assert trail == ["service.create", "service.deploy", "service.rollback", "service.undeploy", "service.deploy"]


def test_partitions_hide_services_and_groups_grant_them(api, versions):
    assert api("POST", "/groups", "super", json={"name": "nlp-team", "partitions": ["nlp"]}).status_code == 403
    group = api("POST", "/groups", "admin", json={"name": "nlp-team", "partitions": ["nlp"]})
    assert group.status_code == 201 and group.get_json()["partitions"] == ["nlp"]
    assert api("POST", "/groups", "admin", json={"name": "bad", "partitions": ["NLP!"]}).status_code == 422
    assert api("POST", "/services", "super", json={"name": "tagger", "function": "func1", "version": "1.0",
                                                   "partition": "nlp"}).status_code == 201

    # Given the service in "nlp": nina's group grants it, bob has no group.
    assert [s["name"] for s in api("GET", "/services", "nlp").get_json()["items"]] == ["tagger"]
    assert api("GET", "/services", "plain").get_json()["items"] == []
    hidden = api("GET", "/services/tagger", "plain")
    assert hidden.status_code == 404 and hidden.get_json()["error"]["message"] == "no service named 'tagger'"
    assert api("POST", "/tasks", "plain", json={"service": "tagger"}).status_code == 404
    assert api("POST", "/tasks", "nlp", json={"service": "tagger"}).status_code == 201
    assert api("POST", "/services/tagger/deploy", "nlp", json={"version": "2.0"}).status_code == 403

    # Revoking the partition from the group closes it at once.
    patched = api("PATCH", "/groups/nlp-team", "admin", json={"partitions": ["vision"]})
    assert patched.status_code == 200 and patched.get_json()["partitions"] == ["vision"]
    assert api("POST", "/tasks", "nlp", json={"service": "tagger"}).status_code == 404
    assert [g["name"] for g in api("GET", "/groups", "admin").get_json()["items"]] == ["nlp-team"]
    assert api("DELETE", "/groups/nlp-team", "admin").status_code == 200
    assert api("GET", "/groups/nlp-team", "admin").status_code == 404


def test_a_function_in_a_closed_partition_is_unknown_to_those_outside(api, versions):
    body = {**registration("3.0", "v2"), "public": True, "partition": "vision"}
    assert api("POST", "/functions", "super", json=body).status_code == 201
    assert api("POST", "/functions", "super", json={**registration("4.0", "v2"), "partition": "Bad!"}).status_code == 422

    def listed(who):
        return {(f["code"], f["version"]) for f in api("GET", "/functions?code=func1", who).get_json()["items"]}
    assert ("func1", "3.0") not in listed("plain") and ("func1", "3.0") in listed("admin")
    assert api("GET", "/functions/func1/3.0", "plain").status_code == 404
    assert api("POST", "/tasks", "plain", json={"function": "func1", "version": "3.0"}).status_code == 404

    # A group granting "vision" opens it to its members.
    assert api("POST", "/groups", "admin", json={"name": "nlp-team", "partitions": ["vision"]}).status_code == 201
    assert ("func1", "3.0") in listed("nlp")
    assert api("GET", "/functions/func1/3.0", "nlp").status_code == 200
    assert api("POST", "/tasks", "nlp", json={"function": "func1", "version": "3.0"}).status_code == 201


def test_cli_and_sdk_call_a_service_on_a_real_server(cluster):
    import subprocess
    import sys

    from suanwang.sdk import Client

    cluster.start_server()
    cluster.start_worker("w1", concurrency=1)
    env = {"SUANWANG_SERVER": cluster.url.rsplit("/api/v1", 1)[0], "SUANWANG_TOKEN": cluster.token,
           "PATH": "/usr/bin:/bin"}

    def cli(*args):
        done = subprocess.run([sys.executable, "-m", "suanwang", *args], capture_output=True, text=True, env=env,
                              timeout=60)
        return done.returncode, done.stdout + done.stderr
    code, out = cli("service", "create", "say", "--function", "echo", "--version", "builtin", "--price", "1.5")
    assert code == 0 and "echo@builtin" in out and "price 1.5" in out, out
    code, out = cli("submit", "--service", "say", '"hello"')  # a priced call needs credits (402)
    assert code == 2 and "insufficient_credits" in out, out
    code, out = cli("credits", "topup", "admin", "10", "--note", "for the service")
    assert code == 0 and "user:admin: +10 credits, balance 10" in out, out
    code, out = cli("submit", "--service", "say", '"hello"', "--wait")
    assert code == 0 and json.loads(out.splitlines()[0]) == "hello", out
    with Client(env["SUANWANG_SERVER"], cluster.token) as client:
        assert client.call_service("say", {"x": 1}).result(timeout=60) == {"x": 1}
        assert client.ledger("admin")["items"][0]["reason"] in ("reserve", "refund")
    code, out = cli("credits", "ledger", "admin")
    assert code == 0 and out.startswith("balance 7 credits") and "topup" in out and "for the service" in out, out
    code, out = cli("credits", "topup", "admin", "--", "-100")  # a correction never goes below zero
    assert code == 2 and "below zero" in out, out
    assert cli("service", "rollback", "say")[0] == 2  # nothing to roll back to: one clear line
    code, out = cli("service", "undeploy", "say")
    assert code == 0 and "undeployed" in out
    code, out = cli("submit", "--service", "say", "1")
    assert code == 2 and "service 'say' is undeployed" in out, out
    code, out = cli("service", "list")
    assert code == 0 and out.startswith("say")


def test_the_openapi_document_lists_the_routes_with_their_bodies(api):
    doc = api("GET", "/openapi.json", "plain").get_json()
    for path, methods in {"/groups": {"get", "post"}, "/groups/{name}": {"get", "patch", "delete"},
                          "/services": {"get", "post"}, "/services/{name}": {"get"},
                          "/services/{name}/deploy": {"post"}, "/services/{name}/rollback": {"post"},
                          "/services/{name}/undeploy": {"post"}}.items():
        assert methods <= set(doc["paths"][path]), path
    body = doc["paths"]["/services"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["name", "function", "version"] and body["properties"]["price"]["minimum"] == 0
    assert "service" in doc["components"]["schemas"]["Task"]["properties"]


def test_calls_are_pinned_to_one_deployed_version_while_redeploys_happen(api, versions, db):
    import threading

    from scheduler import service, service_services

    store = Store(db)
    sue, bob = store.users.find("sue"), store.users.find("bob")
    service_services.create_service(store, {"name": "answer", "function": "func1", "version": "1.0"}, sue)
    started, finished, deployed = [0], [0], ["1.0"]
    done = threading.Event()

    def redeploy():  # 30 switches between the two versions
        for i in range(30):
            version = ("2.0", "1.0")[i % 2]
            started[0] += 1
            service_services.deploy(store, "answer", {"version": version}, sue)
            deployed[0] = version
            finished[0] += 1
        done.set()

    thread = threading.Thread(target=redeploy)
    thread.start()
    checked = quiet = 0
    while not done.is_set() or checked == 0:
        before = (started[0], finished[0], deployed[0])
        docs = service.publish(store, [{"service": "answer"}] * 3, bob)
        after = (started[0], finished[0], deployed[0])
        versions_seen = {d["version"] for d in docs}
        assert len(versions_seen) == 1 and versions_seen <= {"1.0", "2.0"}  # one request: one version
        if before == after and before[0] == before[1]:  # no deploy in flight the whole time
            assert versions_seen == {before[2]}
            quiet += 1
        checked += 1
    thread.join()
    assert store.services.get("answer")["deployed"] == "1.0" and checked > 0
    assert len(store.services.get("answer")["history"]) == 31
