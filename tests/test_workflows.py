"""Workflows on real processes: a real server and real workers on a real mongod, driven over HTTP.

DAGs with results passed along, failure propagation, child tasks (fan-out and gather, a
cancelled parent), ``async def`` functions, multi-process tasks and their process trees,
live progress and log lines.
"""
import asyncio
import threading
from pathlib import Path

import pytest
from aiohttp import web

from tests.procs import alive, wait_for

F = "tests.flow_functions"


def get(cluster, task_id):
    resp = cluster.http().get(f"{cluster.url}/tasks/{task_id}", timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()


def final(cluster, task_id, timeout=60):
    return wait_for(lambda: (t := get(cluster, task_id))["status"] in ("succeeded", "failed", "cancelled") and t,
                    timeout, what=f"task {task_id} to end")


@pytest.fixture
def running(cluster):
    cluster.start_server()
    cluster.start_worker("w1", concurrency=2, heartbeat=0.3)
    return cluster


def test_a_three_level_dag_passes_results_along(running):
    ids = running.publish([
        {"id": "a", "function": f"{F}:add", "args": [1, 2]},
        {"id": "b", "function": f"{F}:add", "args": [{"__result__": "a"}, 10], "depends_on": ["a"]},
        {"id": "c", "function": f"{F}:add", "args": [{"__result__": "a"}], "kwargs": {"b": {"__result__": "b"}},
         "depends_on": ["a", "b"]},
    ])
    assert ids == ["a", "b", "c"]
    c = final(running, "c")
    assert c["status"] == "succeeded" and c["result"] == 3 + 13
    assert get(running, "b")["result"] == 13
    assert [h["to"] for h in c["history"]] == ["pending", "queued", "running", "succeeded"]


def test_a_failure_cancels_the_rest_of_the_dag(running):
    running.publish([
        {"id": "top", "function": f"{F}:fail", "max_retries": 0},
        {"id": "mid", "function": f"{F}:add", "args": [{"__result__": "top"}, 1], "depends_on": ["top"]},
        {"id": "low", "function": f"{F}:add", "args": [1, 1], "depends_on": ["mid"]},
    ])
    assert final(running, "top")["status"] == "failed"
    for task_id in ("mid", "low"):
        task = final(running, task_id)
        assert (task["status"], task["reason"]) == ("cancelled", "upstream_failed")
        assert task["attempts"] == []


def test_fan_out_and_gather_without_holding_a_slot(cluster):
    # One worker slot: a parent that waited for its children would never see them run
    cluster.start_server()
    cluster.start_worker("solo", concurrency=1, heartbeat=0.3)
    running = cluster
    parent = running.publish({"function": f"{F}:fan_out", "args": [20]})
    made = final(running, parent)
    assert made["status"] == "succeeded", made
    gather = final(running, made["result"]["gather"])
    assert gather["status"] == "succeeded" and gather["result"] == sum(2 * i for i in range(20))
    assert gather["parent"] == parent and len(gather["depends_on"]) == 20
    children = running.http().get(f"{running.url}/tasks", params={"parent": parent, "limit": 100}, timeout=10).json()
    assert children["total"] == 21 and {t["submitted_by"] for t in children["items"]} == {"admin"}


def test_cancelling_a_parent_cancels_its_live_children(running, tmp_path):
    marker = tmp_path / "child"
    parent = running.publish({"function": f"{F}:submit_and_hang", "args": [str(marker)]})
    child = wait_for(lambda: marker.exists() and marker.read_text(), 60, what="the child task")
    assert get(running, child)["parent"] == parent
    assert running.http().post(f"{running.url}/tasks/{parent}/cancel", timeout=10).status_code == 200
    task = final(running, child)
    assert (task["status"], task["reason"]) == ("cancelled", "parent_cancelled")


def test_current_task_knows_its_id_attempt_and_worker(running):
    task_id = running.publish({"function": f"{F}:whoami"})
    assert final(running, task_id)["result"] == {"id": task_id, "attempt": 1, "worker": "w1"}


class Counting:
    """A local aiohttp server whose answers are slow and say how many requests were in flight."""

    def __init__(self):
        self.now = self.peak = 0
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.ready.wait(10)

    async def handle(self, request):
        self.now += 1
        self.peak = max(self.peak, self.now)
        await asyncio.sleep(0.2)
        self.now -= 1
        return web.json_response({"peak": self.peak})

    def _run(self):
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_get("/", self.handle)
        self.runner = web.AppRunner(app)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()

    def close(self):
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def test_an_async_function_makes_100_concurrent_requests(running):
    server = Counting()
    try:
        task_id = running.publish({"function": f"{F}:fetch_many", "args": [f"http://127.0.0.1:{server.port}/", 100]})
        task = final(running, task_id)
    finally:
        server.close()
    assert task["status"] == "succeeded", task
    assert task["result"]["ok"] == 100 and server.peak >= 50  # concurrent, not one after another


def test_a_task_uses_a_pool_of_two_processes(running):
    task = final(running, running.publish({"function": f"{F}:pool_squares", "args": [8]}))
    assert task["status"] == "succeeded", task
    assert task["result"]["squares"] == [i * i for i in range(8)]
    assert final(running, running.publish({"function": f"{F}:process_pool_sum"}))["result"] == 55


def test_a_cancelled_task_leaves_no_grandchild_behind(running, tmp_path):
    marker = tmp_path / "pids"
    task_id = running.publish({"function": f"{F}:spawn_and_hang", "args": [str(marker)]})
    pids = wait_for(lambda: marker.exists() and len(marker.read_text().split()) == 4
                    and list(map(int, marker.read_text().split())), 60, what="the task's processes")
    assert all(alive(p) for p in pids)
    assert running.http().post(f"{running.url}/tasks/{task_id}/cancel", timeout=10).status_code == 200
    wait_for(lambda: not any(alive(p) for p in pids), 30, what="every process of the attempt to die")
    # The setsid grandchild is gone too, and the slot runs the next task
    assert final(running, running.publish({"function": f"{F}:add", "args": [2, 2]}))["result"] == 4


def test_a_timed_out_task_leaves_no_grandchild_behind(running, tmp_path):
    marker = tmp_path / "pids"
    task_id = running.publish({"function": f"{F}:spawn_and_hang", "args": [str(marker)], "timeout_s": 4,
                               "max_retries": 0})
    assert final(running, task_id)["attempts"][0]["state"] == "timed_out"
    pids = list(map(int, marker.read_text().split()))
    wait_for(lambda: not any(alive(p) for p in pids), 30, what="every process of the attempt to die")


def test_progress_and_log_lines_are_seen_while_the_task_runs(running, tmp_path):
    marker = tmp_path / "finish"
    task_id = running.publish({"function": f"{F}:slow_progress", "args": [str(marker), 20, 0.05]})
    seen = wait_for(lambda: (t := get(running, task_id))["status"] == "running" and (t.get("progress") or {})
                    .get("fraction") == 1.0 and t, 60, what="progress 1.0 while running")
    assert seen["progress"]["message"] == "step 20 of 20" and seen["progress"]["at"]
    logs = wait_for(lambda: (t := get(running, task_id))["status"] == "running" and t["attempts"][0].get("logs"),
                    30, what="log lines while running")
    assert "INFO working on step 1" in logs
    Path(marker).touch()
    done = final(running, task_id)
    assert done["status"] == "succeeded" and done["result"] == 20
    assert "working on step 20" in done["attempts"][0]["logs"]


def test_submit_wait_draws_the_tasks_progress(running, tmp_path):
    import subprocess
    import sys

    marker = tmp_path / "go"
    marker.touch()
    out = subprocess.run([sys.executable, "-m", "suanwang", "submit", f"{F}:slow_progress", str(marker), "10", "0.1",
                          "--wait", "--server-url", f"http://127.0.0.1:{running.port}", "--token", running.token],
                         capture_output=True, text=True, timeout=120, env={**running.procs[0].env, "COLUMNS": "160"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "10"
    assert "100%" in out.stderr and "step 10 of 10" in out.stderr and "succeeded" in out.stderr


def test_children_in_one_request_and_a_refused_child(running):
    parent = running.publish({"function": f"{F}:fan_out_bulk", "args": [10]})
    made = final(running, parent)
    assert made["status"] == "succeeded", made
    assert made["result"]["children"] == [f"{parent}-{i}" for i in range(10)]
    assert "unknown task(s): no-such-task" in made["result"]["refused"] and "(invalid)" in made["result"]["refused"]
    assert final(running, made["result"]["gather"])["result"] == sum(i + 1 for i in range(10))


def test_a_lost_lease_kills_the_attempts_whole_tree(running, tmp_path):
    from fsm.store import database

    marker = tmp_path / "pids"
    task_id = running.publish({"function": f"{F}:spawn_and_hang", "args": [str(marker)], "max_retries": 0})
    pids = wait_for(lambda: marker.exists() and len(marker.read_text().split()) == 4
                    and list(map(int, marker.read_text().split())), 60, what="the task's processes")
    # The reaper's verdict after a partition: the attempt lost its lease (the worker keeps running)
    db = database(running.uri)
    try:
        db.tasks.update_one({"_id": task_id, "attempts.state": "running"},
                            {"$set": {"attempts.$.state": "lost", "status": "failed"}, "$inc": {"rev": 1},
                             "$push": {"history": {"from": "running", "to": "failed", "by": "test",
                                                   "reason": "lease expired"}}})
    finally:
        db.client.close()
    wait_for(lambda: not any(alive(p) for p in pids), 30, what="the worker to kill the attempt's tree")
