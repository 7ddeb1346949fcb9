"""Why is my task not running? Placement answers for the API, the CLI and the task page.

For a task that waits: which online workers could take it and why each other one cannot
(tags, GPUs, memory, draining, distinct workers or machines), how many claimable tasks are
ahead of it, and a rough estimated start from the function's measured durations (after
HTCondor's ``condor_q -better-analyze``). The rules are ``fsm.placement``'s, which are the claim's.
"""
from __future__ import annotations

from typing import Any

from fsm import placement
from fsm.states import Status
from fsm.store import Store
from scheduler import service


def _live_workers(store: Store) -> list[dict]:
    return store.workers.list({"state": {"$in": list(placement.LIVE_WORKER_STATES)}})


def publish_warnings(store: Store, docs: list[dict]) -> None:
    """Set ``warnings`` on new task documents whose redundancy the online workers cannot honour."""
    if not any(d.get("redundancy", 1) > 1 or d.get("requires", {}).get("gpus") or d.get("requires", {}).get("tags")
               or d.get("requires", {}).get("mem_gb") for d in docs):
        return  # plain tasks: any worker will do, and a missing one is said by /stats, not per task
    workers = _live_workers(store)
    seen: dict[tuple, list[str]] = {}
    for doc in docs:
        key = (doc.get("lane"), doc.get("redundancy", 1), bool(doc.get("distinct_hosts")))
        if key not in seen:
            seen[key] = placement.redundancy_warnings(doc, workers)
        if seen[key]:
            doc["warnings"] = seen[key]


def explain(store: Store, task_id: str, user: dict) -> dict[str, Any]:
    """The placement analysis of one task (404 / 403 as for reading it)."""
    task = service.get_task(store, task_id, user)
    status = Status(task["status"])
    workers = _live_workers(store)
    rows = []
    for w in workers:
        why = placement.obstacles(task, w)
        rows.append({"name": w["_id"], "host": w.get("host"), "state": w.get("state"), "can_run": not why,
                     "why_not": why, "free_slots": placement.free_slots(w)})
    able = [w for w in workers if w.get("state") == "online" and not placement.obstacles(task, w)]
    claimable = status in (Status.QUEUED, Status.RUNNING) and task.get("open_slots", 0) > 0
    answer: dict[str, Any] = {"id": task["_id"], "status": status.value, "reason": task.get("reason"),
                              "waiting": claimable or status == Status.PENDING, "workers": rows,
                              "eligible_workers": len(able), "warnings": task.get("warnings", [])}
    blockers = []
    if not task.get("is_enabled", True):
        blockers.append("disabled: it is never claimed until a super-user enables it")
    if status == Status.PENDING:
        blockers.append(f"pending: {task.get('reason') or 'waiting'}"
                        + (f" until {task['run_after'].isoformat()}" if task.get("run_after") else ""))
    if claimable and not able:
        blockers.append(f"none of the {len(workers)} online worker(s) can run it" if workers
                        else "no worker is online")
    answer["blockers"] = blockers
    if claimable and able:
        lanes = sorted({lane for w in able for lane in store.tasks.lanes.served_by(
            int(w.get("gpu_count") or 0), float(w.get("mem_gb") or 0), w.get("tags") or [],
            max((w.get("capacity") or {}).get("gpu_mem_gb") or [0]))})
        ahead = store.placement.count_ahead(task, lanes)
        mean = store.placement.mean_duration_s(task["function"])
        answer.update(ahead=ahead, mean_duration_s=mean,
                      estimated_start_s=placement.estimate_start_s(ahead, mean, able))
    answer["summary"] = _summary(answer, status)
    return answer


def _summary(a: dict, status: Status) -> str:
    if not a["waiting"]:
        return f"the task is {status.value}; it is not waiting for a worker"
    if a["blockers"]:
        return "; ".join(a["blockers"])
    text = f"{a['eligible_workers']} online worker(s) can run it; {a.get('ahead', 0)} claimable task(s) are ahead"
    if a.get("estimated_start_s") is not None:
        text += f"; estimated start in about {a['estimated_start_s']:g} s"
    return text
