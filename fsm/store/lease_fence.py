"""The store's lease fence: a result counts only while its attempt's lease is live by the server's clock.

The attempt's state alone is not enough: between the moment a lease passes and the moment
housekeeping marks the attempt lost, a cut-off worker's late result would still be accepted.
``lease_live`` is a filter fragment compared with ``$$NOW`` inside the write itself, so no
process's own clock decides. ``why_refused`` re-reads the task after a refused write and says
what really happened (a lost acknowledgement of a write that did happen is not a dropped result).
"""
from __future__ import annotations

from typing import Any

from pymongo.collection import Collection

from fsm.decide import digest
from fsm.states import AttemptState


def lease_live(attempt_id: str) -> dict:
    """``$expr``: the task has this attempt, and its lease ends after the server's now."""
    return {"$gt": [{"$size": {"$filter": {"input": "$attempts", "cond": {"$and": [
        {"$eq": ["$$this.id", {"$literal": attempt_id}]},
        {"$gt": ["$$this.lease_until", "$$NOW"]}]}}}}, 0]}


def why_refused(tasks: Collection, task_id: str, attempt_id: str, state: AttemptState,
                result: Any = None, error: str | None = None) -> tuple[bool, str]:
    """After a write matched nothing: (already recorded as asked, what the store holds now).

    ``True`` means the same end is already stored (an earlier try's write happened and only its
    acknowledgement was lost); ``False`` means this end was refused, and the text says why.
    """
    doc = tasks.find_one({"_id": task_id}, {"status": 1, "attempts": 1, "now": "$$NOW"})
    if doc is None:
        return False, f"task {task_id} no longer exists; the {state.value} end of attempt {attempt_id} was dropped"
    attempt = next((a for a in doc.get("attempts", []) if a.get("id") == attempt_id), None)
    if attempt is None:
        return False, (f"task {task_id} has no attempt {attempt_id} (its claim was not kept, e.g. rolled back "
                       f"by a failover); the {state.value} end was dropped")
    stored = attempt.get("state")
    same = attempt.get("digest") == digest(result) if state == AttemptState.SUCCEEDED else attempt.get("error") == error
    if stored == state.value and same:
        return True, (f"attempt {attempt_id} of task {task_id} is recorded as {stored} (the write happened; "
                      "only its acknowledgement was lost)")
    if stored == AttemptState.RUNNING.value:
        return False, (f"attempt {attempt_id} of task {task_id}: its lease ended at {attempt.get('lease_until')} "
                       f"(server time now {doc.get('now')}); the late {state.value} result was dropped")
    return False, (f"attempt {attempt_id} of task {task_id} already ended as {stored} (task {doc.get('status')}); "
                   f"this {state.value} end was dropped")
