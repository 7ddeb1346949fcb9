"""The server as a whole: real ``suanwang server`` processes, signals, the admin bootstrap, and
a MongoDB restart under a running server."""
import signal
import sys
import threading

import requests

from fsm.store import Store
from fsm.store.embedded import EmbeddedMongo, free_port
from scheduler.config import ServerConfig
from scheduler.leader_loop import LOCK
from scheduler.server import Server, serve
from tests.apiserver import wait_for
from tests.procs import Proc


def server_proc(db_uri, port, token, log):
    return Proc([sys.executable, "-m", "suanwang", "server", "--mongo", db_uri, "--port", str(port)], log,
                {"SUANWANG_ADMIN_TOKEN": token})


def test_two_server_processes_share_one_scheduler_and_stop_cleanly_on_sigterm(store, db_uri, tmp_path):
    token = "process-admin-token"
    ports = [free_port(), free_port()]
    procs = [server_proc(db_uri, port, token, tmp_path / f"server-{i}.log") for i, port in enumerate(ports)]
    try:
        for proc, port in zip(procs, ports):
            wait_for(lambda: requests.get(f"http://127.0.0.1:{port}/api/v1/healthz", timeout=2).ok
                     or not proc.alive(), 60, what="healthz")
            assert proc.alive(), proc.tail()
        # Both serve the API; exactly one holds the scheduler lease
        auth = {"Authorization": f"Bearer {token}"}
        for port in ports:
            resp = requests.post(f"http://127.0.0.1:{port}/api/v1/tasks", json={"function": "noop"}, headers=auth,
                                 timeout=10)
            assert resp.status_code == 201, resp.text
        assert store.db.tasks.count_documents({}) == 2
        holder = wait_for(lambda: (store.db.locks.find_one({"_id": LOCK}) or {}).get("holder"), 30,
                          what="a scheduler lease holder")
        assert store.db.locks.count_documents({}) == 1
        first = next(p for p in procs if f":{p.pid}:" in holder)
        other = next(p for p in procs if p is not first)
        # When the leader gets SIGTERM it exits 0 and the other server takes the lease over
        first.signal(signal.SIGTERM)
        assert first.proc.wait(30) == 0, first.tail()
        wait_for(lambda: f":{other.pid}:" in (store.db.locks.find_one({"_id": LOCK}) or {}).get("holder", ""), 30,
                 what="the other server to take the lease")
        other.signal(signal.SIGINT)
        assert other.proc.wait(30) == 0, other.tail()
        assert store.db.locks.count_documents({}) == 0  # given back on the way out
    finally:
        for proc in procs:
            proc.kill()


def test_serve_creates_the_admin_once_and_says_when_it_is_ready(db, db_uri, db_name):
    config = ServerConfig(mongo_uri=db_uri, db_name=db_name, port=0, threads=2, run_scheduler=False)
    ready = []
    done = []
    thread = threading.Thread(target=lambda: done.append(serve(config, ready=ready.append)), daemon=True)
    thread.start()
    server = wait_for(lambda: ready and ready[0], 30, what="serve() to be ready")
    try:
        # The first start created the admin and hands its token over once
        assert server.new_admin_token
        resp = requests.get(f"{server.url}/api/v1/users", timeout=10,
                            headers={"Authorization": f"Bearer {server.new_admin_token}"})
        assert resp.status_code == 200 and [u["name"] for u in resp.json()["items"]] == ["admin"]
        # A second server on the same database makes no new admin token
        second = Server(config, Store(db))
        assert second.new_admin_token is None
        second.stop()
    finally:
        server.stop()
    thread.join(30)
    assert done == [0]


def test_requests_get_503_while_mongodb_restarts_then_work_again(tmp_path):
    mongo = EmbeddedMongo(tmp_path / "db")
    mongo.start()
    config = ServerConfig(mongo_uri=mongo.uri, db_name="restart", port=0, threads=4, admin_token="restart-admin",
                          mongo_timeout_s=1, leader_lease_s=3, housekeeping_s=0.5)
    server = Server(config).start()
    api = f"{server.url}/api/v1"
    auth = {"Authorization": "Bearer restart-admin"}
    try:
        assert requests.post(f"{api}/tasks", json={"function": "noop"}, headers=auth, timeout=10).status_code == 201
        wait_for(lambda: server.leader.is_leader, 30, what="leadership")
        # When MongoDB goes away, requests fail fast with 503 and a JSON error
        mongo.stop()
        wait_for(lambda: requests.get(f"{api}/healthz", timeout=10).status_code == 503, 30, what="healthz 503")
        resp = requests.get(f"{api}/tasks", headers=auth, timeout=30)
        assert resp.status_code == 503 and resp.json()["error"]["code"] == "database_unavailable"
        wait_for(lambda: not server.leader.is_leader, 30, what="the leader to stop its jobs")
        # Then once it is back, everything works again without a restart
        mongo.start()
        wait_for(lambda: requests.get(f"{api}/healthz", timeout=10).ok, 60, what="healthz ok again")
        resp = requests.post(f"{api}/tasks", json={"function": "noop"}, headers=auth, timeout=30)
        assert resp.status_code == 201, resp.text
        assert requests.get(f"{api}/tasks", headers=auth, timeout=10).json()["total"] == 2
        wait_for(lambda: server.leader.is_leader, 30, what="leadership regained")
    finally:
        server.stop()
        mongo.stop()
