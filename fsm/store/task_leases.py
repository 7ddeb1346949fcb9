"""Leases: workers renew theirs; the leader's housekeeping loses the expired ones and promotes
pending tasks whose time has come (server clock throughout)."""
from __future__ import annotations

import logging
from typing import Iterable

from fsm.decide import decide_expired
from fsm.states import AttemptState, Status, check
from fsm.store.db import server_now

log = logging.getLogger("suanwang.store")


class LeaseVerbs:
    """The lease verbs of ``TaskStore``."""

    def renew_leases(self, worker: str, lease_s: float) -> int:
        """Extend the lease of every attempt this worker runs (server clock); returns tasks touched."""
        lease_ms = int(lease_s * 1000)
        # A lease that already passed is not revived: the worker has fenced that attempt itself.
        mine = {"$and": [{"$eq": ["$$a.worker", worker]}, {"$eq": ["$$a.state", AttemptState.RUNNING.value]},
                         {"$gt": ["$$a.lease_until", "$$NOW"]}]}
        res = self._fast.update_many(
            {"status": Status.RUNNING.value,
             "attempts": {"$elemMatch": {"worker": worker, "state": AttemptState.RUNNING.value}}},
            [{"$set": {"attempts": {"$map": {"input": "$attempts", "as": "a", "in": {"$cond": [
                mine, {"$mergeObjects": ["$$a", {"lease_until": {"$add": ["$$NOW", lease_ms]}}]}, "$$a"]}}},
                "rev": {"$add": ["$rev", 1]}}}],
        )
        return res.modified_count

    def still_held(self, worker: str, attempt_ids: Iterable[str]) -> set[str]:
        """Which of these attempts are still running for this worker (the rest: cancelled or lost).

        Reads only running tasks through the partial ``lease`` index, never the whole collection.
        """
        ids = set(attempt_ids)
        if not ids:
            return set()
        mine = {"worker": worker, "state": AttemptState.RUNNING.value}
        held = set()
        for doc in self.tasks.find({"status": Status.RUNNING.value, "attempts": {"$elemMatch": mine}},
                                   {"attempts.id": 1, "attempts.worker": 1, "attempts.state": 1,
                                    "attempts.lease_until": 1, "now": "$$NOW"}):
            held.update(a["id"] for a in doc["attempts"] if a["id"] in ids and a["worker"] == worker
                        and a["state"] == AttemptState.RUNNING.value and a["lease_until"] > doc["now"])
        return held

    def anything_due(self) -> bool:
        """Whether ``requeue_expired`` or ``promote_due`` would change anything now: one read
        (through the status indexes) instead of their two on an idle system."""
        now = server_now(self.db)
        return self.tasks.find_one({"$or": [
            {"status": Status.RUNNING.value,
             "attempts": {"$elemMatch": {"state": AttemptState.RUNNING.value, "lease_until": {"$lt": now}}}},
            {"status": Status.PENDING.value, "run_after": {"$lte": now}}]}, {"_id": 1}) is not None

    def requeue_expired(self) -> int:
        """Attempts whose lease passed (server clock) count as lost; returns how many."""
        now = server_now(self.db)
        lost = 0
        for doc in self.tasks.find({"status": Status.RUNNING.value, "attempts": {"$elemMatch": {
                "state": AttemptState.RUNNING.value, "lease_until": {"$lt": now}}}}, {"_id": 1}):
            lost += self._expire_task(doc["_id"], now)
        return lost

    def _expire_task(self, task_id: str, now) -> int:
        lost = 0
        while True:
            task = self.tasks.find_one({"_id": task_id})
            plan = decide_expired(task, now) if task else None
            if plan is None:
                return lost
            [attempt_id] = [aid for aid, change in plan.attempts.items() if change["state"] == AttemptState.LOST.value]
            if self._write(task, plan, by="reaper"):
                log.warning("task %s: attempt %s lost its lease", task_id, attempt_id)
                self._settle(task_id, plan)
                lost += 1

    def promote_due(self) -> int:
        """Pending tasks whose run_after has come become queued; returns how many."""
        now = server_now(self.db)
        check(Status.PENDING, Status.QUEUED)
        entry = {"from": Status.PENDING.value, "to": Status.QUEUED.value, "at": "$$NOW", "by": "scheduler",
                 "reason": "due"}
        res = self.tasks.update_many(
            {"status": Status.PENDING.value, "run_after": {"$lte": now}},
            [{"$set": {"status": Status.QUEUED.value, "updated_at": "$$NOW", "rev": {"$add": ["$rev", 1]},
                       "history": {"$concatArrays": ["$history", [entry]]}}}])
        return res.modified_count
