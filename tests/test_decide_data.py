"""Pure decisions for large results and permanent failures (no database)."""
from __future__ import annotations

import pytest

from fsm.decide import PERMANENT, decide_attempt_end
from fsm.states import AttemptState as A, Status


def task(redundancy=1, quorum=1, attempts=(), **fields):
    return {"_id": "t1", "status": "running", "redundancy": redundancy, "quorum": quorum, "max_retries": 3,
            "failures": 0, "open_slots": 0, "workers": [a["worker"] for a in attempts], "attempts": list(attempts),
            **fields}


def running(aid, worker):
    return {"id": aid, "worker": worker, "state": "running"}


REF = {"id": "d1", "size": 6 << 20, "sha256": "ab" * 32, "content_type": "application/json"}


@pytest.mark.parametrize("redundancy, others, expect_cancelled", [(1, [], []), (3, ["a2", "a3"], ["a2", "a3"])])
def test_a_permanent_failure_fails_the_task_at_once(redundancy, others, expect_cancelled):
    doc = task(redundancy, 2 if redundancy > 1 else 1,
               [running("a1", "w1"), *(running(a, f"w{i + 2}") for i, a in enumerate(others))])
    plan = decide_attempt_end(doc, "a1", A.FAILED, error="Permanent: bad input", permanent=True)
    assert plan.to == Status.FAILED and plan.reason == PERMANENT
    assert plan.attempts["a1"]["permanent"] is True and plan.fields["error"] == "Permanent: bad input"
    assert sorted(a for a, c in plan.attempts.items() if c["state"] == A.CANCELLED.value) == expect_cancelled


def test_an_ordinary_failure_is_still_retried():
    plan = decide_attempt_end(task(attempts=[running("a1", "w1")], retry_backoff_s=0), "a1", A.FAILED, error="x")
    assert plan.to == Status.QUEUED and "permanent" not in plan.attempts["a1"]


def test_a_stored_result_keeps_its_reference_and_its_sha256_as_digest():
    plan = decide_attempt_end(task(attempts=[running("a1", "w1")]), "a1", A.SUCCEEDED, result_ref=REF)
    assert plan.to == Status.SUCCEEDED and plan.fields["result"] is None and plan.fields["result_ref"] == REF
    assert plan.attempts["a1"]["digest"] == REF["sha256"] and plan.attempts["a1"]["result_ref"] == REF


@pytest.mark.parametrize("other_sha, decided", [("ab" * 32, Status.SUCCEEDED), ("cd" * 32, Status.FAILED)])
def test_redundant_stored_results_agree_by_digest(other_sha, decided):
    first = {"id": "a1", "worker": "w1", "state": "succeeded", "digest": "ab" * 32, "result_ref": REF}
    plan = decide_attempt_end(task(2, 2, [first, running("a2", "w2")]), "a2", A.SUCCEEDED,
                              result_ref={**REF, "id": "d2", "sha256": other_sha})
    assert plan.to == decided
    if decided == Status.FAILED:
        assert plan.reason == "disputed"
