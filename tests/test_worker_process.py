"""Real worker processes killed with real signals, against the real mongod."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fsm.states import AttemptState, Status
from fsm.store.spec import validate
from fsm.store.workers import OFFLINE, ONLINE
from tests.procs import alive, wait_for

ROOT = Path(__file__).resolve().parent.parent
TF = "tests.task_functions"


def publish(store, *bodies) -> list[str]:
    ids = store.tasks.insert([store.tasks.document(validate(body), "tester") for body in bodies])
    store.wakeups.signal()
    return ids


def start_worker(db_uri, tmp_path, name, **options) -> subprocess.Popen:
    """A real daemon process (``suanwang worker`` does the same through the CLI)."""
    settings = dict(mongo_uri=db_uri, name=name, concurrency=1, heartbeat_s=0.3, drain_timeout_s=5,
                    cache_dir=str(tmp_path / f"cache-{name}"), **options)
    code = ("from worker.daemon import run_worker; from worker.config import WorkerConfig; "
            f"raise SystemExit(run_worker(WorkerConfig(**{settings!r})))")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{os.environ.get('PYTHONPATH', '')}", "PYTHONUNBUFFERED": "1"}
    log = open(tmp_path / f"worker-{name}.log", "ab")
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


@pytest.fixture
def procs():
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_sigkilled_worker_loses_its_lease_and_another_finishes_the_task(store, db_uri, tmp_path, procs):
    # Given a task running on a real worker process
    marker = tmp_path / "started"
    [task_id] = publish(store, {"function": f"{TF}:sleep_once", "args": [str(marker), 60], "retry_backoff_s": 0})
    victim = start_worker(db_uri, tmp_path, "victim")
    procs.append(victim)
    wait_for(marker.exists, what="the task to start on the victim")
    child = int(marker.read_text())

    # When the worker is SIGKILLed mid-task
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)

    # Then its executor child dies with it, the lease expires and the reaper requeues the task
    wait_for(lambda: not alive(child), 10, what="the orphaned executor child to die")
    wait_for(lambda: store.tasks.requeue_expired() == 1, 20, what="the lease to expire")
    task = store.tasks.get(task_id)
    assert task["status"] == Status.QUEUED and task["attempts"][0]["state"] == AttemptState.LOST

    # and a second worker finishes it
    rescuer = start_worker(db_uri, tmp_path, "rescuer", burst=True)
    procs.append(rescuer)
    assert rescuer.wait(60) == 0
    task = store.tasks.get(task_id)
    assert task["status"] == Status.SUCCEEDED and task["result"] == "done on retry"
    assert [(a["worker"], a["state"]) for a in task["attempts"]] == [("victim", "lost"), ("rescuer", "succeeded")]


def test_sigterm_drains_the_running_task_then_exits_zero(store, db_uri, tmp_path, procs):
    # Given a worker running a 1-second task
    marker = tmp_path / "started"
    [task_id] = publish(store, {"function": f"{TF}:sleep_marked", "args": [str(marker), 1.0]})
    worker = start_worker(db_uri, tmp_path, "drainer")
    procs.append(worker)
    wait_for(marker.exists, what="the task to start")
    assert store.workers.get("drainer")["state"] == ONLINE

    # When it is asked to stop
    worker.send_signal(signal.SIGTERM)

    # Then it finishes the task, marks itself offline and exits 0
    assert worker.wait(30) == 0, (tmp_path / "worker-drainer.log").read_text()
    task = store.tasks.get(task_id)
    assert task["status"] == Status.SUCCEEDED and task["result"] == "woke up"
    assert store.workers.get("drainer")["state"] == OFFLINE


def test_a_bad_setting_exits_with_a_message(tmp_path):
    code = ("from worker.daemon import run_worker; from worker.config import WorkerConfig; "
            "raise SystemExit(run_worker(WorkerConfig(mongo_uri='http://nope', concurrency=1)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "mongo_uri" in out.stderr
