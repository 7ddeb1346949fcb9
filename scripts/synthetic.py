"""Synthetic task documents for the benchmarks: complete, with a history the validators accept."""
from __future__ import annotations

from datetime import datetime, timedelta

from fsm.store.spec import validate
from fsm.store.values import new_id

FUNCTIONS = ["train_model", "render_frames", "echo", "sleep", "cpu_burn"]
#: status -> the path it took from its first status
PATHS = {"queued": ["queued"], "pending": ["pending"], "running": ["queued", "running"],
         "succeeded": ["queued", "running", "succeeded"], "failed": ["queued", "running", "failed"],
         "cancelled": ["queued", "cancelled"]}


_TEMPLATES: dict[str, dict] = {}


def task(store, i: int, status: str, now: datetime, function: str | None = None) -> dict:
    """Task number ``i`` in ``status``, created about ``i`` seconds before ``now``."""
    fn = function or FUNCTIONS[i % len(FUNCTIONS)]
    if fn not in _TEMPLATES:  # one validated document per function; the rest are copies of it
        _TEMPLATES[fn] = store.tasks.document(validate({"function": fn}), "synthetic")
    doc = {**_TEMPLATES[fn], "_id": new_id(), "args": [i], "priority": i % 10, "submitted_by": f"user{i % 7}",
           "workers": [], "attempts": []}
    created = now - timedelta(seconds=i % 86400, milliseconds=i % 1000)
    path = PATHS[status]
    at = [created + timedelta(seconds=k) for k in range(len(path))]
    doc.update(status=status, created_at=created, updated_at=at[-1], history=[
        {"from": None if k == 0 else path[k - 1], "to": to, "at": at[k], "by": "synthetic"}
        for k, to in enumerate(path)])
    if "running" in path:
        worker = f"w{i % 4}"
        attempt = {"id": new_id(), "number": 1, "worker": worker, "state": "running", "started_at": at[1],
                   "lease_until": now + timedelta(seconds=30)}
        doc.update(started_at=at[1], open_slots=0, workers=[worker], attempts=[attempt])
        if status != "running":
            attempt.update(state=status, ended_at=at[-1])
            attempt.update(result=i) if status == "succeeded" else attempt.update(error="synthetic failure")
    if status in ("succeeded", "failed", "cancelled"):
        doc.update(finished_at=at[-1], open_slots=0, result=i if status == "succeeded" else None)
    return doc
