"""The store's lease fence (server clock) and its honest account of refused ends."""
import logging

import pytest

from fsm.errors import LeaseLost
from fsm.store import Claimant, server_now
from fsm.store.spec import validate
from tests.procs import wait_for


def claimed(store, lease_s: float, redundancy: int = 1):
    store.tasks.insert([store.tasks.document(validate({"function": "sleep", "args": [1], "redundancy": redundancy}),
                                             "t")])
    claim = store.tasks.claim_next(Claimant("w", lease_s=lease_s, distinct_grace_s=-1))
    assert claim is not None
    return claim


def lease_passed(store, claim) -> bool:
    attempt = store.tasks.get(claim.task_id)["attempts"][-1]
    return server_now(store.db) > attempt["lease_until"]


@pytest.mark.parametrize("redundancy", [1, 2])
def test_a_result_after_the_lease_time_is_refused_before_housekeeping_runs(store, caplog, redundancy):
    claim = claimed(store, lease_s=0.3, redundancy=redundancy)
    wait_for(lambda: lease_passed(store, claim), 10, what="the lease to pass (server clock)")
    with caplog.at_level(logging.WARNING, "suanwang.store"), pytest.raises(LeaseLost, match="lease ended"):
        store.tasks.finish_attempt(claim.task_id, claim.attempt_id, "succeeded", result=1, worker="w")
    assert "late succeeded result was dropped" in caplog.text
    task = store.tasks.get(claim.task_id)
    assert task["status"] == "running" and task["attempts"][0]["state"] == "running"  # nothing changed
    # a passed lease is not revived by a renewal, and the attempt is no longer held
    store.tasks.renew_leases("w", 60)
    assert store.tasks.still_held("w", [claim.attempt_id]) == set()
    # the worker's own account (it fenced the attempt: lost) is still taken
    store.tasks.finish_attempt(claim.task_id, claim.attempt_id, "lost", error="fenced", worker="w")
    assert store.tasks.get(claim.task_id)["attempts"][0]["state"] == "lost"


def test_a_result_within_the_lease_is_taken(store):
    claim = claimed(store, lease_s=30)
    store.tasks.finish_attempt(claim.task_id, claim.attempt_id, "succeeded", result=1, worker="w")
    assert store.tasks.get(claim.task_id)["status"] == "succeeded"


def test_a_repeated_end_whose_first_write_happened_is_reported_as_recorded(store, caplog):
    # the first write happened, its acknowledgement was lost: the retry must not say "dropped"
    claim = claimed(store, lease_s=30)
    store.tasks.finish_attempt(claim.task_id, claim.attempt_id, "succeeded", result={"x": 1}, worker="w")
    with caplog.at_level(logging.INFO, "suanwang.store"):
        plan = store.tasks.finish_attempt(claim.task_id, claim.attempt_id, "succeeded", result={"x": 1}, worker="w")
    assert plan.to is None
    assert "is recorded as succeeded (the write happened; only its acknowledgement was lost)" in caplog.text
    # a different end for the same attempt is refused, and says what is stored
    with pytest.raises(LeaseLost, match="already ended as succeeded"):
        store.tasks.finish_attempt(claim.task_id, claim.attempt_id, "failed", error="x", worker="w")


def test_an_attempt_the_store_never_kept_is_named(store):
    claim = claimed(store, lease_s=30)
    with pytest.raises(LeaseLost, match="has no attempt nope"):
        store.tasks.finish_attempt(claim.task_id, "nope", "succeeded", result=1, worker="w")
