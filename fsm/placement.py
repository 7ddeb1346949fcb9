"""Which workers could run a task, and why each other one cannot (pure, no I/O).

Used by the publish answer's ``warnings`` (fewer eligible workers than ``redundancy``) and by
``GET /api/v1/tasks/<id>/explain``. The inputs are a task document and ``workers`` documents
(their whoami: ``state``, ``gpu_count``, ``mem_gb``, ``tags``, ``host``, ``concurrency``,
``running``); the rules are the claim's (``fsm.lanes`` and the store's claim filter).
"""
from __future__ import annotations

from typing import Iterable

LIVE_WORKER_STATES = ("online", "draining")


def obstacles(task: dict, worker: dict) -> list[str]:
    """Why this worker cannot claim this task now; empty when it can."""
    why = []
    if worker.get("state") == "draining":
        why.append("draining: it takes no new tasks")
    elif worker.get("state") not in LIVE_WORKER_STATES:
        why.append(f"{worker.get('state', 'offline')}")
    need = task.get("requires") or {}
    gpus, have_gpus = int(need.get("gpus", 0) or 0), int(worker.get("gpu_count") or 0)
    if gpus > have_gpus:
        why.append(f"GPUs: the task needs {gpus}, the worker has {have_gpus}")
    mem, have_mem = float(need.get("mem_gb", 0) or 0), float(worker.get("mem_gb") or 0)
    if mem > have_mem:
        why.append(f"memory: the task needs {mem:g} GB, the worker has {have_mem:.1f} GB")
    missing = sorted(set(need.get("tags") or []) - set(worker.get("tags") or []))
    if missing:
        why.append(f"tags: the worker lacks {', '.join(missing)}")
    capacity = worker.get("capacity") or {}
    cpus, offered = float(need.get("cpus", 1) or 0), capacity.get("cpus")
    if offered is not None and cpus > offered:
        why.append(f"cores: the task needs {cpus:g}, the worker offers {offered:g}")
    gpu_mem, sizes = float(need.get("gpu_mem_gb", 0) or 0), capacity.get("gpu_mem_gb") or []
    if gpu_mem and sizes is not None and gpu_mem > max(sizes, default=0):
        why.append(f"GPU memory: the task needs {gpu_mem:g} GB on one GPU, the worker's largest has "
                   f"{max(sizes, default=0):g} GB")
    hot = worker.get("too_hot")
    if hot:
        why.append(f"temperature: {hot.get('sensor')} at {hot.get('celsius'):g} °C (limit "
                   f"{capacity.get('max_temp_c')} °C); no new claims until it cools")
    quarantined = [q for q in worker.get("quarantined") or [] if q.get("function") == task.get("function")]
    if quarantined:
        why.append(f"quarantined for {task.get('function')} until {quarantined[0].get('until')}: "
                   f"{quarantined[0].get('reason')}")
    if worker.get("_id") in (task.get("workers") or []):
        why.append("it already runs or ran an attempt of this task (redundant attempts go to distinct workers)")
    elif task.get("distinct_hosts") and worker.get("host") in (task.get("hosts") or []):
        why.append(f"distinct_hosts: machine {worker.get('host')} already runs an attempt of this task")
    return why


def free_slots(worker: dict) -> int:
    return max(0, int(worker.get("concurrency") or 0) - len(worker.get("running") or []))


def eligible(task: dict, workers: Iterable[dict]) -> list[dict]:
    """The live workers that could claim this task (busy or not)."""
    return [w for w in workers if w.get("state") == "online" and not obstacles(task, w)]


def redundancy_warnings(task: dict, workers: Iterable[dict]) -> list[str]:
    """What a publisher should know: fewer eligible machines (or workers) online than ``redundancy``."""
    able = eligible({**task, "workers": [], "hosts": []}, workers)
    want = int(task.get("redundancy", 1) or 1)
    if task.get("distinct_hosts"):
        hosts = {w.get("host") for w in able}
        if len(hosts) < want:
            return [f"redundancy {want} with distinct_hosts, but only {len(hosts)} eligible machine(s) are online: "
                    "the task waits until more join"]
        return []
    if not able:
        return ["no online worker can run this task now (see GET /api/v1/tasks/<id>/explain); it waits in the queue"]
    if len(able) < want:
        return [f"redundancy {want}, but only {len(able)} eligible worker(s) are online: the task waits until more "
                "join"]
    return []


def estimate_start_s(ahead: int, mean_duration_s: float | None, workers: list[dict]) -> float | None:
    """A rough wait: the claimable work ahead spread over the eligible workers' slots."""
    slots = sum(max(1, int(w.get("concurrency") or 1)) for w in workers)
    if not slots or mean_duration_s is None:
        return None
    return round(ahead * mean_duration_s / slots, 3)
