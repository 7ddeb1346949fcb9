"""Housekeeping and the scheduler lease: idempotent ticks, the leader's jobs in exactly one process."""
from datetime import timedelta

import pytest

from fsm.store import Claimant, server_now
from fsm.store.spec import validate
import threading
import time

from scheduler import housekeeping
from scheduler.housekeeping import HOUSEKEEPING_JOB, tick
from scheduler.leader_loop import LOCK, Job, JobRunner, Leader
from tests.apiserver import wait_for


def publish(store, **body):
    return store.tasks.insert([store.tasks.document(validate({"function": "noop", **body}), "tests")])[0]


def expire_leases(store, task_id):
    """Move the task's attempt leases into the past, as if its worker stopped heartbeating long ago."""
    past = server_now(store.db) - timedelta(minutes=5)
    store.db.tasks.update_one({"_id": task_id}, {"$set": {"attempts.$[].lease_until": past}})


def test_tick_requeues_an_expired_lease_promotes_due_tasks_and_marks_workers_offline(store):
    # Given a running task whose worker vanished, a pending task that is due, and a silent worker
    lost = publish(store, retry_backoff_s=0)
    due = publish(store, delay_s=0)
    later = publish(store, delay_s=3600)
    assert store.tasks.claim_next(Claimant("gone")).task_id == lost
    expire_leases(store, lost)
    store.db.workers.insert_one({"_id": "gone", "state": "online",
                                 "last_seen": server_now(store.db) - timedelta(minutes=5)})
    signals = store.wakeups.coll.count_documents({})
    # When housekeeping runs
    result = tick(store, offline_after_s=5)
    # Then the lost attempt is re-queued, the due task queued, the worker offline, workers woken
    assert result == {"offline": ["gone"], "lost": 1, "due": 1}
    task = store.tasks.get(lost)
    assert task["status"] == "queued" and task["attempts"][0]["state"] == "lost"
    assert store.tasks.get(due)["status"] == "queued" and store.tasks.get(later)["status"] == "pending"
    assert store.workers.get("gone")["state"] == "offline"
    assert store.wakeups.coll.count_documents({}) > signals
    # And a second tick changes nothing (idempotent)
    before = list(store.db.tasks.find({}))
    assert tick(store, offline_after_s=5) == {"offline": [], "lost": 0, "due": 0}
    assert list(store.db.tasks.find({})) == before


@pytest.fixture
def leaders(store):
    made = []

    def make(housekeeping_s=1.0, **kwargs):
        leader = Leader(store, **{"lease_s": 30, **kwargs})
        housekeeping.install(leader, interval_s=housekeeping_s)
        made.append(leader)
        return leader

    yield make
    for leader in made:
        leader.stop()


def test_the_lease_gives_the_jobs_to_exactly_one_of_two_leaders(store, leaders):
    a, b = leaders(), leaders()
    assert a.step() and not b.step()
    assert a.runner is not None and b.runner is None
    assert [j.name for j in a.runner.jobs] == [HOUSEKEEPING_JOB]
    assert store.db.locks.find_one({"_id": LOCK})["holder"] == a.holder
    assert not [c for c in store.db.list_collection_names() if c.startswith("apscheduler")]
    # Renewing keeps it; the other keeps waiting
    assert a.step() and not b.step()
    # When the holder stops, it gives the lease back and the other takes over at its next check
    runner = a.runner
    a.stop()
    assert runner.stopping.is_set() and not a.is_leader
    assert b.step() and b.runner is not None
    assert store.db.locks.find_one({"_id": LOCK})["holder"] == b.holder


def test_an_expired_lease_passes_to_another_server(store, leaders):
    a, b = leaders(), leaders()
    assert a.step() and not b.step()
    # Given a's lease ran out (its renewals stopped, e.g. the process froze)
    store.db.locks.update_one({"_id": LOCK}, {"$set": {"expires_at": server_now(store.db) - timedelta(seconds=1)}})
    # Then b takes it, and a stops its jobs at its next check
    assert b.step()
    assert not a.step() and a.runner is None
    assert store.db.locks.count_documents({}) == 1


def test_the_leader_runs_housekeeping_as_a_job(store, leaders):
    # Given a task that becomes due while a leader runs its jobs every 0.2 s
    task_id = publish(store, delay_s=0.3)
    leader = leaders(housekeeping_s=0.2, lease_s=3)
    leader.start()
    assert leader.is_leader
    # Then the housekeeping job promotes it without anyone calling tick()
    wait_for(lambda: store.tasks.get(task_id)["status"] == "queued", 20, what="the task to be promoted")
    assert store.tasks.get(task_id)["history"][-1]["by"] == "scheduler"


def test_a_failing_job_is_logged_backs_off_and_goes_on(caplog):
    # Given a job that fails twice, then works, and a job that asks to run again at once
    calls, quick = [], []

    def flaky(stop):
        calls.append(1)
        if len(calls) <= 2:
            raise RuntimeError("boom")

    def busy(stop):
        quick.append(1)
        return 0 if len(quick) < 5 else None

    runner = JobRunner([Job("flaky", 0.05, flaky), Job("busy", 10, busy)]).start()
    try:
        wait_for(lambda: len(calls) >= 4 and len(quick) >= 5, 10, what="the jobs to run on")
    finally:
        runner.stop()
    # Then each failure was logged with its back-off, and the busy job ran five rounds without waiting
    failures = [r for r in caplog.records if "flaky failed; next try in" in r.getMessage()]
    assert [r.getMessage().split("in ")[-1] for r in failures[:2]] == ["0.1s", "0.2s"]
    assert len(quick) == 5


def test_a_woken_job_runs_at_once_instead_of_after_its_interval():
    # Given a job with a long interval and a wake-up event (as the schedules' job has)
    wake, rounds = threading.Event(), []
    runner = JobRunner([Job("j", 30, lambda stop: rounds.append(time.monotonic()), wake=wake)]).start()
    try:
        wait_for(lambda: rounds, 5, what="the first round")
        # When this process sets the event (a schedule was stored), the next round comes at once
        woken = time.monotonic()
        wake.set()
        wait_for(lambda: len(rounds) == 2, 5, what="the woken round")
        assert rounds[1] - woken < 2
    finally:
        began = time.monotonic()
        runner.stop()  # and a stop ends the long wait too
    assert time.monotonic() - began < 2 and len(rounds) == 2


def test_jobs_pause_while_the_lease_is_not_surely_held():
    held = threading.Event()
    rounds = []
    runner = JobRunner([Job("j", 0.01, lambda stop: rounds.append(1))], guard=held.is_set).start()
    try:
        threading.Event().wait(0.3)
        assert rounds == []
        held.set()
        wait_for(lambda: rounds, 5, what="a round once the lease holds")
    finally:
        runner.stop()


def test_job_names_are_unique(store):
    leader = Leader(store)
    housekeeping.install(leader)
    with pytest.raises(ValueError, match="housekeeping"):
        housekeeping.install(leader)
