"""The transition table is the single source of truth, and the database enforces it."""
import itertools
from datetime import datetime, timezone

import pytest
from pymongo import MongoClient
from pymongo.errors import WriteError

from fsm.errors import InvalidTransition
from fsm.states import FINAL, TRANSITIONS, Status, check, is_allowed
from fsm.store.spec import validate

ALL_PAIRS = list(itertools.product(Status, Status))
DOCUMENT_VALIDATION_FAILURE = 121


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


def task_in(store, final: Status) -> str:
    """A task brought to ``final`` through the store's verbs."""
    from fsm.store import Claimant

    [task_id] = store.tasks.insert([store.tasks.document(validate({"function": "echo", "max_retries": 0}), "t")])
    if final == Status.CANCELLED:
        store.tasks.cancel(task_id, "t")
    else:
        claim = store.tasks.claim_next(Claimant("w"))
        store.tasks.finish_attempt(task_id, claim.attempt_id, final.value, result=1, error="boom", worker="w")
    assert store.tasks.get(task_id)["status"] == final.value
    return task_id


@pytest.fixture
def raw_tasks(mongo, db_name, store):
    """The tasks collection through a plain pymongo client: no store, no Python check in between."""
    client = MongoClient(mongo.uri)
    yield client[db_name].tasks
    client.close()


@pytest.mark.parametrize("final", [Status.SUCCEEDED, Status.FAILED, Status.CANCELLED])
def test_database_refuses_illegal_transitions(store, raw_tasks, final):
    # Given a task in a final state
    task_id = task_in(store, final)
    before = raw_tasks.find_one({"_id": task_id})
    illegal = next(s for s in (Status.RUNNING, Status.PENDING) if s not in TRANSITIONS[final])
    entry = {"from": final.value, "to": illegal.value, "at": datetime.now(timezone.utc), "by": "raw"}
    writes = [
        {"$set": {"status": "bogus"}},  # a status the FSM does not have
        {"$set": {"status": illegal.value}, "$push": {"history": entry}},  # a transition the table forbids
        {"$set": {"status": illegal.value}},  # a status change without its history entry
        {"$set": {"attempts.0.state": "bogus"} if final != Status.CANCELLED else {"attempts": [{"id": "a"}]}},
    ]
    for update in writes:
        # When a raw client writes it, Then the database refuses it (DocumentValidationFailure)
        with pytest.raises(WriteError) as refused:
            raw_tasks.update_one({"_id": task_id}, update)
        assert refused.value.code == DOCUMENT_VALIDATION_FAILURE, update
    # And the store's own compare-and-set refuses leaving a final state through its verbs
    with pytest.raises(InvalidTransition):
        store.tasks.cancel(task_id, "t")
    assert raw_tasks.find_one({"_id": task_id}) == before


def test_database_accepts_a_legal_raw_transition(store, raw_tasks):
    # The validator refuses only what the table forbids: a cancelled task re-queued by hand is stored
    task_id = task_in(store, Status.CANCELLED)
    entry = {"from": "cancelled", "to": "queued", "at": datetime.now(timezone.utc), "by": "raw"}
    assert raw_tasks.update_one({"_id": task_id}, {"$set": {"status": "queued"}, "$push": {"history": entry}}
                                ).modified_count == 1


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
