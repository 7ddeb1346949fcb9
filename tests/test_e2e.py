"""End to end: a real server and real worker processes on a real mongod, driven over HTTP and the CLI."""
import json
import subprocess
import sys

import pytest

from fsm.store import Store, database
from tests.procs import wait_for


@pytest.fixture
def tasks(db_uri):
    store = Store(database(db_uri))
    yield store.tasks
    store.close()


def test_300_mixed_priority_tasks_over_http_on_two_workers(cluster, tasks):
    # Given a server and two real worker processes
    cluster.start_server()
    cluster.start_worker("w1")
    cluster.start_worker("w2")
    # When 300 tasks of mixed priorities are published in bulk over HTTP
    ids = cluster.publish([{"function": "echo", "args": [i], "priority": i % 5} for i in range(300)])
    # Then all succeed with the right results, shared by both workers
    wait_for(lambda: tasks.counts_by_status()["succeeded"] == 300, 120, what="300 successes")
    docs = {d["_id"]: d for d in tasks.tasks.find({"_id": {"$in": ids}})}
    assert [docs[i]["result"] for i in ids] == list(range(300))
    assert {d["attempts"][0]["worker"] for d in docs.values()} == {"w1", "w2"}
    got = cluster.http().get(f"{cluster.url}/tasks/{ids[7]}", timeout=10).json()
    assert got["status"] == "succeeded" and got["result"] == 7
    assert [h["to"] for h in got["history"]] == ["queued", "running", "succeeded"]
    assert got["attempts"][0]["worker"] in ("w1", "w2")


def test_sigkill_of_a_worker_mid_task_puts_it_back(cluster, tasks):
    cluster.start_server()
    victim = cluster.start_worker("victim", concurrency=1)
    task_id = cluster.publish({"function": "tests.chaos_functions:whoami", "args": [2.0], "retry_backoff_s": 0})
    wait_for(lambda: tasks.get(task_id)["status"] == "running", 30, what="the task to start")
    victim.kill()
    cluster.start_worker("rescuer", concurrency=1)
    wait_for(lambda: tasks.get(task_id)["status"] == "succeeded", 60, what="the rescue")
    task = tasks.get(task_id)
    assert task["result"] == "rescuer"
    assert [(a["worker"], a["state"]) for a in task["attempts"]] == [("victim", "lost"), ("rescuer", "succeeded")]


def test_timeout_kills_the_attempt(cluster, tasks):
    cluster.start_server()
    cluster.start_worker("w1", concurrency=1)
    task_id = cluster.publish({"function": "sleep", "args": [30], "timeout_s": 1, "max_retries": 0})
    wait_for(lambda: tasks.get(task_id)["status"] == "failed", 30, what="the timeout")
    task = tasks.get(task_id)
    assert task["attempts"][0]["state"] == "timed_out"
    assert task["reason"] == "retries_exhausted"
    # the slot is free again: the next task runs
    nxt = cluster.publish({"function": "echo", "args": ["after"]})
    wait_for(lambda: tasks.get(nxt)["status"] == "succeeded", 30, what="the next task")


def test_cli_submit_wait_and_status(cluster, tasks):
    cluster.start_server()
    cluster.start_worker("w1", concurrency=1)
    env_args = ["--server-url", f"http://127.0.0.1:{cluster.port}", "--token", cluster.token]
    out = subprocess.run([sys.executable, "-m", "suanwang", "submit", "echo", '{"a": [1, 2]}', "--wait", *env_args],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"a": [1, 2]}
    failed = subprocess.run([sys.executable, "-m", "suanwang", "submit", "fail", "oops", "--max-retries", "0",
                             "--wait", *env_args], capture_output=True, text=True, timeout=60)
    assert failed.returncode == 1 and "oops" in failed.stdout
    status = subprocess.run([sys.executable, "-m", "suanwang", "status", *env_args], capture_output=True,
                            text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    assert "w1" in status.stdout and "succeeded" in status.stdout
    bad = subprocess.run([sys.executable, "-m", "suanwang", "submit", "no_such_fn", *env_args],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "no_such_fn" in bad.stderr


def test_exhausted_retries_are_listed_and_can_be_requeued(cluster, tasks):
    cluster.start_server()
    cluster.start_worker("w1", concurrency=1)
    task_id = cluster.publish({"function": "fail", "args": ["broken input"], "max_retries": 1,
                                "retry_backoff_s": 0.1})
    wait_for(lambda: tasks.get(task_id)["status"] == "failed", 60, what="retries to run out")
    task = tasks.get(task_id)
    assert task["reason"] == "retries_exhausted" and len(task["attempts"]) == 2
    assert all("broken input" in a["traceback"] for a in task["attempts"])
    http = cluster.http()
    listed = http.get(f"{cluster.url}/tasks", params={"status": "failed", "reason": "retries_exhausted"}).json()
    assert [t["id"] for t in listed["items"]] == [task_id]
    requeued = http.post(f"{cluster.url}/tasks/{task_id}/requeue", timeout=10)
    # (an idle worker may already have run and failed its first new attempt: pending is its retry's wait)
    assert requeued.status_code == 200 and requeued.json()["status"] in ("queued", "running", "pending")
    wait_for(lambda: len(tasks.get(task_id)["attempts"]) >= 1 and tasks.get(task_id)["status"] == "failed", 60,
             what="the re-queued round to run")
    again = tasks.get(task_id)
    assert len(again["previous_attempts"]) == 2 and [h["to"] for h in again["history"]].count("queued") >= 2


def test_a_schedule_fires_through_the_real_server_and_its_tasks_run(cluster, tasks):
    cluster.start_server()
    cluster.start_worker("w1", concurrency=1)
    http = cluster.http()
    resp = http.post(f"{cluster.url}/schedules", json={"id": "tick", "interval_s": 1,
                                                      "task": {"function": "echo", "args": ["tock"]}}, timeout=10)
    assert resp.status_code == 201, resp.text
    wait_for(lambda: tasks.tasks.count_documents({"schedule_id": "tick", "status": "succeeded"}) >= 2, 60,
             what="two scheduled runs")
    ids = [d["_id"] for d in tasks.tasks.find({"schedule_id": "tick"}, {"_id": 1})]
    assert all(i.startswith("tick@") for i in ids) and len(set(ids)) == len(ids)
    assert http.post(f"{cluster.url}/schedules/tick/pause", timeout=10).status_code == 200
