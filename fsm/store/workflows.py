"""Workflow verbs over ``tasks``: dependencies (``depends_on``), child tasks (``parent``), results.

A task published with ``depends_on`` waits in ``pending`` (reason ``waiting_for_dependencies``).
Right after a task reaches a final state, ``settle`` visits each waiting dependent once per
edge: a success is counted in the dependent's ``deps_done`` (the last one queues it), a
failure or cancel cancels it (``upstream_failed``), and that cancel settles its own
dependents in turn. Each change is a decision of ``fsm.decide_deps`` written by the task
store's compare-and-set writer, so each is checked by the FSM table and lands in the history;
visiting an edge twice changes nothing. A crash between a task's final write and its
``settle`` is repaired by ``sweep`` (run by housekeeping). A cancelled task also cancels its
live children (``parent_cancelled``).
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Callable, Iterable

from fsm.decide import decide_cancel
from pymongo import ReturnDocument

from fsm.decide_deps import DEPENDENCIES_SUCCEEDED, PARENT_CANCELLED, WAITING, decide_dependency_failed
from fsm.errors import Conflict, InvalidTransition
from fsm.states import FINAL, LIVE, Status, check

if TYPE_CHECKING:  # pragma: no cover
    from fsm.store.tasks import TaskStore

log = logging.getLogger("suanwang.store.workflows")

MAX_RACE_RETRIES = 50
check(Status.PENDING, Status.QUEUED)  # written by _count_success without a Plan: legal, checked at import
FINAL_VALUES = [s.value for s in FINAL]
LIVE_VALUES = [s.value for s in LIVE]
#: Most tasks a workflow graph shows.
GRAPH_LIMIT = 300
#: Fields the graph and the related-task lists show.
NODE_FIELDS = {"function": 1, "status": 1, "depends_on": 1, "parent": 1, "progress": 1}


class Workflows:
    """Reached as ``store.tasks.flow``."""

    def __init__(self, tasks: "TaskStore"):
        self._store = tasks
        self.tasks = tasks.tasks
        self._sweep_at: dict[str, int] = {}  # where each sweep query goes on next time
        #: Called with the number of tasks a settle queued (``Store`` wires its wake-up signal here).
        self.wake: Callable[[int], None] | None = None

    # ------------------------------------------------------------ settling
    def settle(self, task_id: str, status: str | None = None) -> int:
        """Propagate a final task to its dependents (transitively) and children; returns changes made."""
        changed = released = 0
        stack: list[tuple[str, str | None]] = [(task_id, status)]
        while stack:
            tid, st = stack.pop()
            if st is None:
                doc = self.tasks.find_one({"_id": tid}, {"status": 1})
                st = doc and doc["status"]
            if st not in FINAL_VALUES:
                continue
            ok = st == Status.SUCCEEDED.value
            for dependent in self.tasks.find({"depends_on": tid, "status": Status.PENDING.value}, {"_id": 1}):
                if ok:
                    now = self._count_success(dependent["_id"], tid)
                    changed += now is not None
                    released += now == Status.QUEUED.value
                elif self._cancel_dependent(dependent["_id"], tid):
                    changed += 1
                    stack.append((dependent["_id"], Status.CANCELLED.value))
            if st == Status.CANCELLED.value:
                for child in self.tasks.find({"parent": tid, "status": {"$in": LIVE_VALUES}}, {"_id": 1}):
                    if self._cancel_child(child["_id"], tid):
                        changed += 1
                        stack.append((child["_id"], Status.CANCELLED.value))
        if released and self.wake is not None:  # idle workers claim the released tasks at once
            self.wake(released)
        return changed

    def settle_published(self, dependencies: Iterable[str]) -> int:
        """New dependents of tasks that had already ended: resolve them at once."""
        ids = list(set(dependencies))
        if not ids:
            return 0
        done = self.tasks.find({"_id": {"$in": ids}, "status": {"$in": FINAL_VALUES}}, {"status": 1})
        return sum(self.settle(d["_id"], d["status"]) for d in done)

    def _count_success(self, task_id: str, dependency: str) -> str | None:
        """One conditional update per succeeded edge: count it in ``deps_done``; the last one queues the
        task (with its history entry). Idempotent: a counted edge, or a task no longer waiting, is left
        alone. Returns the task's status after the write, None when nothing changed.

        Not a read and a compare-and-set on ``rev``: a gather of 1,000 children would have its
        1,000 finishing children race on one document and retry; this write never loses a race.
        """
        entry = {"from": Status.PENDING.value, "to": Status.QUEUED.value, "at": "$$NOW",
                 "by": {"$literal": f"dependency {dependency}"}, "reason": DEPENDENCIES_SUCCEEDED}
        complete = {"$setIsSubset": ["$depends_on", "$deps_done"]}
        # Acknowledged by the primary alone, like a claim: one lost to a mongod crash is redone by
        # the sweep (the dependency is final and the edge not counted), so nothing is lost.
        doc = self._store._fast.find_one_and_update(
            {"_id": task_id, "status": Status.PENDING.value, "reason": WAITING, "depends_on": dependency,
             "deps_done": {"$ne": dependency}},
            [{"$set": {"deps_done": {"$concatArrays": ["$deps_done", [{"$literal": dependency}]]},
                       "updated_at": "$$NOW", "rev": {"$add": ["$rev", 1]}}},
             {"$set": {"status": {"$cond": [complete, Status.QUEUED.value, Status.PENDING.value]},
                       "reason": {"$cond": [complete, None, "$reason"]},
                       "history": {"$cond": [complete, {"$concatArrays": ["$history", [entry]]}, "$history"]}}}],
            projection={"status": 1}, return_document=ReturnDocument.AFTER)
        return doc and doc["status"]

    def _cancel_dependent(self, task_id: str, dependency: str) -> bool:
        """A dependency failed or was cancelled: decide and write the waiting task's cancel (rare path)."""
        for _ in range(MAX_RACE_RETRIES):
            task = self.tasks.find_one({"_id": task_id})
            plan = decide_dependency_failed(task, dependency) if task else None
            if plan is None:
                return False
            if self._store._write(task, plan, by=f"dependency {dependency}"):
                return True
        raise Conflict(f"task {task_id} kept changing; gave up after {MAX_RACE_RETRIES} tries")

    def _cancel_child(self, task_id: str, parent: str) -> bool:
        for _ in range(MAX_RACE_RETRIES):
            task = self.tasks.find_one({"_id": task_id})
            if task is None or task["status"] not in LIVE_VALUES:
                return False
            try:
                plan = decide_cancel(task)
            except InvalidTransition:
                return False
            plan.reason = plan.fields["reason"] = PARENT_CANCELLED
            if self._store._write(task, plan, by=f"parent {parent}"):
                return True
        raise Conflict(f"task {task_id} kept changing; gave up after {MAX_RACE_RETRIES} tries")

    def sweep(self, limit: int = 1000) -> int:
        """Repair what a crash between a final write and its ``settle`` left behind; returns changes.

        Each call reads at most ``limit`` waiting tasks and ``limit`` live children through the
        ``status_created`` index, going on where the previous call stopped, so every one is seen
        within a few rounds however many there are.
        """
        waiting = self._rotate("waiting", {"status": Status.PENDING.value, "reason": WAITING},
                               {"depends_on": 1, "deps_done": 1}, limit)
        needed = {d for w in waiting for d in w.get("depends_on", []) if d not in w.get("deps_done", [])}
        children = self._rotate("children", {"status": {"$in": LIVE_VALUES}, "parent": {"$exists": True}},
                                {"parent": 1}, limit)
        parents = {c["parent"] for c in children}
        changed = self.settle_published(needed) if needed else 0
        if parents:
            for doc in self.tasks.find({"_id": {"$in": list(parents)}, "status": Status.CANCELLED.value},
                                       {"status": 1}):
                changed += self.settle(doc["_id"], doc["status"])
        return changed

    def _rotate(self, name: str, query: dict, projection: dict, limit: int) -> list[dict]:
        """The next ``limit`` matches in creation order after the last call's; from the start once done.

        An offset, not a created_at bound: the tasks of one bulk publish share their created_at.
        """
        offset = self._sweep_at.get(name, 0)
        docs = list(self.tasks.find(query, projection, hint="status_created").sort("created_at", 1)
                    .skip(offset).limit(limit))
        self._sweep_at[name] = offset + len(docs) if len(docs) == limit else 0
        return docs

    # --------------------------------------------------------------- reads
    def existing(self, ids: Iterable[str], submitted_by: str | None = None) -> set[str]:
        """Which of these task ids exist (and, with ``submitted_by``, belong to that user)."""
        query: dict = {"_id": {"$in": list(set(ids))}}
        if submitted_by is not None:
            query["submitted_by"] = submitted_by
        return {d["_id"] for d in self.tasks.find(query, {"_id": 1})}

    def submitter(self, task_id: str) -> dict | None:
        """Who submitted a task, with the role they had then: its child tasks are published as them.

        Read from the task itself (``submitted_role``), so a worker never reads ``users`` (its
        database role may not)."""
        task = self.tasks.find_one({"_id": task_id}, {"submitted_by": 1, "submitted_role": 1})
        if task is None or not task.get("submitted_role"):
            return None
        return {"_id": task["submitted_by"], "role": task["submitted_role"]}

    def results(self, ids: Iterable[str]) -> dict[str, dict]:
        """``{id: {status, result, result_ref}}`` of the given tasks (the worker's ``__result__`` lookup)."""
        return {d["_id"]: d for d in self.tasks.find({"_id": {"$in": list(set(ids))}},
                                                     {"status": 1, "result": 1, "result_ref": 1})}

    def related(self, task: dict, limit: int = 500) -> dict[str, list[dict]]:
        """The task's dependencies, dependents and children, each ``{_id, function, status}``."""
        fields = {"function": 1, "status": 1}
        deps = list(self.tasks.find({"_id": {"$in": task.get("depends_on", [])}}, fields))
        order = {d: i for i, d in enumerate(task.get("depends_on", []))}
        deps.sort(key=lambda d: order[d["_id"]])
        dependents = list(self.tasks.find({"depends_on": task["_id"]}, fields).limit(limit))
        children = list(self.tasks.find({"parent": task["_id"]}, fields).sort("created_at", 1).limit(limit))
        return {"dependencies": deps, "dependents": dependents, "children": children}

    def graph(self, task_id: str, limit: int = GRAPH_LIMIT) -> dict:
        """The workflow around a task: ``{"nodes": [...], "edges": [...], "truncated"}``.

        Walks dependency and parent links both ways, one query per direction and step.
        """
        nodes: dict[str, dict] = {}
        expanded: set[str] = set()  # ids whose neighbours were asked for
        frontier = {task_id}
        while frontier and len(nodes) < limit:
            ids = list(frontier)
            expanded |= frontier
            for doc in self.tasks.find({"$or": [{"_id": {"$in": ids}}, {"depends_on": {"$in": ids}},
                                                {"parent": {"$in": ids}}]}, NODE_FIELDS).limit(limit):
                nodes.setdefault(doc["_id"], doc)
            upward = {x for d in nodes.values() for x in [*d.get("depends_on", []), d.get("parent")] if x}
            frontier = (set(nodes) | upward) - expanded
        edges = [{"source": dep, "target": tid, "kind": "depends_on"} for tid, d in nodes.items()
                 for dep in d.get("depends_on", []) if dep in nodes]
        edges += [{"source": d["parent"], "target": tid, "kind": "parent"} for tid, d in nodes.items()
                  if d.get("parent") in nodes]
        return {"nodes": [{"id": k, "function": v.get("function"), "status": v.get("status")}
                          for k, v in nodes.items()], "edges": edges, "truncated": len(nodes) >= limit}
