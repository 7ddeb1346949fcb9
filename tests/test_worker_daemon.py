"""The worker daemon in this process, against the real mongod: burst runs, retries,
timeouts, crashes, cancellation, draining and idle wake-ups."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from fsm.states import AttemptState, Status
from fsm.store.spec import validate
from fsm.store.workers import DRAINING, OFFLINE, ONLINE
from worker.config import WorkerConfig
from worker.daemon import Daemon
from tests.procs import alive, wait_for

TF = "tests.task_functions"


def publish(store, *bodies) -> list[str]:
    ids = store.tasks.insert([store.tasks.document(validate(body), "tester") for body in bodies])
    store.wakeups.signal()
    return ids


def make_config(db_uri, tmp_path, **overrides) -> WorkerConfig:
    options = dict(mongo_uri=db_uri, name="w1", concurrency=2, heartbeat_s=0.2, burst=True,
                   cache_dir=str(tmp_path / "cache"), drain_timeout_s=5, poll_max_s=0.2)
    options.update(overrides)
    return WorkerConfig(**options)


def states(task) -> list[str]:
    return [a["state"] for a in task["attempts"]]


class Background:
    """A daemon's run() on a thread, stopped and joined at the end of the test."""

    def __init__(self, daemon: Daemon):
        self.daemon = daemon
        self.code = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.code = self.daemon.run()

    def stop(self, timeout=20):
        self.daemon.stop()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the daemon did not stop"


@pytest.fixture
def background():
    started = []

    def start(daemon):
        started.append(Background(daemon))
        return started[-1]

    yield start
    for bg in started:
        if bg.thread.is_alive():
            bg.stop()


def test_burst_runs_the_builtins_with_their_results_and_errors(store, db_uri, tmp_path):
    # Given one task per built-in
    noop, echo, fail, sleep, burn, add = publish(
        store, {"function": "noop"}, {"function": "echo", "args": [{"k": [1, "two"]}]},
        {"function": "fail", "args": ["on purpose"], "max_retries": 0}, {"function": "sleep", "args": [0.05]},
        {"function": "cpu_burn", "kwargs": {"ms": 5}}, {"function": f"{TF}:add", "args": [2, 3]})

    # When a burst worker runs until nothing is left
    daemon = Daemon(make_config(db_uri, tmp_path), store)
    assert daemon.run() == 0

    # Then each task holds its result, or its error and traceback
    get = store.tasks.get
    assert get(noop)["status"] == Status.SUCCEEDED and get(noop)["result"] is None
    assert get(echo)["result"] == {"k": [1, "two"]}
    assert get(sleep)["result"] == 0.05
    assert get(burn)["result"] > 0
    assert get(add)["result"] == 5
    failed = get(fail)
    assert failed["status"] == Status.FAILED and failed["reason"] == "retries_exhausted"
    attempt = failed["attempts"][0]
    assert attempt["state"] == AttemptState.FAILED and attempt["error"] == "RuntimeError: on purpose"
    assert "raise RuntimeError(message)" in attempt["traceback"]
    assert all(a["worker"] == "w1" for t in (noop, echo, fail) for a in get(t)["attempts"])
    # and the worker says goodbye
    assert store.workers.get("w1")["state"] == OFFLINE


def test_logs_and_non_json_results_are_recorded(store, db_uri, tmp_path):
    chatty, bad, unknown = publish(store, {"function": f"{TF}:chatty", "args": [2]},
                                   {"function": f"{TF}:not_json", "max_retries": 0},
                                   {"function": "no_such_function_anywhere", "max_retries": 0})
    Daemon(make_config(db_uri, tmp_path, concurrency=1), store).run()

    assert "line 1 to stdout" in store.tasks.get(chatty)["attempts"][0]["logs"]
    bad_task = store.tasks.get(bad)
    assert bad_task["status"] == Status.FAILED and "not JSON data" in bad_task["attempts"][0]["error"]
    lost = store.tasks.get(unknown)
    assert lost["status"] == Status.FAILED and "no_such_function_anywhere" in lost["error"]


def test_a_task_past_its_timeout_is_killed_and_recorded_timed_out(store, db_uri, tmp_path):
    [task_id] = publish(store, {"function": "sleep", "args": [30], "timeout_s": 0.3, "max_retries": 0})
    Daemon(make_config(db_uri, tmp_path, concurrency=1), store).run()

    task = store.tasks.get(task_id)
    assert task["status"] == Status.FAILED
    assert states(task) == [AttemptState.TIMED_OUT]
    assert "timed out after 0.3 s" in task["attempts"][0]["error"]


def test_a_crashed_child_is_recorded_and_the_task_retried(store, db_uri, tmp_path):
    # Given a function that os._exit()s the first time it runs, and one retry without backoff
    [task_id] = publish(store, {"function": f"{TF}:crash_once", "args": [str(tmp_path / "crashed")],
                                "max_retries": 1, "retry_backoff_s": 0})

    Daemon(make_config(db_uri, tmp_path, concurrency=1), store).run()

    task = store.tasks.get(task_id)
    assert states(task) == [AttemptState.CRASHED, AttemptState.SUCCEEDED]
    assert "exit code 7" in task["attempts"][0]["error"]
    assert task["status"] == Status.SUCCEEDED and task["result"] == "second time lucky"


def test_run_once_claims_at_most_one_task_per_slot(store, db_uri, tmp_path):
    ids = publish(store, *[{"function": "echo", "args": [i]} for i in range(3)])
    with Daemon(make_config(db_uri, tmp_path, burst=False), store) as daemon:
        assert daemon.run_once() == 2
        assert [store.tasks.get(i)["status"] for i in ids] == ["succeeded", "succeeded", "queued"]
        assert daemon.run_once() == 1
        assert daemon.run_once() == 0
        doc = store.workers.get("w1")
        assert doc["state"] == ONLINE and doc["concurrency"] == 2 and isinstance(doc["gpus"], list)
        assert store.db.worker_samples.count_documents({"worker": "w1"}) >= 1
    assert [store.tasks.get(i)["result"] for i in ids] == [0, 1, 2]


def test_cancelling_a_running_task_kills_it_within_a_heartbeat(store, db_uri, tmp_path, background):
    # Given a long task running on a live worker
    marker = tmp_path / "started"
    [task_id] = publish(store, {"function": f"{TF}:sleep_marked", "args": [str(marker), 60]})
    daemon = Daemon(make_config(db_uri, tmp_path, burst=False, concurrency=1), store)
    bg = background(daemon)
    wait_for(marker.exists, what="the task to start")
    child = int(marker.read_text())

    # When a user cancels it
    store.tasks.cancel(task_id, "tester")

    # Then the worker kills the attempt's process and runs nothing for it any more
    wait_for(lambda: not daemon.running_ids(), timeout=5, what="the attempt to stop")
    wait_for(lambda: not alive(child), timeout=5, what="the child to die")
    task = store.tasks.get(task_id)
    assert task["status"] == Status.CANCELLED and states(task) == [AttemptState.CANCELLED]
    # and the slot is free for the next task
    [next_id] = publish(store, {"function": "echo", "args": ["after"]})
    wait_for(lambda: store.tasks.get(next_id)["status"] == Status.SUCCEEDED, what="the next task")
    bg.stop()
    assert bg.code == 0


def test_an_idle_worker_starts_a_new_task_promptly_and_drains_on_stop(store, db_uri, tmp_path, background):
    daemon = Daemon(make_config(db_uri, tmp_path, burst=False, poll_max_s=5.0), store)
    bg = background(daemon)
    wait_for(lambda: store.workers.workers.find_one({"_id": "w1", "state": ONLINE}), what="registration")
    time.sleep(0.3)  # let it go idle on the wake-up cursor (not a wait for a condition)

    # A task published while idle runs without waiting for the 5 s poll
    [task_id] = publish(store, {"function": "echo", "args": ["hi"]})
    wait_for(lambda: store.tasks.get(task_id)["status"] == Status.SUCCEEDED, timeout=4,
             what="the idle worker to run the new task")

    # A running attempt is allowed to finish when the worker is stopped
    [slow] = publish(store, {"function": "sleep", "args": [0.5]})
    # (its own attempt: the echo's may still be listed while its outcome is recorded)
    wait_for(lambda: slow in {task for task, _ in daemon.running_slots().values()}, what="the slow task to start")
    bg.stop()
    assert store.tasks.get(slow)["status"] == Status.SUCCEEDED
    assert store.workers.get("w1")["state"] == OFFLINE


def test_drain_timeout_kills_and_records_the_attempt_lost(store, db_uri, tmp_path, background):
    marker = tmp_path / "started"
    [task_id] = publish(store, {"function": f"{TF}:sleep_marked", "args": [str(marker), 60],
                                "retry_backoff_s": 0})
    daemon = Daemon(make_config(db_uri, tmp_path, burst=False, concurrency=1, drain_timeout_s=0.2), store)
    bg = background(daemon)
    wait_for(marker.exists, what="the task to start")
    bg.stop()

    task = store.tasks.get(task_id)
    assert states(task) == [AttemptState.LOST] and "stopped before the attempt finished" in task["error"]
    assert task["status"] == Status.QUEUED  # ready for another worker at once


def test_an_admin_drain_stops_claims_until_online_again(store, db_uri, tmp_path):
    with Daemon(make_config(db_uri, tmp_path, burst=False), store) as daemon:
        store.workers.set_state("w1", DRAINING)
        [task_id] = publish(store, {"function": "noop"})
        assert daemon.run_once() == 0
        assert store.tasks.get(task_id)["status"] == Status.QUEUED
        store.workers.set_state("w1", ONLINE)
        assert daemon.run_once() == 1


def test_a_second_live_worker_with_the_same_name_is_refused(store, db_uri, tmp_path):
    from fsm.errors import Conflict

    store.workers.register("w1", {"host": "elsewhere", "pid": 1}, stale_after_s=60)
    with pytest.raises(Conflict, match="already online"):
        Daemon(make_config(db_uri, tmp_path), store).start()


def test_a_killed_daemons_name_is_taken_over_at_once_on_its_machine(store, db_uri, tmp_path):
    from worker import stats

    # Given the document of a daemon on this machine, this boot, whose process is gone (killed -9)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    whoami = {"host": socket.gethostname(), "pid": dead.pid, "boot_id": stats.BOOT_ID}
    store.workers.register("w1", whoami, stale_after_s=60)
    # Then a new daemon with that name starts at once, instead of waiting for the record to go stale
    with Daemon(make_config(db_uri, tmp_path), store) as daemon:
        assert daemon.start()
        assert store.workers.workers.find_one({"_id": "w1"})["pid"] == os.getpid()
    # while a live process's name stays refused
    store.workers.register("w2", {**whoami, "pid": os.getppid()}, stale_after_s=60)
    assert not stats.left_by_a_dead_daemon(store.workers.workers.find_one({"_id": "w2"}))


def test_an_idle_wait_returns_on_a_wakeup_signal(store, db_uri, tmp_path):
    with Daemon(make_config(db_uri, tmp_path, burst=False, poll_max_s=30), store) as daemon:
        daemon._idle_wait(0.05)  # opens the tailable cursor
        woke = threading.Event()
        waiter = threading.Thread(target=lambda: (daemon._idle_wait(30.0), woke.set()), daemon=True)
        waiter.start()
        wait_for(lambda: daemon._waiter.locked(), what="the idle wait to block")

        store.wakeups.signal()

        assert woke.wait(3), "the idle wait slept through a wake-up signal"


def test_the_heartbeat_passes_checked_out_versions_to_the_claim(store, db_uri, tmp_path):
    from registry.resolver import Resolver

    class CheckedOut(Resolver):
        """The registry's answer on a machine that has echo 1.0 checked out."""

        def ready_versions(self):
            return [("echo", "1.0")]

    cold, warm = publish(store, {"function": "echo", "version": "2.0"}, {"function": "echo", "version": "1.0"})
    daemon = Daemon(make_config(db_uri, tmp_path, burst=False), store)
    daemon.resolver = CheckedOut()
    assert daemon.describe()["versions_ready"] == [["echo", "1.0"]]
    assert daemon.claimant.prefer_versions == ("echo@1.0",)
    # the older task of a version this worker lacks waits; the ready one is claimed first
    assert store.tasks.claim_next(daemon.claimant).task_id == warm
    assert store.tasks.claim_next(daemon.claimant).task_id == cold
    daemon.close()
