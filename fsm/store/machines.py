"""The ``machine_stats`` collection: each worker's recent outcomes and speed per function.

One document per (worker, function), written only by that worker's heartbeat (so a read,
a pure decision in ``fsm.health`` and a write never race), read by the claim (quarantined
functions, slower-than-best functions), ``/stats/resources`` and ``explain``.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Iterable

from pymongo import UpdateOne
from pymongo.database import Database
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from fsm.health import HealthPolicy, Record, slower_than_best, verdict
from fsm.store.db import server_now


def _key(worker: str, function: str) -> str:
    return f"{worker}/{function}"  # '/' is in neither name's grammar


class MachineStats:
    def __init__(self, db: Database):
        self.db = db
        # A lost sample costs nothing but a slightly staler judgement; local reads see our own w:1 writes.
        self.coll = db.get_collection("machine_stats", write_concern=WriteConcern(w=1),
                                      read_concern=ReadConcern("local"))

    def record(self, worker: str, outcomes: Iterable[tuple[str, bool, float]], policy: HealthPolicy) -> list[dict]:
        """Add ``(function, ok, seconds)`` outcomes; returns the quarantines this started."""
        by_function: dict[str, list[tuple[bool, float]]] = defaultdict(list)
        for function, ok, seconds in outcomes:
            by_function[function].append((ok, seconds))
        if not by_function:
            return []
        now = server_now(self.db)
        docs = {d["function"]: d for d in self.coll.find({"worker": worker, "function": {"$in": list(by_function)}})}
        started, writes = [], []
        for function, items in by_function.items():
            doc = docs.get(function, {})
            record = Record(recent=list(doc.get("recent", [])), consecutive_failures=doc.get("consecutive_failures", 0))
            successes, total_s = doc.get("successes", 0), doc.get("total_s", 0.0)
            for ok, seconds in items:
                record.add(ok, policy.window)
                if ok:
                    successes, total_s = successes + 1, total_s + seconds
            update = {"worker": worker, "function": function, "recent": record.recent,
                      "consecutive_failures": record.consecutive_failures, "successes": successes,
                      "total_s": total_s, "mean_s": total_s / successes if successes else None, "updated_at": now}
            reason = verdict(record, policy)
            held = doc.get("quarantined_until") and doc["quarantined_until"].replace(tzinfo=now.tzinfo) > now
            if reason and not held and self._succeeds_elsewhere(worker, function):
                until = now + timedelta(seconds=policy.cooldown_s)
                update.update(quarantined_until=until, quarantine_reason=reason, quarantined_at=now,
                              recent=[], consecutive_failures=0)  # a clean record after the cool-down
                started.append({"worker": worker, "function": function, "reason": reason, "until": until})
            writes.append(UpdateOne({"_id": _key(worker, function)},
                                    {"$set": update, "$inc": {"attempts": len(items)}}, upsert=True))
        self.coll.bulk_write(writes, ordered=False)  # one round trip for every function that ran
        return started

    def _succeeds_elsewhere(self, worker: str, function: str) -> bool:
        """A function failing on every machine is the code's fault, not this machine's."""
        return self.coll.count_documents({"function": function, "worker": {"$ne": worker}, "recent": True},
                                         limit=1) == 1

    def quarantined(self, worker: str | None = None) -> list[dict]:
        """Quarantines in force (server clock), for one worker or all."""
        query: dict = {"quarantined_until": {"$gt": server_now(self.db)}}
        if worker is not None:
            query["worker"] = worker
        return list(self.coll.find(query, {"_id": 0, "worker": 1, "function": 1, "quarantined_until": 1,
                                           "quarantine_reason": 1}).sort("quarantined_until", 1))

    def slow_functions(self, worker: str, online: set[str], factor: float = 1.5) -> list[str]:
        """Functions an online peer runs clearly faster than this worker."""
        mine = {d["function"]: d.get("mean_s") for d in self.coll.find({"worker": worker}, {"function": 1, "mean_s": 1})}
        if not mine or not online - {worker}:
            return []
        best: dict[str, float] = {}
        for d in self.coll.find({"function": {"$in": list(mine)}, "worker": {"$in": sorted(online - {worker})},
                                 "mean_s": {"$ne": None}}, {"function": 1, "mean_s": 1}):
            best[d["function"]] = min(best.get(d["function"], float("inf")), d["mean_s"])
        return sorted(f for f, mean in mine.items() if slower_than_best(mean, best.get(f), factor))
