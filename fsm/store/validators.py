"""Collection validators: the database itself refuses documents in states the FSM does not know.

Generated from ``fsm.states`` (and the worker and delivery states beside their stores), so they
cannot drift from the code. ``validationAction: error``: a write that breaks them fails, whoever
sends it (a raw ``mongosh`` or pymongo client included). What the database enforces here:

``tasks``
    * the fields the claim and the compare-and-set rely on exist, with their types: function,
      status, priority, is_enabled, open_slots (>= 0), attempts, history, rev, created_at
    * ``status`` is one of ``Status``; ``attempts[].state`` and ``previous_attempts[].state``
      are ``AttemptState`` values, and each attempt has an id and a worker
    * every ``history`` entry is a transition of ``TRANSITIONS`` (or None -> an initial state)
    * ``status`` equals the last history entry's ``to``: no status change without its entry
``workers``: ``state`` is online, draining or offline. ``deliveries``: ``status`` is pending,
sending, sent or failed.

What it cannot see is the document *before* the write: that ``from`` is the status the task
really had is the compare-and-set's job (``fsm.store.tasks``: every write filters on ``status``
and ``rev``).
"""
from __future__ import annotations

from pymongo.database import Database
from pymongo.errors import CollectionInvalid, OperationFailure

from fsm.states import INITIAL, TRANSITIONS, AttemptState, Status
from fsm.store.notify import DELIVERY_STATES
from fsm.store.workers import WORKER_STATES

NAMESPACE_EXISTS = 48
INT = ["int", "long"]


def _attempts() -> dict:
    return {"bsonType": "array", "items": {
        "bsonType": "object", "required": ["id", "state", "worker"],
        "properties": {"id": {"bsonType": "string"}, "worker": {"bsonType": "string"},
                       "state": {"enum": [a.value for a in AttemptState]}}}}


def _history_entry() -> dict:
    """One of the allowed (from, to) pairs."""
    pairs = [{"properties": {"from": {"enum": [None]}, "to": {"enum": sorted(s.value for s in INITIAL)}}}]
    pairs += [{"properties": {"from": {"enum": [frm.value]}, "to": {"enum": sorted(t.value for t in tos)}}}
              for frm, tos in TRANSITIONS.items() if tos]
    return {"bsonType": "object", "required": ["from", "to"], "anyOf": pairs}


def task_validator() -> dict:
    schema = {
        "bsonType": "object",
        "required": ["function", "status", "priority", "is_enabled", "open_slots", "attempts", "history", "rev",
                     "created_at"],
        "properties": {
            "function": {"bsonType": "string"},
            "status": {"enum": [s.value for s in Status]},
            "priority": {"bsonType": INT},
            "is_enabled": {"bsonType": "bool"},
            "open_slots": {"bsonType": INT, "minimum": 0},
            "rev": {"bsonType": INT},
            "created_at": {"bsonType": "date"},
            "attempts": _attempts(),
            "previous_attempts": _attempts(),
            "history": {"bsonType": "array", "minItems": 1, "items": _history_entry()},
        },
    }
    in_line = {"$eq": ["$status", {"$arrayElemAt": ["$history.to", -1]}]}
    return {"$and": [{"$jsonSchema": schema}, {"$expr": in_line}]}


def state_validator(field: str, values) -> dict:
    return {"$jsonSchema": {"bsonType": "object", "required": [field],
                            "properties": {field: {"enum": list(values)}}}}


def validators() -> dict[str, dict]:
    """``{collection: validator}`` for every collection with a state field."""
    return {"tasks": task_validator(), "workers": state_validator("state", WORKER_STATES),
            "deliveries": state_validator("status", DELIVERY_STATES)}


def ensure_validators(db: Database) -> None:
    """Create each collection with its validator, or ``collMod`` an existing one (idempotent: a
    collection that already has exactly this validator is left alone)."""
    current = {c["name"]: c.get("options", {}) for c in db.list_collections(filter={"type": "collection"})}
    for name, validator in validators().items():
        options = current.get(name)
        if options is not None and options.get("validator") == validator \
                and options.get("validationAction") == "error" and options.get("validationLevel") == "strict":
            continue
        if options is None:
            try:
                db.create_collection(name, validator=validator, validationLevel="strict", validationAction="error")
                continue
            except (CollectionInvalid, OperationFailure) as exc:  # another process created it first
                if isinstance(exc, OperationFailure) and exc.code != NAMESPACE_EXISTS:
                    raise
        db.command("collMod", name, validator=validator, validationLevel="strict", validationAction="error")
