"""Retries with backoff, leases, redundancy with quorum, disputes: decided by the store."""
from datetime import timedelta

import pytest

from fsm.errors import LeaseLost
from fsm.store import Claimant
from fsm.store.spec import validate


def publish(store, body):
    return store.tasks.insert([store.tasks.document(validate(body), "tester")])[0]


def test_retry_backoff_is_exponential_with_jitter(store):
    # Given a task with 3 retries and a 2 s backoff base
    tid = publish(store, {"function": "fail", "max_retries": 3, "retry_backoff_s": 2.0})
    for n in range(1, 4):
        claim = store.tasks.claim_next(Claimant("w", distinct_grace_s=-1))
        assert claim and claim.task_id == tid
        store.tasks.finish_attempt(tid, claim.attempt_id, "failed", error=f"boom {n}", worker="w")
        task = store.tasks.get(tid)
        # Then it waits, pending, for base * 2^(n-1) scaled by a jitter in [0.5, 1]
        assert task["status"] == "pending"
        failed_at = task["history"][-1]["at"]
        delay = (task["run_after"] - failed_at).total_seconds()
        assert 2.0 * 2 ** (n - 1) * 0.5 - 0.01 <= delay <= 2.0 * 2 ** (n - 1) + 0.01
        store.db.tasks.update_one({"_id": tid}, {"$set": {"run_after": failed_at - timedelta(seconds=1)}})
        assert store.tasks.promote_due() == 1
    claim = store.tasks.claim_next(Claimant("w", distinct_grace_s=-1))
    store.tasks.finish_attempt(tid, claim.attempt_id, "failed", error="last", worker="w")
    task = store.tasks.get(tid)
    assert task["status"] == "failed" and task["reason"] == "retries_exhausted"
    assert [a["error"] for a in task["attempts"]] == ["boom 1", "boom 2", "boom 3", "last"]


def test_expired_lease_requeues_and_refuses_the_late_result(store):
    tid = publish(store, {"function": "noop", "retry_backoff_s": 0})
    claim = store.tasks.claim_next(Claimant("frozen", lease_s=0.05))
    import time
    deadline = time.monotonic() + 5
    while store.tasks.requeue_expired() == 0:
        assert time.monotonic() < deadline
    task = store.tasks.get(tid)
    assert task["status"] == "queued" and task["attempts"][0]["state"] == "lost"
    other = store.tasks.claim_next(Claimant("other"))
    store.tasks.finish_attempt(tid, other.attempt_id, "succeeded", result="ok", worker="other")
    with pytest.raises(LeaseLost):
        store.tasks.finish_attempt(tid, claim.attempt_id, "succeeded", result="late", worker="frozen")
    assert store.tasks.get(tid)["result"] == "ok"


def test_renewed_lease_does_not_expire(store):
    tid = publish(store, {"function": "noop"})
    store.tasks.claim_next(Claimant("w", lease_s=0.3))
    assert store.tasks.renew_leases("w", 60) == 1
    import time
    time.sleep(0.4)
    assert store.tasks.requeue_expired() == 0
    assert store.tasks.get(tid)["status"] == "running"


def _run(store, tid, worker, result):
    claim = store.tasks.claim_next(Claimant(worker))
    assert claim and claim.task_id == tid
    return store.tasks.finish_attempt(tid, claim.attempt_id, "succeeded", result=result, worker=worker)


def test_quorum_two_of_three_with_one_liar(store):
    tid = publish(store, {"function": "echo", "redundancy": 3, "quorum": 2})
    _run(store, tid, "a", {"v": 1})
    _run(store, tid, "liar", {"v": 666})
    assert store.tasks.get(tid)["status"] == "running"
    _run(store, tid, "c", {"v": 1})
    task = store.tasks.get(tid)
    assert task["status"] == "succeeded" and task["result"] == {"v": 1}
    assert sorted(a["worker"] for a in task["attempts"]) == ["a", "c", "liar"]


def test_all_different_results_end_disputed(store):
    tid = publish(store, {"function": "echo", "redundancy": 3, "quorum": 2})
    for n, w in enumerate("abc"):
        _run(store, tid, w, n)
    task = store.tasks.get(tid)
    assert task["status"] == "failed" and task["reason"] == "disputed"
    assert sorted(a["result"] for a in task["attempts"]) == [0, 1, 2]


def test_distinct_workers_then_grace(store):
    tid = publish(store, {"function": "echo", "redundancy": 2, "quorum": 2})
    first = store.tasks.claim_next(Claimant("solo", distinct_grace_s=3600))
    assert first.task_id == tid
    assert store.tasks.claim_next(Claimant("solo", distinct_grace_s=3600)) is None  # another worker may come
    again = store.tasks.claim_next(Claimant("solo", distinct_grace_s=0))  # nobody came: run it here again
    assert again and again.task_id == tid
