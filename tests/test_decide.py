"""fsm.decide without a database: each row is a task, what happened, and the decision expected.

Pure functions over plain dicts; the whole file runs in well under a second.
"""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from fsm.decide import (MAX_BACKOFF_S, backoff_s, decide_attempt_end, decide_cancel, decide_expired,
                        decide_lone_success, decide_requeue, digest)
from fsm.errors import InvalidTransition
from fsm.states import Status

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def task(status="running", *, redundancy=1, quorum=1, max_retries=0, backoff=0.0, failures=0, open_slots=0,
         attempts=(), **extra) -> dict:
    """A task document as the store keeps it; ``attempts``: (id, worker, state[, digest]) tuples."""
    rows = []
    for a in attempts:
        row = {"id": a[0], "worker": a[1], "state": a[2], "lease_until": NOW + timedelta(seconds=10)}
        if len(a) > 3:
            row["digest"] = a[3]
        rows.append(row)
    return {"_id": "t1", "status": status, "redundancy": redundancy, "quorum": quorum, "max_retries": max_retries,
            "retry_backoff_s": backoff, "failures": failures, "open_slots": open_slots, "attempts": rows,
            "workers": [a[1] for a in attempts], **extra}


R, OK, FAIL = "running", "succeeded", "failed"
ONE = digest(1)
TWO = digest(2)

# (name, task, attempt id, outcome, result, expected to, expected reason, attempts expected cancelled)
ATTEMPT_END = [
    ("single success decides", task(attempts=[("a", "w1", R)]), "a", OK, 1, Status.SUCCEEDED, None, []),
    ("single failure, no retries", task(attempts=[("a", "w1", R)]), "a", FAIL, None, Status.FAILED,
     "retries_exhausted", []),
    ("failure with a retry, no backoff: queued", task(max_retries=1, attempts=[("a", "w1", R)]), "a", FAIL, None,
     Status.QUEUED, "retry after failed", []),
    ("failure with a retry and backoff: pending", task(max_retries=1, backoff=2.0, attempts=[("a", "w1", R)]), "a",
     FAIL, None, Status.PENDING, "retry after failed", []),
    ("timeout counts as a failure", task(max_retries=2, failures=2, attempts=[("a", "w1", R)]), "a", "timed_out",
     None, Status.FAILED, "retries_exhausted", []),
    ("lost lease retried", task(max_retries=1, attempts=[("a", "w1", R)]), "a", "lost", None, Status.QUEUED,
     "retry after lost", []),
    ("quorum 2 of 3: first success waits", task(redundancy=3, quorum=2, attempts=[("a", "w1", R), ("b", "w2", R),
     ("c", "w3", R)]), "a", OK, 1, None, None, []),
    ("quorum reached cancels the rest", task(redundancy=3, quorum=2, attempts=[("a", "w1", OK, ONE), ("b", "w2", R),
     ("c", "w3", R)]), "b", OK, 1, Status.SUCCEEDED, None, ["c"]),
    ("disagreeing results without slots: disputed", task(redundancy=2, quorum=2, attempts=[("a", "w1", OK, ONE),
     ("b", "w2", R)]), "b", OK, 2, Status.FAILED, "disputed", []),
    ("a failure while others run keeps the task running", task(redundancy=2, quorum=1, max_retries=1,
     attempts=[("a", "w1", R), ("b", "w2", R)]), "a", FAIL, None, None, None, []),
    ("failure that makes quorum unreachable: disputed", task(redundancy=2, quorum=2, max_retries=5,
     attempts=[("a", "w1", OK, ONE), ("b", "w2", OK, TWO), ("c", "w3", R)]), "c", OK, 3, Status.FAILED,
     "disputed", []),
]


@pytest.mark.parametrize("row", ATTEMPT_END, ids=[r[0] for r in ATTEMPT_END])
def test_attempt_end_decisions(row):
    _, doc, attempt, outcome, result, to, reason, cancelled = row
    plan = decide_attempt_end(doc, attempt, outcome, result=result, error="boom", rng=random.Random(1))
    assert plan.frm == Status.RUNNING and plan.to == to
    assert plan.reason == reason
    assert plan.attempts[attempt]["state"] == outcome and attempt in plan.ended
    assert sorted(a for a, change in plan.attempts.items() if change["state"] == "cancelled") == cancelled
    if to == Status.SUCCEEDED:
        assert plan.fields["result"] == result and plan.fields["open_slots"] == 0
    if outcome != OK:
        assert plan.fields["failures"] == doc["failures"] + 1
        assert doc["attempts"][0]["worker"] not in plan.fields["workers"] or attempt != doc["attempts"][0]["id"]
    if to == Status.PENDING:
        assert 0 < plan.delay_s <= doc["retry_backoff_s"]


@pytest.mark.parametrize("status", ["queued", "succeeded", "failed", "cancelled", "pending"])
def test_only_a_running_task_ends_an_attempt(status):
    with pytest.raises(InvalidTransition):
        decide_attempt_end(task(status, attempts=[("a", "w1", R)]), "a", OK, result=1)


def test_an_attempt_cannot_end_as_running():
    with pytest.raises(InvalidTransition):
        decide_attempt_end(task(attempts=[("a", "w1", R)]), "a", R)


@pytest.mark.parametrize("result,logs", [(1, None), ({"loss": 0.03}, "epoch 1\n"), (None, "x" * 5000)])
def test_the_lone_success_is_the_general_decision(result, logs):
    # The fast path decides without reading the task: it must equal what the general rule decides
    general = decide_attempt_end(task(attempts=[("a", "w1", R)]), "a", OK, result=result, logs=logs)
    lone = decide_lone_success("a", result, logs=logs)
    assert (lone.frm, lone.to, lone.reason, lone.fields, lone.attempts, lone.ended) == \
           (general.frm, general.to, general.reason, general.fields, general.attempts, general.ended)
    assert lone.assumes == {"redundancy": 1, "quorum": 1} and general.assumes == {}


CANCEL = [("pending", []), ("queued", []), ("running", ["a"])]


@pytest.mark.parametrize("status,stopped", CANCEL)
def test_cancel_stops_running_attempts(status, stopped):
    plan = decide_cancel(task(status, attempts=[("a", "w1", R)] if stopped else []))
    assert plan.to == Status.CANCELLED and plan.reason == "cancelled" and sorted(plan.ended) == stopped


@pytest.mark.parametrize("status", ["succeeded", "failed", "cancelled"])
def test_a_final_task_cannot_be_cancelled(status):
    with pytest.raises(InvalidTransition):
        decide_cancel(task(status))


@pytest.mark.parametrize("status,allowed", [("failed", True), ("cancelled", True), ("succeeded", False),
                                            ("running", False), ("queued", False), ("pending", False)])
def test_requeue_only_from_failed_or_cancelled(status, allowed):
    doc = task(status, redundancy=2, failures=3, attempts=[("a", "w1", FAIL)], previous_attempts=[{"id": "z"}])
    if not allowed:
        with pytest.raises(InvalidTransition):
            decide_requeue(doc)
        return
    plan = decide_requeue(doc)
    assert plan.to == Status.QUEUED and plan.fields["open_slots"] == 2 and plan.fields["failures"] == 0
    assert [a["id"] for a in plan.fields["previous_attempts"]] == ["z", "a"] and plan.fields["attempts"] == []


def test_expired_leases_are_lost_one_at_a_time():
    doc = task(max_retries=3, redundancy=2, attempts=[("a", "w1", R), ("b", "w2", R)])
    assert decide_expired(doc, NOW) is None  # leases run until NOW + 10 s
    doc["attempts"][1]["lease_until"] = NOW - timedelta(seconds=1)
    plan = decide_expired(doc, NOW)
    assert plan.attempts["b"]["state"] == "lost" and "w2" in plan.attempts["b"]["error"] and plan.to is None
    assert decide_expired(task("succeeded", attempts=[("a", "w1", OK)]), NOW) is None


@pytest.mark.parametrize("failures,base", [(1, 1.0), (3, 2.0), (20, 5.0), (4, 0.0)])
def test_backoff_doubles_with_jitter_and_a_cap(failures, base):
    ceiling = min(MAX_BACKOFF_S, base * 2 ** (failures - 1))
    delays = [backoff_s(failures, base, random.Random(seed)) for seed in range(50)]
    assert all(ceiling * 0.5 <= d <= ceiling for d in delays)
    assert base == 0 or len(set(delays)) > 1


def test_digest_is_canonical():
    assert digest({"a": 1, "b": [1, 2]}) == digest({"b": [1, 2], "a": 1}) != digest({"a": 1, "b": [2, 1]})
