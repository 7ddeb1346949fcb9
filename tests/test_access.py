"""MongoDB access control: an embedded mongod with --auth and a keyfile, a server user and a
least-privilege worker user (``fsm.store.access``), tested against a real mongod."""
from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys

import pytest
import requests
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from fsm.store import access, database
from fsm.store.embedded import EmbeddedMongo, free_port
from tests.procs import ROOT, Cluster, Proc, wait_for

UNAUTHORIZED = 13


@pytest.fixture(scope="module")
def secure_mongo(tmp_path_factory):
    """A mongod of its own with access control on (the session's ``mongo`` has none)."""
    server = EmbeddedMongo(tmp_path_factory.mktemp("secure-mongod"), auth=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fresh(secure_mongo):
    """Suanwang's database emptied before the test (as admin; users and roles live in ``admin``)."""
    admin = MongoClient(secure_mongo.admin_uri)
    admin.drop_database(secure_mongo.db_name)
    admin.close()
    return secure_mongo


def refused(op) -> OperationFailure:
    with pytest.raises(OperationFailure) as info:
        op()
    assert info.value.code == UNAUTHORIZED, info.value
    return info.value


def test_secrets_are_private_files(secure_mongo):
    creds = secure_mongo.credentials_path
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    assert stat.S_IMODE((secure_mongo.data_dir / access.KEYFILE).stat().st_mode) == 0o400
    stored = json.loads(creds.read_text())["users"]
    assert set(stored) == {"admin", "suanwang-server", "suanwang-worker"} and len(set(stored.values())) == 3
    assert f"suanwang-worker:{stored['suanwang-worker']}@" in secure_mongo.worker_uri


def test_an_unauthenticated_client_can_read_nothing(fresh):
    server = database(fresh.uri)
    server.tasks.insert_one({"_id": "t1", "status": "queued"})
    server.client.close()
    anonymous = MongoClient(fresh.plain_uri, serverSelectionTimeoutMS=5000)
    try:
        refused(lambda: anonymous.suanwang.list_collection_names())
        refused(lambda: anonymous.suanwang.tasks.find_one())
        refused(lambda: anonymous.list_database_names())
        refused(lambda: anonymous.admin.command("createUser", "intruder", pwd="x", roles=["root"]))
    finally:
        anonymous.close()
    wrong = MongoClient(access.with_user(fresh.plain_uri, "suanwang-worker", "not-the-password"),
                        serverSelectionTimeoutMS=5000)
    with pytest.raises(OperationFailure, match="Authentication failed"):
        wrong.suanwang.tasks.find_one()
    wrong.close()


def test_the_worker_user_cannot_touch_users_settings_or_the_registry(fresh):
    server = database(fresh.uri)
    server.users.insert_one({"_id": "alice", "role": "admin", "tokens": [{"hash": "h"}]})
    server.functions.insert_one({"_id": "f@1", "code": "f"})
    server.command("collMod", "functions", validator={"code": {"$type": "string"}})  # the server sets validators
    server.repos.insert_one({"_id": "r", "url": "https://example.org/r.git"})
    worker = database(fresh.worker_uri)
    try:
        refused(lambda: worker.users.insert_one({"_id": "mallory", "role": "admin"}))
        refused(lambda: worker.users.find_one())
        refused(lambda: worker.users.update_one({"_id": "alice"}, {"$set": {"role": "general"}}))
        refused(lambda: worker.functions.insert_one({"_id": "evil@1", "code": "evil"}))
        refused(lambda: worker.functions.update_one({"_id": "f@1"}, {"$set": {"repo": "evil"}}))
        refused(lambda: worker.repos.update_one({"_id": "r"}, {"$set": {"url": "https://evil.example/x.git"}}))
        refused(lambda: worker.repos.delete_one({"_id": "r"}))
        for name in ("settings", "subscriptions", "schedules", "credits", "ledger", "sessions", "token_uses", "audit"):
            refused(lambda: worker[name].find_one())
            refused(lambda: worker[name].insert_one({"x": 1}))
        refused(lambda: worker.tasks.delete_many({}))  # it may insert tasks (a running task's children), never delete
        refused(lambda: worker.list_collection_names())
        refused(lambda: worker.command("collMod", "tasks", validator={}))
        refused(lambda: worker.client.admin.command("createUser", "x", pwd="x", roles=["root"]))
        # what it may do: read function versions and repositories, and its own collections
        assert worker.functions.find_one({"_id": "f@1"})["code"] == "f"
        assert worker.repos.find_one({"_id": "r"})
    finally:
        worker.client.close()
        server.client.close()
    assert database(fresh.admin_uri).users.count_documents({}) == 1


def test_a_real_worker_with_the_worker_user_runs_a_task_published_through_a_real_server(fresh, tmp_path):
    # the server process connects as suanwang-server (it creates the indexes and collections)
    cluster = Cluster(fresh.uri, tmp_path)
    try:
        cluster.start_server()
        worker = Proc(cluster.cli("worker", "--mongo", fresh.worker_uri, "--name", "w-auth", "--concurrency", "1",
                                  "--heartbeat", "0.5", "--cache-dir", str(tmp_path / "cache")),
                      tmp_path / "worker.log")
        cluster.procs.append(worker)
        db = database(fresh.uri)
        wait_for(lambda: db.workers.count_documents({"_id": "w-auth", "state": "online"}) == 1 or not worker.alive(),
                 60, what="the worker online")
        assert worker.alive(), worker.tail()
        ids = cluster.publish([{"function": "echo", "args": [{"n": 7}]}, {"function": "fail", "args": ["boom"],
                                                                           "max_retries": 0}])
        http = cluster.http()

        def ended():
            docs = [http.get(f"{cluster.url}/tasks/{i}", timeout=10).json() for i in ids]
            return docs if all(d["status"] in ("succeeded", "failed") for d in docs) else None
        ok, failed = wait_for(ended, 60, what="both tasks to end")
        assert ok["status"] == "succeeded" and ok["result"] == {"n": 7}, ok
        assert failed["status"] == "failed" and "boom" in (failed.get("error") or ""), failed
        assert {a["worker"] for a in ok["attempts"]} == {"w-auth"}
        # the heartbeat's samples and the worker's whoami were written under the worker user
        wait_for(lambda: db.worker_samples.count_documents({"worker": "w-auth"}) >= 1, 30, what="a sample")
        wait_for(lambda: db.machine_stats.count_documents({"worker": "w-auth"}) >= 1, 30, what="its outcomes")
        assert "not authorized" not in worker.tail(20000), worker.tail()
        assert worker.stop() == 0, worker.tail()
        assert db.workers.find_one({"_id": "w-auth"})["state"] == "offline"
        db.client.close()
    finally:
        cluster.close()


def test_an_unauthenticated_data_dir_is_upgraded_on_start(tmp_path):
    # Given a data directory made before access control, holding a task
    old = EmbeddedMongo(tmp_path / "db")
    old.start()
    database(old.uri).tasks.insert_one({"_id": "kept"})
    old.stop()
    # When it starts with access control
    again = EmbeddedMongo(tmp_path / "db", port=old.port, auth=True)
    again.start()
    try:
        # Then its data is there for the users, and nobody else can read it
        assert database(again.uri).tasks.find_one({"_id": "kept"}) == {"_id": "kept"}
        assert database(again.worker_uri).tasks.find_one({"_id": "kept"}) == {"_id": "kept"}
        anonymous = MongoClient(again.plain_uri, serverSelectionTimeoutMS=5000)
        refused(lambda: anonymous.suanwang.tasks.find_one())
        anonymous.close()
    finally:
        again.stop()
    # and a restart keeps the same users (the stored passwords still work)
    third = EmbeddedMongo(tmp_path / "db", port=old.port, auth=True)
    third.start()
    try:
        assert database(third.worker_uri).tasks.find_one({"_id": "kept"})
    finally:
        third.stop()


def test_ensure_users_is_idempotent_and_redefines_the_role(secure_mongo):
    admin = MongoClient(secure_mongo.admin_uri)
    try:
        access.ensure_users(admin, secure_mongo.credentials)
        access.ensure_users(admin, secure_mongo.credentials)
        role = admin.admin.command("rolesInfo", access.WORKER_ROLE, showPrivileges=True)["roles"][0]
        granted = {p["resource"]["collection"]: sorted(p["actions"]) for p in role["privileges"]}
        assert granted == {c: sorted(a) for c, a in access.WORKER_ACTIONS.items()}
        assert "users" not in granted and "settings" not in granted
        users = {u["user"]: u["roles"] for u in admin.admin.command("usersInfo")["users"]}
        assert users["suanwang-worker"] == [{"role": access.WORKER_ROLE, "db": "admin"}]
        assert {"role": "readWrite", "db": "suanwang"} in users["suanwang-server"]
        assert {"role": access.SCHEMA_ROLE, "db": "admin"} in users["suanwang-server"]
    finally:
        admin.close()


@pytest.mark.slow
def test_up_on_a_fresh_data_dir_prints_a_worker_uri_that_works(tmp_path):
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    env.pop("SUANWANG_MONGO_URI", None)
    log = tmp_path / "up.log"
    data = tmp_path / "data"
    proc = subprocess.Popen([sys.executable, "-m", "suanwang", "up", "--data-dir", str(data), "--port", str(port),
                             "--concurrency", "1"], env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        wait_for(lambda: "Press Ctrl-C" in log.read_text() or proc.poll() is not None, 120, what="up to start")
        text = log.read_text()
        assert proc.poll() is None, text
        uri = re.search(r"MongoDB URI\s*:\s*(\S+)", text).group(1)
        assert uri.startswith("mongodb://suanwang-worker:") and "authSource=admin" in uri, uri
        creds = data / "db" / access.CREDENTIALS_FILE
        assert stat.S_IMODE(creds.stat().st_mode) == 0o600
        assert json.loads(creds.read_text())["users"]["suanwang-worker"] in uri
        # the local worker (worker user) runs a task published over HTTP (the server uses its own user)
        token = (data / "admin.token").read_text().strip()
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {token}"
        task = http.post(f"http://127.0.0.1:{port}/api/v1/tasks", json={"function": "echo", "args": [3]}).json()
        wait_for(lambda: http.get(f"http://127.0.0.1:{port}/api/v1/tasks/{task['id']}").json()["status"]
                 == "succeeded", 60, what="the task")
        # the printed URI works for a worker's reads and is refused where a worker has no business
        worker = database(uri)
        assert worker.tasks.find_one({"_id": task["id"]})["result"] == 3
        refused(lambda: worker.users.find_one())
        refused(lambda: worker.users.insert_one({"_id": "mallory", "role": "admin"}))
        worker.client.close()
        anonymous = MongoClient(uri.replace(uri[len("mongodb://"):uri.index("@") + 1], ""),
                                serverSelectionTimeoutMS=5000)
        refused(lambda: anonymous.suanwang.tasks.find_one())
        anonymous.close()
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise


def test_with_access_control_a_restart_on_all_interfaces_readvertises(tmp_path):
    first = EmbeddedMongo(tmp_path / "db", auth=True)
    first.start()
    first.stop()
    again = EmbeddedMongo(tmp_path / "db", port=first.port, bind_ip="0.0.0.0", advertise="127.0.0.2", auth=True)
    uri = again.start()
    try:
        assert "@127.0.0.2:" in uri
        db = database(again.worker_uri)
        assert db.client.admin.command("hello")["hosts"] == [f"127.0.0.2:{first.port}"]
        db.workers.insert_one({"_id": "w"})
        db.client.close()
    finally:
        again.stop()


def test_the_worker_user_reads_and_writes_the_data_bucket_but_not_other_buckets(fresh):
    import io

    from gridfs import GridFSBucket

    server = database(fresh.uri)
    worker = database(fresh.worker_uri)
    try:
        # the server stores an argument (GridFS creates the bucket's indexes on the first upload)
        arg_id = GridFSBucket(server, bucket_name=access.DATA_BUCKET).upload_from_stream("arg", io.BytesIO(b"x" * 10))
        bucket = GridFSBucket(worker, bucket_name=access.DATA_BUCKET)
        assert bucket.open_download_stream(arg_id).read() == b"x" * 10
        # a large result stored by the worker, and an aborted upload cleaned up by it
        result_id = bucket.upload_from_stream("result", io.BytesIO(b"y" * 300_000))
        assert GridFSBucket(server, bucket_name=access.DATA_BUCKET).open_download_stream(result_id).read()[:1] == b"y"
        aborted = bucket.open_upload_stream("partial")
        aborted.write(b"z" * 300_000)
        aborted.abort()
        assert server[f"{access.DATA_BUCKET}.chunks"].count_documents({"files_id": aborted._id}) == 0
        # other buckets are not the worker's
        refused(lambda: GridFSBucket(worker, bucket_name="fs").upload_from_stream("x", io.BytesIO(b"x")))
        refused(lambda: worker[f"{access.DATA_BUCKET}.files"].update_one({"_id": arg_id}, {"$set": {"x": 1}}))
    finally:
        worker.client.close()
        server.client.close()


def test_credentials_written_before_the_users_were_made_still_start(tmp_path):
    # Given a data directory whose credentials file exists but whose users were never created
    # (the first start was killed in between, or install_server.sh wrote the file)
    old = EmbeddedMongo(tmp_path / "db")
    old.start()
    old.stop()
    access.load_or_create_credentials(tmp_path / "db" / access.CREDENTIALS_FILE)
    # When it starts with access control, the users are made with the stored passwords
    again = EmbeddedMongo(tmp_path / "db", port=old.port, auth=True)
    again.start()
    try:
        database(again.worker_uri).workers.insert_one({"_id": "w"})
        assert database(again.uri).workers.find_one({"_id": "w"}) == {"_id": "w"}
    finally:
        again.stop()
