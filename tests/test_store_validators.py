"""The collection validators: generated from fsm.states, applied to new and existing collections,
and enforced by the database against any client (README, "What is enforced where")."""
from __future__ import annotations

import pytest
from pymongo import MongoClient
from pymongo.errors import WriteError

from fsm.states import AttemptState, Status
from fsm.store import Store
from fsm.store.spec import validate
from fsm.store.validators import validators

DOCUMENT_VALIDATION_FAILURE = 121


@pytest.fixture
def raw(mongo, db_name, store):
    client = MongoClient(mongo.uri)
    yield client[db_name]
    client.close()


def refused(write) -> None:
    with pytest.raises(WriteError) as err:
        write()
    assert err.value.code == DOCUMENT_VALIDATION_FAILURE


def good_task(store) -> dict:
    doc = store.tasks.document(validate({"function": "echo"}), "t")
    doc["created_at"] = store.now()
    doc["history"] = [{"from": None, "to": doc["status"], "at": doc["created_at"], "by": "t"}]
    return doc


def test_the_database_has_the_validators_generated_from_the_states(store, raw):
    options = {c["name"]: c["options"] for c in raw.list_collections()}
    for name, validator in validators().items():
        assert options[name]["validator"] == validator
        assert options[name]["validationAction"] == "error" and options[name]["validationLevel"] == "strict"
    schema = options["tasks"]["validator"]["$and"][0]["$jsonSchema"]
    assert schema["properties"]["status"]["enum"] == [s.value for s in Status]
    assert schema["properties"]["attempts"]["items"]["properties"]["state"]["enum"] == [a.value for a in AttemptState]


@pytest.mark.parametrize("field", ["function", "status", "priority", "is_enabled", "open_slots", "attempts",
                                   "history", "rev", "created_at"])
def test_a_task_without_a_required_field_is_refused(store, raw, field):
    doc = good_task(store)
    doc.pop(field)
    refused(lambda: raw.tasks.insert_one(doc))
    assert raw.tasks.insert_one(good_task(store)).acknowledged  # the complete document is stored


def test_wrong_types_and_unknown_states_are_refused(store, raw):
    for change in ({"priority": "high"}, {"is_enabled": 1}, {"open_slots": -1}, {"status": "bogus"},
                   {"attempts": [{"id": "a", "worker": "w", "state": "exploded"}]},
                   {"previous_attempts": [{"id": "a", "worker": "w", "state": "bogus"}]},
                   {"history": [{"from": None, "to": "succeeded"}], "status": "succeeded"}):
        refused(lambda: raw.tasks.insert_one({**good_task(store), **change}))


def test_worker_and_delivery_states_are_enforced(store, raw):
    refused(lambda: raw.workers.insert_one({"_id": "w1", "state": "asleep"}))
    refused(lambda: raw.workers.insert_one({"_id": "w2"}))
    raw.workers.insert_one({"_id": "w3", "state": "online"})
    refused(lambda: raw.workers.update_one({"_id": "w3"}, {"$set": {"state": "bogus"}}))
    refused(lambda: raw.deliveries.insert_one({"_id": "d1", "status": "lost"}))


def test_existing_collections_get_the_validators(mongo, db_name):
    # Given collections created before validators existed, holding a document
    client = MongoClient(mongo.uri)
    db = client[db_name]
    db.create_collection("tasks")
    db.create_collection("workers")
    db.workers.insert_one({"_id": "old", "state": "online"})
    # When a process connects (ensure_indexes runs collMod)
    Store(db)
    # Then the old document stays and bad writes are refused
    assert db.workers.count_documents({}) == 1
    refused(lambda: db.workers.update_one({"_id": "old"}, {"$set": {"state": "bogus"}}))
    refused(lambda: db.tasks.insert_one({"status": "bogus"}))
    client.close()
