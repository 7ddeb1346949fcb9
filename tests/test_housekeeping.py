"""Housekeeping and the scheduler lease: idempotent ticks, and APScheduler in exactly one process."""
from datetime import timedelta

import pytest

from fsm.store import Claimant, server_now
from fsm.store.spec import validate
from scheduler.housekeeping import HOUSEKEEPING_JOB, JOBS_COLLECTION, LOCK, Leader, tick
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
def leaders(store, db_uri):
    made = []

    def make(**kwargs):
        leader = Leader(store, db_uri, **{"lease_s": 30, **kwargs})
        made.append(leader)
        return leader

    yield make
    for leader in made:
        leader.stop()


def test_the_lease_gives_apscheduler_to_exactly_one_of_two_leaders(store, leaders):
    a, b = leaders(), leaders()
    gained = []
    a.on_lead.append(gained.append)
    assert a.step() and not b.step()
    assert a.scheduler is not None and b.scheduler is None and gained == [a.scheduler]
    assert a.scheduler.get_job(HOUSEKEEPING_JOB) is not None
    assert store.db[JOBS_COLLECTION].count_documents({"_id": HOUSEKEEPING_JOB}) == 1
    assert store.db.locks.find_one({"_id": LOCK})["holder"] == a.holder
    # Renewing keeps it; the other keeps waiting
    assert a.step() and not b.step()
    # When the holder stops, it gives the lease back and the other takes over at its next check
    lost = []
    a.on_lose.append(lambda: lost.append(True))
    a.stop()
    assert lost == [True] and not a.is_leader
    assert b.step() and b.scheduler is not None
    assert store.db.locks.find_one({"_id": LOCK})["holder"] == b.holder


def test_an_expired_lease_passes_to_another_server(store, leaders):
    a, b = leaders(), leaders()
    assert a.step() and not b.step()
    # Given a's lease ran out (its renewals stopped, e.g. the process froze)
    store.db.locks.update_one({"_id": LOCK}, {"$set": {"expires_at": server_now(store.db) - timedelta(seconds=1)}})
    # Then b takes it, and a stops its scheduler at its next check
    assert b.step()
    assert not a.step() and a.scheduler is None
    assert store.db.locks.count_documents({}) == 1


def test_the_leader_runs_housekeeping_through_apscheduler(store, leaders):
    # Given a task that becomes due while a leader runs its jobs every 0.2 s
    task_id = publish(store, delay_s=0.3)
    leader = leaders(housekeeping_s=0.2, lease_s=3)
    leader.start()
    assert leader.is_leader
    # Then the scheduled job promotes it without anyone calling tick()
    wait_for(lambda: store.tasks.get(task_id)["status"] == "queued", 20, what="the task to be promoted")
    assert store.tasks.get(task_id)["history"][-1]["by"] == "scheduler"
