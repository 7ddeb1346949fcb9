"""The transition table is the single source of truth, and the database enforces it."""
import itertools

import pytest

from fsm.errors import InvalidTransition
from fsm.states import FINAL, TRANSITIONS, Status, check, is_allowed
from fsm.store.spec import validate

ALL_PAIRS = list(itertools.product(Status, Status))


@pytest.mark.parametrize("frm,to", ALL_PAIRS, ids=[f"{a.value}->{b.value}" for a, b in ALL_PAIRS])
def test_check_matches_table(frm, to):
    if to in TRANSITIONS[frm]:
        check(frm, to)
    else:
        with pytest.raises(InvalidTransition) as err:
            check(frm, to)
        assert frm.value in str(err.value) and to.value in str(err.value)


def test_table_shape():
    # Given the design: every non-final state can be cancelled; succeeded is terminal.
    for state in Status:
        if state not in FINAL:
            assert is_allowed(state, Status.CANCELLED)
    assert TRANSITIONS[Status.SUCCEEDED] == frozenset()
    assert not any(is_allowed(s, s) for s in Status)


@pytest.mark.parametrize("final", [Status.SUCCEEDED, Status.FAILED, Status.CANCELLED])
def test_database_refuses_illegal_transitions(store, final):
    # Given a task forced into a final state
    [task_id] = store.tasks.insert([store.tasks.document(validate({"function": "echo"}), "t")])
    store.db.tasks.update_one({"_id": task_id}, {"$set": {"status": final.value}})
    before = store.tasks.get(task_id)
    # When someone tries to cancel it
    with pytest.raises(InvalidTransition):
        store.tasks.cancel(task_id, "t")
    # Then nothing changed
    assert store.tasks.get(task_id) == before


def test_requeue_only_from_failed_or_cancelled(store):
    [task_id] = store.tasks.insert([store.tasks.document(validate({"function": "echo"}), "t")])
    with pytest.raises(InvalidTransition):
        store.tasks.requeue(task_id, "t")
    store.tasks.cancel(task_id, "t")
    store.tasks.requeue(task_id, "t")
    task = store.tasks.get(task_id)
    assert task["status"] == "queued" and task["open_slots"] == 1
    assert [(h["from"], h["to"]) for h in task["history"]] == [(None, "queued"), ("queued", "cancelled"),
                                                                ("cancelled", "queued")]


def test_an_attempt_cannot_end_as_running(store):
    from fsm.store import Claimant

    [task_id] = store.tasks.insert([store.tasks.document(validate({"function": "echo"}), "t")])
    claim = store.tasks.claim_next(Claimant("w"))
    before = store.tasks.get(task_id)
    with pytest.raises(InvalidTransition):
        store.tasks.finish_attempt(task_id, claim.attempt_id, "running", worker="w")
    assert store.tasks.get(task_id) == before
