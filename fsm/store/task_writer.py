"""The one writer of task decisions, and the attempt ends that feed it.

Every decided change of a task (an attempt's end, a retry, a quorum, a dispute, a lost lease,
a cancel, a requeue) is a ``fsm.decide.Plan`` written by ``apply``: one update pipeline whose
filter is the compare-and-set. A plan decided from a read task filters on that task's ``rev``
and status; a plan decided without a read (``decide_lone_success``) filters on its ``assumes``
and on the attempt still running. A lost race changes nothing and is decided again.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import PyMongoError

from fsm.decide import Plan, decide_attempt_end, decide_lone_success, decide_release
from fsm.errors import Conflict, InvalidTransition, LeaseLost, TaskNotFound
from fsm.states import FINAL, AttemptState, Status
from fsm.store.lease_fence import lease_live, why_refused
from fsm.store.values import lit, new_id

log = logging.getLogger("suanwang.store")

MAX_RACE_RETRIES = 50
#: What the counters need back from a write (``fsm.store.counters``).
WRITTEN = {"function": 1, "started_at": 1, "finished_at": 1, "has_dependents": 1}


@dataclass(frozen=True)
class Success:
    """A succeeded attempt, for ``finish_successes``."""

    task_id: str
    attempt_id: str
    result: Any = None
    logs: str | None = None
    result_ref: dict | None = None
    usage: dict | None = None


def _measured(plan: Plan, attempt_id: str, usage: dict | None) -> None:
    """Keep the worker's measurements (cpu_s, gpu_s) on the ended attempt."""
    if usage:
        plan.attempts[attempt_id].update({k: float(v) for k, v in usage.items() if k in ("cpu_s", "gpu_s")})


class PlanWriter:
    """``TaskStore``'s writer (``self.tasks``: the collection; ``self.counters``: ``TaskCounters``)."""

    # ---------------------------------------------------------- attempt ends
    def finish_attempt(self, task_id: str, attempt_id: str, state: AttemptState | str, *, result: Any = None,
                       error: str | None = None, traceback: str | None = None, logs: str | None = None,
                       worker: str | None = None, result_ref: dict | None = None, permanent: bool = False,
                       usage: dict | None = None) -> Plan:
        """Record how an attempt ended and decide the task (retry, quorum, dispute).

        Raises ``LeaseLost`` when the attempt is no longer running (lease expired, task
        cancelled or decided) or its lease time has passed by the server's clock, even before
        housekeeping marks it lost: the late result is dropped, nothing changes. A ``lost`` end
        (the worker fenced the attempt itself) is taken while the attempt still runs.
        Returns a plan without a status change when this very end is already stored (an earlier
        try's write happened and only its acknowledgement was lost). ``result_ref``: the
        result is stored in GridFS (``result`` is then None); ``permanent``: no retry can help.
        ``usage``: what the attempt used as the worker measured it (``cpu_s``, ``gpu_s``), kept on
        the attempt for billing (``fsm.pricing``).
        """
        state = AttemptState(state)
        fence = None if state == AttemptState.LOST else lease_live(attempt_id)
        if state == AttemptState.SUCCEEDED:
            # The common case in one round trip: a task run once succeeds (no read needed).
            plan = decide_lone_success(attempt_id, result, logs=logs, result_ref=result_ref)
            _measured(plan, attempt_id, usage)
            written = self.apply(plan, task_id, by=worker or "worker", attempt=(attempt_id, worker), fence=fence)
            if written:
                self._settle(task_id, plan, written)
                return plan
        for _ in range(MAX_RACE_RETRIES):
            filt = {"_id": task_id, "attempts": {"$elemMatch": {"id": attempt_id, "state": "running"}}}
            if worker:
                filt["attempts"]["$elemMatch"]["worker"] = worker
            if fence:
                filt["$expr"] = fence
            task = self.tasks.find_one(filt)
            if task is None or task["status"] != Status.RUNNING.value:
                recorded, why = why_refused(self.tasks, task_id, attempt_id, state, result, error)
                if recorded:
                    log.info("%s", why)
                    return Plan(frm=Status(task["status"]) if task else Status.RUNNING)
                log.warning("%s", why)
                raise LeaseLost(why)
            plan = decide_attempt_end(task, attempt_id, state, result=result, error=error,
                                      traceback=traceback, logs=logs, result_ref=result_ref, permanent=permanent)
            _measured(plan, attempt_id, usage)
            written = self._write(task, plan, by=worker or "worker", fence=fence)
            if written:
                self._settle(task_id, plan, written)
                if state != AttemptState.SUCCEEDED and plan.to in (Status.QUEUED, Status.RUNNING, None):
                    self._claimable_again()
                return plan
        raise Conflict(f"task {task_id} kept changing; gave up after {MAX_RACE_RETRIES} tries")

    def finish_successes(self, ends: list[Success], worker: str) -> list[Success]:
        """Record several succeeded attempts of tasks run once with one write (group commit).

        Each task gets what ``finish_attempt``'s lone success would write (``decide_lone_success``),
        under the same conditions: still running, run once, the attempt running here with its
        lease live by the server's clock. One ``update_many`` writes them all: each task finds its
        own attempt and values by its id. The tasks are read back once to count them and to settle
        their dependents, and the counters get one increment per function. Returns the ends that
        were not written (a redundant task, a lost lease, ...): their caller records them one by
        one, where each is decided from the stored task.
        """
        if not ends:
            return []
        commit = new_id()  # marks the attempts this very write ended: a repeated call counts none twice
        plans: dict[str, Plan] = {}
        values, attempt_ids = [], []
        for end in ends:
            plan = plans[end.attempt_id] = decide_lone_success(end.attempt_id, end.result, logs=end.logs,
                                                               result_ref=end.result_ref)
            _measured(plan, end.attempt_id, end.usage)
            plan.attempts[end.attempt_id]["commit"] = commit
            is_this = {"$eq": ["$_id", lit(end.task_id)]}
            values.append({"case": is_this, "then": lit({"attempt": plan.attempts[end.attempt_id],
                                                         "fields": plan.fields})})
            attempt_ids.append({"case": is_this, "then": lit(end.attempt_id)})
        first = plans[ends[0].attempt_id]
        own_attempt = {"$switch": {"branches": attempt_ids, "default": None}}
        live = {"$let": {"vars": {"aid": own_attempt}, "in": {"$gt": [{"$size": {"$filter": {
            "input": "$attempts", "cond": {"$and": [
                {"$eq": ["$$this.id", "$$aid"]}, {"$eq": ["$$this.state", AttemptState.RUNNING.value]},
                {"$gt": ["$$this.lease_until", "$$NOW"]}]}}}}, 0]}}}
        entry = {"from": Status.RUNNING.value, "to": Status.SUCCEEDED.value, "at": "$$NOW", "by": lit(worker)}
        self.tasks.update_many(
            {"_id": {"$in": [end.task_id for end in ends]}, "status": first.frm.value, **first.assumes,
             "attempts": {"$elemMatch": {"state": AttemptState.RUNNING.value, "worker": worker}}, "$expr": live},
            [{"$set": {"_end": {"$switch": {"branches": values, "default": None}}, "_aid": own_attempt}},
             {"$set": {
                 **{name: f"$_end.fields.{name}" for name in first.fields},
                 "attempts": {"$map": {"input": "$attempts", "as": "a", "in": {"$cond": [
                     {"$eq": ["$$a.id", "$_aid"]}, {"$mergeObjects": ["$$a", "$_end.attempt", {"ended_at": "$$NOW"}]},
                     "$$a"]}}},
                 "status": Status.SUCCEEDED.value, "history": {"$concatArrays": ["$history", [entry]]},
                 "finished_at": "$$NOW", "updated_at": "$$NOW", "rev": {"$add": ["$rev", 1]}}},
             {"$unset": ["_end", "_aid"]}])
        ours = {end.task_id: end.attempt_id for end in ends}
        written, settle = [], []
        inc: dict[str, Counter] = {}
        for doc in self.tasks.find({"_id": {"$in": list(ours)}}, {**WRITTEN, "attempts.id": 1, "attempts.commit": 1}):
            aid = ours[doc["_id"]]
            if not any(a["id"] == aid and a.get("commit") == commit for a in doc.get("attempts", [])):
                continue
            written.append(aid)
            inc.setdefault(doc["function"], Counter()).update(self.counters.increments(doc, plans[aid]))
            if doc.get("has_dependents"):
                settle.append(doc["_id"])
        self.counters.record_many(inc)
        for task_id in settle:
            self._settle(task_id, plans[ours[task_id]])
        done = set(written)
        return [end for end in ends if end.attempt_id not in done]

    def release_attempt(self, task_id: str, attempt_id: str, worker: str, why: str) -> Plan | None:
        """Hand back an attempt claimed ahead and never started (``decide_release``); None when it no
        longer runs (cancelled, lost, gone): there is nothing to hand back."""
        def decide(task: dict) -> Plan:
            return decide_release(task, attempt_id, why)

        try:
            plan = self._decide_loop(task_id, decide, by=worker)
        except (InvalidTransition, TaskNotFound):
            return None
        if plan.to == Status.QUEUED:
            self._claimable_again()
        return plan

    def _claimable_again(self) -> None:
        """An attempt failed and its task can be claimed again at once (a retry without delay, an
        open redundant slot): idle workers are woken instead of finding it at their next poll."""
        if self.flow.wake is not None:
            self.flow.wake(1)

    def _settle(self, task_id: str, plan: Plan, written: dict | None = None) -> None:
        """Right after a final write: release or cancel dependents, cancel children (``Workflows``).

        ``written``: the task as the write returned it; one without ``has_dependents`` that did
        not end cancelled (which cancels children) has nothing to settle: no query is made.
        A failure here is only logged: the housekeeping sweep finishes the job.
        """
        if plan.to not in FINAL:
            return
        if written is not None and not written.get("has_dependents") and plan.to != Status.CANCELLED:
            return
        try:
            self.flow.settle(task_id, plan.to.value)
        except (PyMongoError, Conflict) as exc:
            log.warning("task %s: settling its dependents failed (%s); the sweep will retry", task_id, exc)

    def _decide_loop(self, task_id: str, decide, by: str) -> Plan:
        for _ in range(MAX_RACE_RETRIES):
            task = self.get(task_id)
            plan = decide(task)
            if self._write(task, plan, by=by):
                return plan
        raise Conflict(f"task {task_id} kept changing; gave up after {MAX_RACE_RETRIES} tries")

    # ---------------------------------------------------------------- writes
    def _write(self, task: dict, plan: Plan, by: str, fence: dict | None = None) -> dict | None:
        """Apply a plan iff the task is still at the revision (and status) it was read at
        (and, with ``fence``, that ``$expr`` still holds)."""
        return self.apply(plan, task["_id"], by=by, rev=task.get("rev", 0), fence=fence)

    def apply(self, plan: Plan, task_id: str, *, by: str, rev: int | None = None,
              attempt: tuple[str, str | None] | None = None, fence: dict | None = None) -> dict | None:
        """The one compare-and-set writer: the written task's ``WRITTEN`` fields, None when nothing was.

        The filter: the task's id and the plan's ``frm`` status, its ``assumes``, and either
        ``rev`` (the revision the plan was decided from) or ``attempt`` (id, worker) still running.
        """
        filt: dict[str, Any] = {"_id": task_id, "status": plan.frm.value, **plan.assumes}
        if rev is not None:
            filt["rev"] = rev
        if attempt is not None:
            match = {"id": attempt[0], "state": AttemptState.RUNNING.value}
            if attempt[1]:
                match["worker"] = attempt[1]
            filt["attempts"] = {"$elemMatch": match}
        if fence:
            filt["$expr"] = fence
        doc = self.tasks.find_one_and_update(filt, [{"$set": self._stage(plan, by)}], projection=WRITTEN,
                                             return_document=ReturnDocument.AFTER)
        if doc is None:
            return None
        self.counters.record(doc, plan)
        return doc

    @staticmethod
    def _stage(plan: Plan, by: str) -> dict[str, Any]:
        """The ``$set`` stage that writes ``plan``: fields, attempts, status with its history entry."""
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
        return stage
