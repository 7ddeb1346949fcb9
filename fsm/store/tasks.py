"""The task store: the verbs over the ``tasks`` collection. No other module sets ``status``.

Every status change is one conditional update: the claim filters on claimable state and
sets the attempt in the same write; every later write is a ``fsm.decide.Plan`` written by the
one compare-and-set writer, filtering on ``rev`` (the revision read just before), so a lost
race changes nothing and is decided again from fresh data. Times that matter (history,
leases, run_after) come from the server's clock via ``$$NOW``.

``TaskStore`` is put together from one module per job:
    tasks.py         publishing, the user verbs (cancel, requeue, update_fields), reads
    task_claim.py    claiming (``Claimant``, ``Claim``, ``claim_next``)
    task_leases.py   lease renewal, lost leases, due pending tasks
    task_writer.py   attempt ends (``finish_attempt``) and the one writer (``apply``)
"""
from __future__ import annotations

from typing import Callable

from pymongo import ReturnDocument
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import AutoReconnect, BulkWriteError
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from fsm.decide import Plan, decide_cancel, decide_requeue
from fsm.errors import Conflict, InvalidTransition, TaskNotFound, ValidationError
from fsm.states import LIVE, Status, check
from fsm.decide_deps import WAITING
from fsm.lanes import lane_of
from fsm.store.counters import TaskCounters
from fsm.store.lanes import LaneStore
from fsm.store.db import server_now
from fsm.store.spec import PRIORITY_RANGE, TaskSpec, _int
from fsm.store.task_claim import (CLAIM_PROJECTION, CLAIM_SORT, PREFER_WINDOW_S, SLOW_YIELD_MS, Claim,  # noqa: F401
                                  Claimant, ClaimVerbs)
from fsm.store.task_leases import LeaseVerbs
from fsm.store.task_writer import MAX_RACE_RETRIES, PlanWriter  # noqa: F401
from fsm.store.values import lit, new_id  # noqa: F401  (importable from here, as before the split)
from fsm.store.workflows import Workflows

#: How many priority / enable changes a task keeps in ``changes``.
MAX_CHANGES = 100
# The status changes written without a Plan (claim, promote_due) must be legal; checked once, at import.
check(Status.QUEUED, Status.RUNNING)
check(Status.PENDING, Status.QUEUED)


class TaskStore(ClaimVerbs, LeaseVerbs, PlanWriter):
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
        self.counters = TaskCounters(db)
        self.lanes = LaneStore(db)
        self.flow = Workflows(self)

    # ----------------------------------------------------------------- publish
    def document(self, spec: TaskSpec, submitted_by: str, parent: str | None = None) -> dict:
        """The new document for a validated spec (not yet stored); ``parent``: the submitting task."""
        waits = bool(spec.depends_on)
        status = Status.PENDING if spec.run_after is not None or waits else Status.QUEUED
        doc = {
            "_id": spec.id or new_id(), "function": spec.function, "version": spec.version,
            "args": spec.args, "kwargs": spec.kwargs, "priority": spec.priority, "is_enabled": spec.is_enabled,
            "status": status.value, "requires": spec.requires, "lane": lane_of(spec.requires),
            "distinct_hosts": spec.distinct_hosts, "redundancy": spec.redundancy,
            "quorum": spec.quorum, "timeout_s": spec.timeout_s, "max_retries": spec.max_retries,
            "retry_backoff_s": spec.retry_backoff_s, "open_slots": spec.redundancy, "failures": 0,
            "workers": [], "attempts": [], "result": None, "error": None, "reason": None,
            "history": [], "run_after": spec.run_after, "submitted_by": submitted_by, "rev": 0,
        }
        if waits:  # workflow fields only where used: the sparse indexes stay small
            doc.update(depends_on=spec.depends_on, deps_done=[], reason=WAITING)
        if parent is not None:
            doc["parent"] = parent
        return doc


    def insert(self, docs: list[dict], on_stored: Callable[[], None] | None = None) -> list[str]:
        """Store new task documents, stamped by the server's clock; returns once they are
        majority-committed (journaled).

        ``on_stored`` (waking idle workers) is called once the insert returns, before the majority
        wait (a worker may claim a task while its publish is still being made durable), and also
        when it failed: what it stored can run. A duplicate id (an idempotent re-publish, a
        schedule firing twice) raises ``Conflict`` naming the ids; the other documents are still stored.
        """
        if not docs:
            return []
        self.lanes.register(doc["requires"] for doc in docs)
        self._mark_dependencies(docs)
        now = server_now(self.db)
        for doc in docs:
            doc["created_at"] = doc["updated_at"] = now
            doc["history"] = [{"from": None, "to": doc["status"], "at": now, "by": doc["submitted_by"]}]
        dupes: list = []
        try:
            self._fast.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            dupes = [e["op"]["_id"] for e in exc.details.get("writeErrors", []) if e.get("code") == 11000]
            if not dupes or len(dupes) != len(exc.details["writeErrors"]):
                raise
        finally:
            if on_stored is not None:
                on_stored()
        taken = set(dupes)
        stored = [d["_id"] for d in docs if d["_id"] not in taken]
        self._made_durable(stored, now)
        if dupes:
            raise Conflict(f"task id(s) already exist: {', '.join(map(str, dupes[:10]))}", ids=dupes)
        return stored

    def _made_durable(self, ids: list[str], created_at) -> None:
        """Wait until the tasks just inserted (acknowledged by the primary alone) are majority-committed.

        A no-op update with write concern majority: MongoDB waits for everything this primary has
        applied, the inserts included, and the matched count proves they are on the primary that
        answers (a failover between the insert and this wait may have rolled them back).
        """
        if not ids:
            return
        found = self.tasks.update_many({"_id": {"$in": ids}}, {"$min": {"created_at": created_at}}).matched_count
        if found != len(ids):
            raise AutoReconnect(f"{len(ids) - found} of {len(ids)} new task(s) were lost in a failover before "
                                "they were durable; nothing was acknowledged: publish again")

    def _mark_dependencies(self, docs: list[dict]) -> None:
        """Flag every task that new documents depend on (``has_dependents``), before they are stored.

        A task without the flag settles no dependents when it ends (one query less per task). The
        flag is written before a dependent exists, so a dependency that ends meanwhile either sees
        it or ended before the dependent was stored, and then ``flow.settle_published`` resolves it.
        """
        wanted = {d for doc in docs for d in doc.get("depends_on") or ()}
        for doc in docs:
            if doc["_id"] in wanted:
                doc["has_dependents"] = True
        stored = wanted - {doc["_id"] for doc in docs}
        if stored:
            self.tasks.update_many({"_id": {"$in": sorted(stored)}}, {"$set": {"has_dependents": True}})

    def import_documents(self, docs: list[dict]) -> int:
        """Store complete task documents as given, history included (benchmarks, migrations).

        The collection's validator still checks each one; primary-acknowledged for speed, so use
        it only for data that can be loaded again. The counters are not touched: call
        ``counters.rebuild()`` after a load.
        """
        if docs:
            self._fast.insert_many(docs, ordered=False)
        return len(docs)

    # ------------------------------------------------------------ user verbs
    def cancel(self, task_id: str, by: str) -> Plan:
        plan = self._decide_loop(task_id, decide_cancel, by)
        self._settle(task_id, plan)
        return plan

    def requeue(self, task_id: str, by: str) -> Plan:
        return self._decide_loop(task_id, decide_requeue, by)

    def update_fields(self, task_id: str, changes: dict, by: str) -> dict:
        """Re-prioritise or enable/disable a live task (takes effect on the next claim).

        Each real change is kept in the task's ``changes`` list (the last ``MAX_CHANGES``):
        ``{at, by, field, old, new}``, beside ``history``, which holds only status transitions.
        """
        allowed = {"priority", "is_enabled"}
        unknown = set(changes) - allowed
        if unknown or not changes:
            raise ValidationError(f"only {', '.join(sorted(allowed))} can be changed; got "
                                  f"{', '.join(sorted(unknown)) or 'nothing'}")
        if "priority" in changes:
            _int(changes, "priority", 0, *PRIORITY_RANGE)
        if "is_enabled" in changes and not isinstance(changes["is_enabled"], bool):
            raise ValidationError("'is_enabled' must be true or false", field="is_enabled")
        # One pipeline update: the values change and ``changes`` gains {at, by, field, old, new} for
        # each field whose value really changed ("$priority" reads the value before this write).
        entries = [{"at": "$$NOW", "by": lit(by), "field": name, "old": f"${name}", "new": lit(value)}
                   for name, value in sorted(changes.items())]
        changed = {"$filter": {"input": entries, "cond": {"$ne": ["$$this.old", "$$this.new"]}}}
        doc = self.tasks.find_one_and_update(
            {"_id": task_id, "status": {"$in": [s.value for s in LIVE]}},
            [{"$set": {"changes": {"$slice": [{"$concatArrays": [{"$ifNull": ["$changes", []]}, changed]},
                                              -MAX_CHANGES]},
                       **{name: lit(value) for name, value in changes.items()}, "updated_by": lit(by),
                       "updated_at": "$$NOW", "rev": {"$add": ["$rev", 1]}}}],
            return_document=ReturnDocument.AFTER)
        if doc is None:
            current = self.get(task_id)
            raise InvalidTransition(f"task {task_id} is {current['status']}; only pending, queued or running "
                                    "tasks can be changed")
        return doc

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
