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
