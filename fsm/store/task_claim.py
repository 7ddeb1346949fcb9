"""Claiming: one ``find_one_and_update`` hands a worker the most urgent task it may run.

The claim walks only the lanes the worker can serve (``fsm.lanes``): unclaimable work queued
ahead is never read. Quarantined functions are skipped; a clearly slower machine leaves a fresh
task to a faster idle one for ``SLOW_YIELD_MS`` without taking anything else meanwhile.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from typing import Sequence

from pymongo import ReturnDocument

from fsm.states import AttemptState, Status
from fsm.store.schema import CLAIM_INDEX
from fsm.store.values import lit, new_id

CLAIM_SORT = [("priority", -1), ("created_at", 1)]
#: Only what a worker needs to run the attempt; the rest stays on the server.
CLAIM_PROJECTION = {"function": 1, "version": 1, "args": 1, "kwargs": 1, "timeout_s": 1, "priority": 1,
                    "redundancy": 1, "requires": 1, "status": 1, "submitted_by": 1, "attempts.id": 1,
                    "attempts.number": 1}
#: How long a task may be passed over for one whose version a worker already has.
PREFER_WINDOW_S = 60
#: How long a slower machine leaves a fresh task to a faster one (it then takes it: no starving).
SLOW_YIELD_MS = 500
#: What the claim ahead reads: what a claim returns, and what tells whether it may be claimed ahead.
AHEAD_PROJECTION = {**CLAIM_PROJECTION, "distinct_hosts": 1}


def ahead_eligible(task: dict) -> bool:
    """A task that may wait its turn in a worker: never tried yet (a lost attempt claimed ahead is
    not counted, so each task has one such loss at most), run once, no GPU, at most one core."""
    needs = task.get("requires") or {}
    return (not task.get("attempts") and task.get("redundancy", 1) == 1 and task.get("status") == Status.QUEUED.value
            and not task.get("distinct_hosts") and not needs.get("gpus") and not needs.get("gpu_mem_gb")
            and (needs.get("cpus") or 1) <= 1)


@dataclass(frozen=True)
class Claimant:
    """What a worker offers when it claims: its name and resources."""

    name: str
    gpus: int = 0
    #: the machine: a task with ``distinct_hosts`` never runs twice on one
    host: str = ""
    mem_gb: float = 1 << 20
    tags: tuple[str, ...] = ()
    lease_s: float = 15.0
    #: After this long with a slot open, a redundant task may go to a worker that already ran it.
    distinct_grace_s: float = 30.0
    #: "function@version" pairs this worker has checked out; claimed first within a priority band.
    prefer_versions: tuple[str, ...] = field(default=())
    #: functions this machine is quarantined for (it keeps failing them while others succeed)
    avoid_functions: tuple[str, ...] = ()
    #: users at their running quota (``fsm.store.quotas``): their tasks wait, others' are claimed
    avoid_owners: tuple[str, ...] = ()
    #: functions an idle peer runs clearly faster: their fresh tasks are left to it for a moment
    slow_functions: tuple[str, ...] = ()
    #: free cores (None: not limited) and the most GPU memory (GB) one GPU still has free; ``gpus``
    #: counts the GPUs free whole (``fsm.capacity``)
    cpus: float | None = None
    gpu_mem_gb: float = 0.0


@dataclass
class Claim:
    """A claimed attempt: the task (without history) and the attempt's id."""

    task: dict
    attempt_id: str

    @property
    def task_id(self) -> str:
        return self.task["_id"]



class ClaimVerbs:
    """The claim verbs of ``TaskStore`` (``self.tasks``, ``self._fast``: the tasks collection; ``self.lanes``)."""

    def claim_filter(self, who: Claimant) -> dict:
        filt = {
            "open_slots": {"$gt": 0}, "is_enabled": True,
            "lane": {"$in": self.lanes.served_by(who.gpus, who.mem_gb, who.tags, who.gpu_mem_gb)},
            "status": {"$in": [Status.QUEUED.value, Status.RUNNING.value]},
            "requires.gpus": {"$lte": who.gpus}, "requires.mem_gb": {"$lte": who.mem_gb},
            "requires.tags": {"$not": {"$elemMatch": {"$nin": list(who.tags)}}},
            "workers": {"$ne": who.name}, "hosts": {"$ne": who.host},
        }
        if who.avoid_functions:
            filt["function"] = {"$nin": list(who.avoid_functions)}
        if who.avoid_owners:
            filt["submitted_by"] = {"$nin": list(who.avoid_owners)}
        if who.cpus is not None:  # capacity: what the task takes must fit what is free now
            # a task that names no cores takes one: with less than one free, only those that ask for less
            filt["requires.cpus"] = {"$not": {"$gt": who.cpus}} if who.cpus >= 1 else {"$lte": who.cpus}
            filt["requires.gpu_mem_gb"] = {"$not": {"$gt": who.gpu_mem_gb}}
        return filt

    def claim_next(self, who: Claimant) -> Claim | None:
        """Claim one attempt of the most urgent task this worker may run, or None.

        One ``find_one_and_update``: highest priority first, then oldest; sets status,
        the attempt with its lease (server clock) and the history entry in the same write.
        """
        attempt_id = new_id()
        update = self._claim_update(who, attempt_id)
        if who.slow_functions:
            yielded, doc = self._claim_if_not_slow(who, update)
            if yielded:
                return Claim(doc, attempt_id) if doc else None
        doc = self._claim_preferred(who, update) if who.prefer_versions else None
        if doc is None:
            doc = self._fast.find_one_and_update(self.claim_filter(who), update, sort=CLAIM_SORT,
                                                 projection=CLAIM_PROJECTION, hint=CLAIM_INDEX,
                                                 return_document=ReturnDocument.AFTER)
        if doc is None and who.distinct_grace_s >= 0:
            doc = self._claim_repeat(who, attempt_id, update)
        return Claim(doc, attempt_id) if doc else None

    def claim_ahead(self, who: Claimant, count: int, functions: Sequence[str],
                    stop_owners: Sequence[str] = ()) -> list[Claim]:
        """Claim up to ``count`` more attempts for a worker to run one after another
        (``worker.prefetch``): the next claimable tasks in claim order, as long as each is a
        simple one (``ahead_eligible``) of ``functions``. The first that is not ends the run, so
        nothing more urgent is passed over: it is left to a plain claim. ``stop_owners``: owners
        under a running quota (their claims are counted one by one).

        Two round trips however many: read the next claimable ones, then claim them all with one
        ``update_many`` whose filter repeats what makes a task claimable ahead and may change (still
        queued, never tried, enabled), so a task taken or changed meanwhile is skipped. Each
        attempt's id is the batch's id followed by the task's (computed in the write), so only
        when some were skipped is a third read needed to tell which.
        """
        if count <= 0 or not functions:
            return []
        wanted, stop = set(functions) - set(who.avoid_functions), set(stop_owners)
        docs = []
        for doc in self._fast.find(self.claim_filter(who), AHEAD_PROJECTION, sort=CLAIM_SORT, hint=CLAIM_INDEX,
                                   limit=count):
            if doc["function"] not in wanted or doc.get("submitted_by") in stop or not ahead_eligible(doc):
                break
            docs.append(doc)
        if not docs:
            return []
        batch, ids = new_id(), [doc["_id"] for doc in docs]
        result = self._fast.update_many(
            {"_id": {"$in": ids}, "status": Status.QUEUED.value, "open_slots": {"$gt": 0}, "is_enabled": True,
             "attempts": {"$size": 0}},
            self._claim_update(who, {"$concat": [lit(batch), "$_id"]}, ahead=True))
        if result.modified_count < len(docs):  # some were taken or changed meanwhile: which are ours?
            mine = {d["_id"] for d in self._fast.find({"_id": {"$in": ids},
                                                       "attempts.id": {"$in": [batch + i for i in ids]}}, {"_id": 1})}
            docs = [doc for doc in docs if doc["_id"] in mine]
        claims = []
        for doc in docs:  # as the claim wrote it (nothing the claim reads changed: the filter held)
            doc.pop("distinct_hosts", None)
            doc.update(status=Status.RUNNING.value, attempts=[{"id": batch + doc["_id"], "number": 1}])
            claims.append(Claim(doc, batch + doc["_id"]))
        return claims

    def _claim_preferred(self, who: Claimant, update: list) -> dict | None:
        """Prefer a task whose version this worker already has checked out, without starving any:
        only within the most urgent priority band, and never past a task waiting over a minute."""
        filt = self.claim_filter(who)
        # The window is measured by the server's clock, inside the query: never this process's clock.
        waited_long = {"$lt": ["$created_at", {"$subtract": ["$$NOW", PREFER_WINDOW_S * 1000]}]}
        top = self.tasks.find_one(filt, {"function": 1, "version": 1, "priority": 1, "waited_long": waited_long},
                                  sort=CLAIM_SORT, hint=CLAIM_INDEX)
        if top is None or f"{top['function']}@{top.get('version')}" in who.prefer_versions \
                or top.get("version") == "builtin" or top.get("waited_long"):
            return None
        pairs = [dict(zip(("function", "version"), fv.rsplit("@", 1))) for fv in who.prefer_versions]
        filt.update(priority=top["priority"], **{"$or": pairs})
        return self._fast.find_one_and_update(filt, update, sort=CLAIM_SORT, projection=CLAIM_PROJECTION,
                                              hint=CLAIM_INDEX, return_document=ReturnDocument.AFTER)

    def _claim_if_not_slow(self, who: Claimant, update: list) -> tuple[bool, dict | None]:
        """When the most urgent task is of a function a peer runs faster, take it only once it has
        waited ``SLOW_YIELD_MS`` (server clock), and take nothing else meanwhile: priority order holds.
        Returns (decided, claimed document)."""
        filt = self.claim_filter(who)
        top = self.tasks.find_one(filt, {"function": 1}, sort=CLAIM_SORT, hint=CLAIM_INDEX)
        if top is None or top["function"] not in who.slow_functions:
            return False, None
        filt.update(_id=top["_id"], **{"$expr": {"$lt": ["$created_at", {"$subtract": ["$$NOW", SLOW_YIELD_MS]}]}})
        return True, self._fast.find_one_and_update(filt, update, projection=CLAIM_PROJECTION,
                                                    return_document=ReturnDocument.AFTER)

    def _claim_repeat(self, who: Claimant, attempt_id: str, update: list) -> dict | None:
        """A redundant task no other worker took within the grace period may run here again."""
        filt = self.claim_filter(who)
        filt["workers"] = who.name
        filt["distinct_hosts"] = {"$ne": True}  # those never run twice on one machine
        # The server's clock inside the filter: no extra round trip on an empty queue.
        filt["$expr"] = {"$lt": ["$slot_open_since", {"$subtract": ["$$NOW", int(who.distinct_grace_s * 1000)]}]}
        return self._fast.find_one_and_update(filt, update, sort=CLAIM_SORT, projection=CLAIM_PROJECTION,
                                              hint=CLAIM_INDEX, return_document=ReturnDocument.AFTER)

    @staticmethod
    def _claim_update(who: Claimant, attempt_id: str | dict, ahead: bool = False) -> list:
        """The claim's write. ``ahead``: tasks read as queued, never tried and run once, for
        ``claim_ahead`` (its filter holds that), whose attempt ids are computed in the write: the
        parts that depend on what else the task may hold are left out."""
        lease_ms = int(who.lease_s * 1000)
        attempt = {"id": attempt_id if ahead else lit(attempt_id), "worker": lit(who.name), "host": lit(who.host),
                   "state": AttemptState.RUNNING.value,
                   "number": 1 if ahead else {"$add": [{"$size": "$attempts"}, 1]},
                   "started_at": "$$NOW", "lease_until": {"$add": ["$$NOW", lease_ms]}}
        if ahead:  # a lost lease may mean it never ran (``fsm.decide.decide_attempt_end``)
            attempt["ahead"] = True
        entry = {"from": Status.QUEUED.value, "to": Status.RUNNING.value, "at": "$$NOW", "by": lit(who.name)}
        history = {"$concatArrays": ["$history", [entry]]}
        stage = {
            "status": Status.RUNNING.value,
            "open_slots": {"$subtract": ["$open_slots", 1]},
            "slot_open_since": "$$NOW",
            "workers": {"$concatArrays": ["$workers", [lit(who.name)]]},
            "attempts": {"$concatArrays": ["$attempts", [attempt]]},
            "history": history if ahead else {"$cond": [{"$eq": ["$status", Status.QUEUED.value]}, history,
                                                        "$history"]},
            "started_at": {"$ifNull": ["$started_at", "$$NOW"]},
            "updated_at": "$$NOW",
            "rev": {"$add": ["$rev", 1]},
        }
        if not ahead:  # (a task claimed ahead never has distinct_hosts)
            stage["hosts"] = {"$cond": [{"$eq": ["$distinct_hosts", True]},
                                        {"$concatArrays": [{"$ifNull": ["$hosts", []]}, [lit(who.host)]]}, "$hosts"]}
        return [{"$set": stage}]

