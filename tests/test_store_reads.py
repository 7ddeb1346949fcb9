"""The store's named read models: right answers, each served by its index (checked with explain),
and the pages, /stats and alerts agreeing because they read through the same model."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest

from fsm.store import Claimant
from fsm.store.spec import validate
from scheduler import service, service_views

ADMIN = {"_id": "admin", "role": "admin"}


def publish(store, bodies, user="tester"):
    return store.tasks.insert([store.tasks.document(validate(b), user) for b in bodies])


@pytest.fixture
def busy(store):
    """Queued, disabled, running, finished and pending tasks; enough of them that a scan would show."""
    publish(store, [{"function": "noop", "priority": i % 3} for i in range(300)])
    disabled = publish(store, [{"function": "noop", "is_enabled": False}])[0]
    store.tasks.update_fields(disabled, {"is_enabled": False}, "admin")
    who = Claimant(name="w1", distinct_grace_s=-1)
    for _ in range(20):
        claim = store.tasks.claim_next(who)
        store.tasks.finish_attempt(claim.task_id, claim.attempt_id, "succeeded", result=1, worker="w1")
    running = [store.tasks.claim_next(Claimant(name=f"w{i}")) for i in range(2, 5)]
    publish(store, [{"function": "noop", "run_after": "2099-01-01T00:00:00Z"}])
    return {"disabled": disabled, "running": running}


def plan_text(store, read) -> str:
    return json.dumps(store.reads.explain(read)["queryPlanner"]["winningPlan"], default=str)


def assert_indexed(store, read, index):
    plan = plan_text(store, read)
    assert "COLLSCAN" not in plan, plan
    assert f'"indexName": "{index}"' in plan, plan


def test_each_read_model_is_served_by_its_index(store, busy):
    now = store.now()
    reads = store.reads
    assert_indexed(store, reads.status_count_read("queued"), "status_created")
    assert_indexed(store, reads.finished_since_read(now - timedelta(minutes=5)), "finished")
    assert_indexed(store, reads.oldest_queued_read(), "queue_age")
    assert_indexed(store, reads.oldest_queued_read(function="noop", submitted_by="tester"), "queue_age")
    assert_indexed(store, reads.running_read(), "lease")
    assert_indexed(store, reads.running_read("w2"), "lease")
    assert_indexed(store, reads.finished_histogram_read(now - timedelta(hours=6), 5), "finished")
    assert_indexed(store, reads.last_run_read("nightly"), "schedule_runs")
    recent = plan_text(store, reads.recent_runs_read(["w1"], now - timedelta(hours=1)))
    assert "COLLSCAN" not in recent and '"indexName": "finished"' in recent, recent
    assert '"indexName": "lease"' in recent or '"indexName": "status_created"' in recent, recent


def test_read_models_answer_what_the_tasks_say(store, busy):
    counts = store.reads.status_counts()
    assert counts == {"pending": 1, "queued": 278, "running": 3, "succeeded": 20, "failed": 0, "cancelled": 0}
    assert store.reads.finished_since(store.now() - timedelta(minutes=5)) == 20
    running = store.reads.running_by_worker()
    assert sorted(running) == ["w2", "w3", "w4"] and all(len(v) == 1 for v in running.values())
    assert list(store.reads.running_by_worker("w3")) == ["w3"]
    oldest = store.reads.oldest_queued()
    assert oldest["_id"] != busy["disabled"]  # a disabled task waits on purpose: not the queue's age


def test_the_portal_counts_what_stats_counts(store, busy):
    # Given the oldest queued task is disabled (it was the first published, then disabled)
    first = store.reads.oldest_queued()
    store.tasks.update_fields(first["_id"], {"is_enabled": False}, "admin")
    store.tasks.tasks.update_one({"_id": first["_id"]}, {"$set": {"created_at": store.now() - timedelta(hours=5)}})
    # Then the portal and /stats report the same queue age and counts, and neither counts it as waiting
    stats = service.stats(store, ADMIN)
    portal = service_views.portal(store, ADMIN)
    assert portal["counts"] == stats["counts"]
    assert abs(portal["oldest_age"] - stats["oldest_queued_age_s"]) < 5
    assert stats["oldest_queued_age_s"] < 3600
