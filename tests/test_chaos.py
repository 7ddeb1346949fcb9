"""Reliability under real faults: killed and frozen workers, a restarted mongod and server,
redundant execution with quorum, cancellation. Every process here is real.

Recovery figures are printed (run with -s to see them): `pytest tests/test_chaos.py -s -m slow`.
"""
import os
import signal
import time
from collections import Counter

import pytest

from fsm.store import Store, database
from fsm.store.embedded import EmbeddedMongo
from tests.procs import Cluster, alive, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def store(db_uri):
    s = Store(database(db_uri))
    yield s
    s.close()


def report(name: str, seconds: float) -> None:
    print(f"\n[chaos] {name}: {seconds:.2f} s")


def successful_attempts(store) -> Counter:
    counts = Counter()
    for doc in store.db.tasks.find({}, {"attempts.state": 1, "redundancy": 1}):
        counts[doc["_id"]] = sum(1 for a in doc["attempts"] if a["state"] == "succeeded")
        assert counts[doc["_id"]] <= doc["redundancy"], doc
    return counts


def test_sigkill_one_of_three_workers_during_1000_tasks(cluster, store):
    # Given three workers and 1,000 tasks of 50 ms
    cluster.start_server()
    workers = [cluster.start_worker(f"w{i}", concurrency=2) for i in range(3)]
    ids = cluster.publish([{"function": "sleep", "args": [0.05], "retry_backoff_s": 0.2} for _ in range(1000)])
    wait_for(lambda: store.tasks.counts_by_status()["succeeded"] >= 200, 120, what="200 successes")
    # When one worker is SIGKILLed mid-run
    killed_at = time.monotonic()
    workers[0].kill()
    # Then all 1,000 succeed, none more often than its redundancy
    wait_for(lambda: store.tasks.counts_by_status()["succeeded"] == 1000, 180, what="1000 successes")
    report("1,000 tasks: from SIGKILL of one worker to all done", time.monotonic() - killed_at)
    counts = successful_attempts(store)
    assert len(counts) == 1000 and set(counts.values()) == {1}
    lost = store.db.tasks.count_documents({"attempts.state": "lost"})
    assert lost >= 1  # the killed worker really had work in flight
    recovered = [d for d in store.db.tasks.find({"attempts.state": "lost"}, {"attempts": 1})]
    gaps = [(d["attempts"][-1]["started_at"] - d["attempts"][0]["started_at"]).total_seconds() for d in recovered]
    report("lost attempt start to its re-run start (max)", max(gaps))
    assert set(ids) == {d["_id"] for d in store.db.tasks.find({}, {"_id": 1})}


def test_mongod_restart_mid_run(tmp_path):
    # Given a mongod of our own (the shared one must not restart under other tests)
    mongo = EmbeddedMongo(tmp_path / "db")
    uri = mongo.start()
    cluster = Cluster(uri.replace("/?", "/chaos?"), tmp_path)
    store = Store(database(cluster.uri))
    try:
        cluster.start_server()
        cluster.start_worker("a", concurrency=2)
        cluster.start_worker("b", concurrency=2)
        cluster.publish([{"function": "sleep", "args": [0.05]} for _ in range(300)])
        wait_for(lambda: store.tasks.counts_by_status()["succeeded"] >= 60, 120, what="60 successes")
        # When mongod stops (SIGTERM) and starts again on the same data directory
        mongo.stop()
        time.sleep(1.0)
        mongo.start()
        restarted = time.monotonic()
        done_before = store.tasks.counts_by_status()["succeeded"]
        wait_for(lambda: store.tasks.counts_by_status()["succeeded"] > done_before, 120, what="progress again")
        report("mongod restart: back up to the next success", time.monotonic() - restarted)
        # Then every task finishes, once
        wait_for(lambda: store.tasks.counts_by_status()["succeeded"] == 300, 180, what="300 successes")
        report("mongod restart: to all 300 done", time.monotonic() - restarted)
        assert set(successful_attempts(store).values()) == {1}
        assert all(p.alive() for p in cluster.procs)  # nobody died of it
    finally:
        cluster.close()
        store.close()
        mongo.stop()


def test_server_killed_and_restarted_mid_run(cluster, store):
    cluster.start_server()
    cluster.start_worker("a", concurrency=2)
    first = cluster.publish([{"function": "sleep", "args": [0.05]} for _ in range(200)])
    wait_for(lambda: store.tasks.counts_by_status()["succeeded"] >= 20, 60, what="20 successes")
    cluster.server.kill()
    killed = time.monotonic()
    cluster.start_server(port=cluster.port)
    report("server SIGKILL to healthy again", time.monotonic() - killed)
    second = cluster.publish([{"function": "echo", "args": [i]} for i in range(100)])
    wait_for(lambda: store.tasks.counts_by_status()["succeeded"] == 300, 120, what="300 successes")
    assert store.db.tasks.count_documents({"_id": {"$in": first + second}}) == 300


def test_frozen_worker_loses_its_lease_and_its_late_result_is_refused(cluster, store):
    cluster.start_server()
    frozen = cluster.start_worker("frozen", concurrency=1, heartbeat=0.5)
    task_id = cluster.publish({"function": "tests.chaos_functions:whoami", "args": [3.0], "retry_backoff_s": 0})
    wait_for(lambda: store.tasks.get(task_id)["status"] == "running", 30, what="the task to start")
    # When the worker is frozen past its lease
    os.killpg(frozen.pid, signal.SIGSTOP)
    frozen_at = time.monotonic()
    try:
        cluster.start_worker("healthy", concurrency=1)
        wait_for(lambda: store.tasks.get(task_id)["status"] == "succeeded", 60, what="the re-run elsewhere")
        report("frozen worker: SIGSTOP to the task re-run and done elsewhere", time.monotonic() - frozen_at)
    finally:
        os.killpg(frozen.pid, signal.SIGCONT)
    # Then, resumed, its late result is refused (or its attempt killed first, by the store's word or by
    # its own lease deadline): the healthy result stays
    wait_for(lambda: "was dropped" in frozen.tail(20000)
             or "stopped (cancelled, or its lease was lost)" in frozen.tail(20000), 30,
             what="the resumed worker to give up its late attempt")
    task = store.tasks.get(task_id)
    assert task["result"] == "healthy"
    assert [(a["worker"], a["state"]) for a in task["attempts"]] == [("frozen", "lost"), ("healthy", "succeeded")]
    assert frozen.alive()  # it carried on after being refused


@pytest.fixture
def three_workers(cluster):
    cluster.start_server()
    for name in ("liar", "w2", "w3"):
        cluster.start_worker(name, concurrency=1)
    return cluster


def test_redundancy_three_quorum_two(three_workers, store):
    cluster = three_workers
    agree, lie, dispute = cluster.publish([
        {"function": "sleep", "args": [1.0], "redundancy": 3, "quorum": 2},
        {"function": "tests.chaos_functions:answer", "args": [42], "redundancy": 3, "quorum": 2},
        {"function": "tests.chaos_functions:random_value", "redundancy": 3, "quorum": 2},
    ])
    for task_id in (agree, lie, dispute):
        wait_for(lambda: store.tasks.get(task_id)["status"] in ("succeeded", "failed"), 60, what="a decision")
    a = store.tasks.get(agree)
    assert a["status"] == "succeeded" and a["result"] == 1.0
    # all three idle workers started it; the third is cancelled, or agrees, once quorum is reached
    assert len({att["worker"] for att in a["attempts"]}) == len(a["attempts"]) == 3
    assert sum(att["state"] == "succeeded" for att in a["attempts"]) >= 2
    b = store.tasks.get(lie)
    assert b["status"] == "succeeded" and b["result"] == {"value": 42}
    c = store.tasks.get(dispute)
    assert c["status"] == "failed" and c["reason"] == "disputed"
    assert len({att["result"] for att in c["attempts"]}) == 3  # every result kept
    successful_attempts(store)


def test_cancel_queued_and_running(cluster, store, tmp_path):
    cluster.start_server()
    cluster.start_worker("w", concurrency=1, heartbeat=0.5)
    pid_file = tmp_path / "pid"
    running = cluster.publish({"function": "tests.chaos_functions:pid_sleep", "args": [str(pid_file), 60]})
    queued = cluster.publish({"function": "echo", "args": ["never"], "priority": -5})
    wait_for(lambda: pid_file.exists() and pid_file.read_text(), 30, what="the attempt's pid")
    child = int(pid_file.read_text())
    http = cluster.http()
    assert http.post(f"{cluster.url}/tasks/{queued}/cancel", timeout=10).status_code == 200
    assert store.tasks.get(queued)["status"] == "cancelled"  # immediate
    assert http.post(f"{cluster.url}/tasks/{running}/cancel", timeout=10).status_code == 200
    cancelled_at = time.monotonic()
    wait_for(lambda: not alive(child), 10, what="the cancelled attempt's process to be killed")
    report("cancel of a running task to its process killed", time.monotonic() - cancelled_at)
    task = store.tasks.get(running)
    assert task["status"] == "cancelled" and task["attempts"][0]["state"] == "cancelled"
    after = cluster.publish({"function": "echo", "args": ["free"]})
    wait_for(lambda: store.tasks.get(after)["status"] == "succeeded", 30, what="the freed slot")
