"""Fan-out and gather from inside a task: publish N children and one gather, then return.

The parent holds its slot only while it publishes; the gather runs when the last child
succeeded, with their results as arguments (``{"__result__": id}``). Used by
``scripts/bench_workflow.py``; try it with ``suanwang submit examples.workflows.fan_out:fan_out 100``.
"""
from __future__ import annotations


def fan_out(n: int, child: str = "noop", gather: str = "examples.workflows.fan_out:count") -> dict:
    from suanwang import current_task

    task = current_task()
    kids = [task.submit(child) for _ in range(n)]
    return {"children": len(kids), "gather": task.submit(gather, *[{"__result__": k} for k in kids],
                                                        depends_on=kids)}


def count(*results) -> int:
    """The gather: how many results arrived."""
    return len(results)


def fan_out_bulk(n: int, child: str = "noop", gather: str = "examples.workflows.fan_out:count") -> dict:
    """The same in one request: N children and the gather, the gather naming the children's ids."""
    import uuid

    from suanwang import current_task

    tag = uuid.uuid4().hex[:12]
    kids = [f"{tag}-{i}" for i in range(n)]
    bodies = [{"id": k, "function": child} for k in kids]
    bodies.append({"id": f"{tag}-gather", "function": gather, "args": [{"__result__": k} for k in kids],
                   "depends_on": kids})
    ids = current_task().submit_many(bodies)
    return {"children": len(kids), "gather": ids[-1]}
