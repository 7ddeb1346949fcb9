"""The task store: the verbs over the ``tasks`` collection. No other module sets ``status``.

Every status change is one conditional update: the claim filters on claimable state and
sets the attempt in the same write; every later write filters on ``rev`` (the revision read
just before), so a lost race changes nothing and is decided again from fresh data. Times
that matter (history, leases, run_after) come from the server's clock via ``$$NOW``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from fsm.decide import Plan, decide_attempt_end, decide_cancel, decide_requeue, digest
from fsm.errors import Conflict, InvalidTransition, LeaseLost, TaskNotFound, ValidationError
from fsm.states import FINAL, LIVE, AttemptState, Status, check
from fsm.store.db import server_now
from fsm.store.schema import CLAIM_INDEX
from fsm.store.spec import PRIORITY_RANGE, TaskSpec, _int

log = logging.getLogger("suanwang.store")

CLAIM_SORT = [("priority", -1), ("created_at", 1)]
#: Only what a worker needs to run the attempt; the rest stays on the server.
CLAIM_PROJECTION = {"function": 1, "version": 1, "args": 1, "kwargs": 1, "timeout_s": 1, "priority": 1,
                    "redundancy": 1, "requires": 1, "status": 1}
MAX_RACE_RETRIES = 50
#: How long a task may be passed over for one whose version a worker already has.
PREFER_WINDOW_S = 60

# The status changes written without a Plan must be legal; checked once, at import.
check(Status.QUEUED, Status.RUNNING)
check(Status.RUNNING, Status.SUCCEEDED)


def lit(value: Any) -> dict:
    """Wrap data for an update pipeline, so a string like "$x" stays a string."""
    return {"$literal": value}


def _aware(when):
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def new_id() -> str:
    return str(ObjectId())


@dataclass(frozen=True)
class Claimant:
    """What a worker offers when it claims: its name and resources."""

    name: str
    gpus: int = 0
    mem_gb: float = 1 << 20
    tags: tuple[str, ...] = ()
    lease_s: float = 15.0
    #: After this long with a slot open, a redundant task may go to a worker that already ran it.
    distinct_grace_s: float = 30.0
    #: "function@version" pairs this worker has checked out; claimed first within a priority band.
    prefer_versions: tuple[str, ...] = field(default=())


@dataclass
class Claim:
    """A claimed attempt: the task (without history) and the attempt's id."""

    task: dict
    attempt_id: str

    @property
    def task_id(self) -> str:
        return self.task["_id"]


class TaskStore:
    """Verbs over ``tasks``. Construct with a ``Database`` (see ``fsm.store.db.database``)."""

    def __init__(self, db: Database):
        self.db = db
        # Local reads: a decision must see a claim acknowledged a moment ago; the rev fence
        # on every write keeps decisions made on any stale read from changing anything.
        self.tasks: Collection = db.get_collection("tasks", read_concern=ReadConcern("local"))
        # Claims and lease renewals are acknowledged by the primary alone: one lost to a mongod
        # crash only re-runs an attempt (its late result is refused). Publishes and attempt ends
        # stay majority-acknowledged and journaled, so no task and no result is ever lost.
        self._fast: Collection = self.tasks.with_options(write_concern=WriteConcern(w=1))

    # ----------------------------------------------------------------- publish
    def document(self, spec: TaskSpec, submitted_by: str) -> dict:
        """The new document for a validated spec (not yet stored)."""
        delayed = spec.run_after is not None
        status = Status.PENDING if delayed else Status.QUEUED
        return {
            "_id": spec.id or new_id(), "function": spec.function, "version": spec.version,
            "args": spec.args, "kwargs": spec.kwargs, "priority": spec.priority, "is_enabled": spec.is_enabled,
            "status": status.value, "requires": spec.requires, "redundancy": spec.redundancy,
            "quorum": spec.quorum, "timeout_s": spec.timeout_s, "max_retries": spec.max_retries,
            "retry_backoff_s": spec.retry_backoff_s, "open_slots": spec.redundancy, "failures": 0,
            "workers": [], "attempts": [], "result": None, "error": None, "reason": None,
            "history": [], "run_after": spec.run_after, "submitted_by": submitted_by, "rev": 0,
        }

    def insert(self, docs: list[dict]) -> list[str]:
        """Store new task documents (one round trip), stamped by the server's clock.

        A duplicate id (an idempotent re-publish, a schedule firing twice) raises ``Conflict``
        naming the ids; the other documents are still stored.
        """
        if not docs:
            return []
        now = server_now(self.db)
        for doc in docs:
            doc["created_at"] = doc["updated_at"] = now
            doc["history"] = [{"from": None, "to": doc["status"], "at": now, "by": doc["submitted_by"]}]
        try:
            self.tasks.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            dupes = [e["op"]["_id"] for e in exc.details.get("writeErrors", []) if e.get("code") == 11000]
            if dupes and len(dupes) == len(exc.details["writeErrors"]):
                raise Conflict(f"task id(s) already exist: {', '.join(map(str, dupes[:10]))}", ids=dupes) from None
            raise
        return [d["_id"] for d in docs]

    # ------------------------------------------------------------------ claim
    def claim_filter(self, who: Claimant) -> dict:
        return {
            "open_slots": {"$gt": 0}, "is_enabled": True,
            "status": {"$in": [Status.QUEUED.value, Status.RUNNING.value]},
            "requires.gpus": {"$lte": who.gpus}, "requires.mem_gb": {"$lte": who.mem_gb},
            "requires.tags": {"$not": {"$elemMatch": {"$nin": list(who.tags)}}},
            "workers": {"$ne": who.name},
        }

    def claim_next(self, who: Claimant) -> Claim | None:
        """Claim one attempt of the most urgent task this worker may run, or None.

        One ``find_one_and_update``: highest priority first, then oldest; sets status,
        the attempt with its lease (server clock) and the history entry in the same write.
        """
        attempt_id = new_id()
        update = self._claim_update(who, attempt_id)
        doc = self._claim_preferred(who, update) if who.prefer_versions else None
        if doc is None:
            doc = self._fast.find_one_and_update(self.claim_filter(who), update, sort=CLAIM_SORT,
                                                 projection=CLAIM_PROJECTION, hint=CLAIM_INDEX,
                                                 return_document=ReturnDocument.AFTER)
        if doc is None and who.distinct_grace_s >= 0:
            doc = self._claim_repeat(who, attempt_id, update)
        return Claim(doc, attempt_id) if doc else None

    def _claim_preferred(self, who: Claimant, update: list) -> dict | None:
        """Prefer a task whose version this worker already has checked out, without starving any:
        only within the most urgent priority band, and never past a task waiting over a minute."""
        filt = self.claim_filter(who)
        top = self.tasks.find_one(filt, {"function": 1, "version": 1, "priority": 1, "created_at": 1},
                                  sort=CLAIM_SORT, hint=CLAIM_INDEX)
        if top is None or f"{top['function']}@{top.get('version')}" in who.prefer_versions \
                or top.get("version") == "builtin":
            return None
        if _aware(top["created_at"]) < datetime.now(timezone.utc) - timedelta(seconds=PREFER_WINDOW_S):
            return None
        pairs = [dict(zip(("function", "version"), fv.rsplit("@", 1))) for fv in who.prefer_versions]
        filt.update(priority=top["priority"], **{"$or": pairs})
        return self._fast.find_one_and_update(filt, update, sort=CLAIM_SORT, projection=CLAIM_PROJECTION,
                                              hint=CLAIM_INDEX, return_document=ReturnDocument.AFTER)

    def _claim_repeat(self, who: Claimant, attempt_id: str, update: list) -> dict | None:
        """A redundant task no other worker took within the grace period may run here again."""
        filt = self.claim_filter(who)
        filt["workers"] = who.name
        # The server's clock inside the filter: no extra round trip on an empty queue.
        filt["$expr"] = {"$lt": ["$slot_open_since", {"$subtract": ["$$NOW", int(who.distinct_grace_s * 1000)]}]}
        return self._fast.find_one_and_update(filt, update, sort=CLAIM_SORT, projection=CLAIM_PROJECTION,
                                              hint=CLAIM_INDEX, return_document=ReturnDocument.AFTER)

    @staticmethod
    def _claim_update(who: Claimant, attempt_id: str) -> list:
        lease_ms = int(who.lease_s * 1000)
        attempt = {"id": lit(attempt_id), "worker": lit(who.name), "state": AttemptState.RUNNING.value,
                   "number": {"$add": [{"$size": "$attempts"}, 1]},
                   "started_at": "$$NOW", "lease_until": {"$add": ["$$NOW", lease_ms]}}
        entry = {"from": Status.QUEUED.value, "to": Status.RUNNING.value, "at": "$$NOW", "by": lit(who.name)}
        return [{"$set": {
            "status": Status.RUNNING.value,
            "open_slots": {"$subtract": ["$open_slots", 1]},
            "slot_open_since": "$$NOW",
            "workers": {"$concatArrays": ["$workers", [lit(who.name)]]},
            "attempts": {"$concatArrays": ["$attempts", [attempt]]},
            "history": {"$cond": [{"$eq": ["$status", Status.QUEUED.value]},
                                  {"$concatArrays": ["$history", [entry]]}, "$history"]},
            "started_at": {"$ifNull": ["$started_at", "$$NOW"]},
            "updated_at": "$$NOW",
            "rev": {"$add": ["$rev", 1]},
        }}]

    # ----------------------------------------------------------------- leases
    def renew_leases(self, worker: str, lease_s: float) -> int:
        """Extend the lease of every attempt this worker runs (server clock); returns tasks touched."""
        lease_ms = int(lease_s * 1000)
        mine = {"$and": [{"$eq": ["$$a.worker", worker]}, {"$eq": ["$$a.state", AttemptState.RUNNING.value]}]}
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
                                   {"attempts.id": 1, "attempts.worker": 1, "attempts.state": 1}):
            held.update(a["id"] for a in doc["attempts"] if a["id"] in ids and a["worker"] == worker
                        and a["state"] == AttemptState.RUNNING.value)
        return held

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
            if not task or task["status"] != Status.RUNNING.value:
                return lost
            expired = [a for a in task["attempts"]
                       if a["state"] == AttemptState.RUNNING.value and _aware(a["lease_until"]) < now]
            if not expired:
                return lost
            attempt = expired[0]
            plan = decide_attempt_end(task, attempt["id"], AttemptState.LOST,
                                      error=f"lease expired: worker {attempt['worker']} stopped heartbeating")
            if self._write(task, plan, by="reaper"):
                log.warning("task %s: attempt %s on %s lost its lease", task_id, attempt["id"], attempt["worker"])
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

    # ---------------------------------------------------------- attempt ends
    def finish_attempt(self, task_id: str, attempt_id: str, state: AttemptState | str, *, result: Any = None,
                       error: str | None = None, traceback: str | None = None, logs: str | None = None,
                       worker: str | None = None) -> Plan:
        """Record how an attempt ended and decide the task (retry, quorum, dispute).

        Raises ``LeaseLost`` when the attempt is no longer running (lease expired, task
        cancelled or decided): the late result is dropped, nothing changes.
        """
        if AttemptState(state) == AttemptState.SUCCEEDED and self._succeed_single(task_id, attempt_id, result,
                                                                                 logs, worker):
            return Plan(frm=Status.RUNNING, to=Status.SUCCEEDED, fields={"result": result})
        for _ in range(MAX_RACE_RETRIES):
            filt = {"_id": task_id, "attempts": {"$elemMatch": {"id": attempt_id, "state": "running"}}}
            if worker:
                filt["attempts"]["$elemMatch"]["worker"] = worker
            task = self.tasks.find_one(filt)
            if task is None or task["status"] != Status.RUNNING.value:
                raise LeaseLost(f"attempt {attempt_id} of task {task_id} is no longer running here; "
                                "its result was dropped")
            plan = decide_attempt_end(task, attempt_id, AttemptState(state), result=result, error=error,
                                      traceback=traceback, logs=logs)
            if self._write(task, plan, by=worker or "worker"):
                return plan
        raise Conflict(f"task {task_id} kept changing; gave up after {MAX_RACE_RETRIES} tries")

    def _succeed_single(self, task_id: str, attempt_id: str, result: Any, logs: str | None,
                        worker: str | None) -> bool:
        """The common case in one write: a task run once (quorum 1) succeeds with this result.

        Equivalent to ``decide_attempt_end`` for redundancy 1, where a success always decides
        the task; anything else (redundant tasks, a lost lease) takes the general path.
        """
        match = {"id": attempt_id, "state": AttemptState.RUNNING.value}
        if worker:
            match["worker"] = worker
        done = {"state": AttemptState.SUCCEEDED.value, "result": result, "digest": digest(result)}
        if logs:
            done["logs"] = logs[-4000:]
        entry = {"from": Status.RUNNING.value, "to": Status.SUCCEEDED.value, "at": "$$NOW", "by": lit(worker or "worker")}
        res = self.tasks.update_one(
            {"_id": task_id, "status": Status.RUNNING.value, "redundancy": 1, "quorum": 1,
             "attempts": {"$elemMatch": match}},
            [{"$set": {
                "status": Status.SUCCEEDED.value, "result": lit(result), "error": None, "reason": None,
                "open_slots": 0, "finished_at": "$$NOW", "updated_at": "$$NOW", "rev": {"$add": ["$rev", 1]},
                "history": {"$concatArrays": ["$history", [entry]]},
                "attempts": {"$map": {"input": "$attempts", "as": "a", "in": {"$cond": [
                    {"$eq": ["$$a.id", lit(attempt_id)]},
                    {"$mergeObjects": ["$$a", {"$literal": done}, {"ended_at": "$$NOW"}]}, "$$a"]}}},
            }}])
        return res.modified_count == 1

    # ------------------------------------------------------------ user verbs
    def cancel(self, task_id: str, by: str) -> Plan:
        return self._decide_loop(task_id, decide_cancel, by)

    def requeue(self, task_id: str, by: str) -> Plan:
        def decide(task: dict) -> Plan:
            if Status(task["status"]) not in (Status.FAILED, Status.CANCELLED):
                check(task["status"], Status.QUEUED)  # raises with the allowed list
                raise InvalidTransition(f"task {task_id} is {task['status']}; only failed or cancelled tasks "
                                        "can be re-queued")
            return decide_requeue(task)
        plan = self._decide_loop(task_id, decide, by)
        return plan

    def update_fields(self, task_id: str, changes: dict, by: str) -> dict:
        """Re-prioritise or enable/disable a live task (takes effect on the next claim)."""
        allowed = {"priority", "is_enabled"}
        unknown = set(changes) - allowed
        if unknown or not changes:
            raise ValidationError(f"only {', '.join(sorted(allowed))} can be changed; got "
                                  f"{', '.join(sorted(unknown)) or 'nothing'}")
        if "priority" in changes:
            _int(changes, "priority", 0, *PRIORITY_RANGE)
        if "is_enabled" in changes and not isinstance(changes["is_enabled"], bool):
            raise ValidationError("'is_enabled' must be true or false", field="is_enabled")
        doc = self.tasks.find_one_and_update(
            {"_id": task_id, "status": {"$in": [s.value for s in LIVE]}},
            {"$set": {**changes, "updated_by": by}, "$currentDate": {"updated_at": True}, "$inc": {"rev": 1}},
            return_document=ReturnDocument.AFTER)
        if doc is None:
            current = self.get(task_id)
            raise InvalidTransition(f"task {task_id} is {current['status']}; only pending, queued or running "
                                    "tasks can be changed")
        return doc

    def _decide_loop(self, task_id: str, decide, by: str) -> Plan:
        for _ in range(MAX_RACE_RETRIES):
            task = self.get(task_id)
            plan = decide(task)
            if self._write(task, plan, by=by):
                return plan
        raise Conflict(f"task {task_id} kept changing; gave up after {MAX_RACE_RETRIES} tries")

    # ---------------------------------------------------------------- writes
    def _write(self, task: dict, plan: Plan, by: str) -> bool:
        """Apply a plan iff the task is still at the revision (and status) it was read at."""
        stage: dict[str, Any] = {key: lit(value) for key, value in plan.fields.items()}
        stage["rev"] = {"$add": ["$rev", 1]}
        stage["updated_at"] = "$$NOW"
        if plan.attempts and "attempts" not in plan.fields:
            branches = []
            for aid, changes in plan.attempts.items():
                merged = [{"$literal": changes}]
                if aid in plan.ended:
                    merged.append({"ended_at": "$$NOW"})
                branches.append({"case": {"$eq": ["$$a.id", lit(aid)]},
                                 "then": {"$mergeObjects": ["$$a", *merged]}})
            stage["attempts"] = {"$map": {"input": "$attempts", "as": "a",
                                          "in": {"$switch": {"branches": branches, "default": "$$a"}}}}
        if plan.to is not None and plan.to != plan.frm:
            entry = {"from": plan.frm.value, "to": plan.to.value, "at": "$$NOW", "by": lit(by)}
            if plan.reason:
                entry["reason"] = lit(plan.reason)
            stage["status"] = plan.to.value
            stage["history"] = {"$concatArrays": ["$history", [entry]]}
            if plan.to in FINAL:
                stage["finished_at"] = "$$NOW"
            if plan.to == Status.PENDING:
                stage["run_after"] = {"$add": ["$$NOW", int((plan.delay_s or 0) * 1000)]}
        res = self.tasks.update_one({"_id": task["_id"], "rev": task.get("rev", 0), "status": plan.frm.value},
                                    [{"$set": stage}])
        return res.modified_count == 1

    # ----------------------------------------------------------------- reads
    def get(self, task_id: str, projection: dict | None = None) -> dict:
        doc = self.tasks.find_one({"_id": task_id}, projection)
        if doc is None:
            raise TaskNotFound(f"no task with id {task_id!r}")
        return doc

    def page(self, query: dict | None = None, *, sort: list | None = None, skip: int = 0, limit: int = 50,
             projection: dict | None = None) -> tuple[list[dict], int]:
        """One page of tasks and the number matching (for tables and the list API)."""
        query = query or {}
        cursor = self.tasks.find(query, projection).sort(sort or [("created_at", -1)]).skip(skip).limit(limit)
        docs = list(cursor)
        total = self.tasks.count_documents(query) if query else self.tasks.estimated_document_count()
        return docs, total

    def counts_by_status(self) -> dict[str, int]:
        """Tasks per status (the ``status_counts`` read model; kept for callers of this name)."""
        from fsm.store.reads import TaskReads

        return TaskReads(self.db).status_counts()

    def estimated_count(self) -> int:
        """All tasks, from the collection's metadata (no scan)."""
        return self.tasks.estimated_document_count()

    def exists(self, task_id: str) -> bool:
        return self.tasks.count_documents({"_id": task_id}, limit=1) == 1
