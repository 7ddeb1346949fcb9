"""Workflow use cases: checking ``depends_on`` at publish, and what a task page shows around a task.

A bulk publish may name, in ``depends_on``, ids chosen by the client for tasks of the same
request; every other id must be an existing task the caller may see. Unknown ids and cycles
refuse the whole request (422) before anything is written.
"""
from __future__ import annotations

from graphlib import CycleError, TopologicalSorter

from fsm.errors import ValidationError
from fsm.store import Store
from fsm.store.spec import TaskSpec


def check_dependencies(store: Store, specs: list[TaskSpec], user: dict, sees_all: bool) -> set[str]:
    """Refuse unknown dependencies and cycles; returns the dependencies outside this request."""
    local = {s.id for s in specs if s.id is not None}
    wanted = {d for s in specs for d in s.depends_on}
    if not wanted:
        return set()
    external = wanted - local
    if external:
        found = store.tasks.flow.existing(external, None if sees_all else user["_id"])
        unknown = sorted(external - found)
        if unknown:
            raise ValidationError(f"'depends_on' names unknown task(s): {', '.join(unknown[:10])}"
                                  + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
                                  + " (nothing was published)", field="depends_on", ids=unknown[:100])
    graph = {s.id: [d for d in s.depends_on if d in local] for s in specs if s.id is not None}
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as exc:
        cycle = exc.args[1]
        raise ValidationError(f"'depends_on' forms a cycle: {' -> '.join(cycle)} (nothing was published)",
                              field="depends_on", cycle=cycle) from None
    return external


def task_workflow(store: Store, task: dict, user: dict) -> dict:
    """What a task page shows around a task (already checked visible): its dependencies, dependents,
    parent and children (each ``{_id, function, status}``), and the workflow graph around it."""
    related = store.tasks.flow.related(task)
    graph = store.tasks.flow.graph(task["_id"])
    nodes = {n["id"]: n for n in graph["nodes"]}
    parent = task.get("parent")
    if parent:
        parent = {"_id": parent, **{k: v for k, v in nodes.get(parent, {}).items() if k != "id"}}
    return {**related, "parent": parent, "graph": graph}
