"""Resource statistics: per worker and per function, computed by one store aggregation over
``tasks.attempts`` (``fsm.store.resource_stats``), and the service map (which online machines serve each function).

A *run* is an ended attempt (succeeded, failed, timed_out, crashed or lost); cancelled
attempts are counted apart and left out of the success rate and durations, and released ones
(claimed ahead, handed back before they started) are not counted at all. Durations are
``ended_at - started_at`` in seconds; ``p95`` is the nearest-rank 95th percentile (the
⌈0.95·n⌉-th smallest), computed with ``$sortArray`` because ``$percentile`` needs MongoDB 7.

A function is *served* by an online worker that has one of its versions checked out
(``versions_ready``) or ended an attempt of it within ``recent_s``.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from fsm.store import Store
from fsm.store.resource_stats import ENDED_STATES, RUN_STATES  # noqa: F401  (defined with the pipeline)
from fsm.store.workers import ONLINE

#: Attempts older than this are left out by default (0: all of them).
DEFAULT_WINDOW_S = 7 * 86400
#: A worker that ran a function this recently serves it.
DEFAULT_RECENT_S = 3600


def _round(row: dict) -> dict:
    for name in ("success_rate", "mean_s", "p95_s", "max_s"):
        if isinstance(row.get(name), float):
            row[name] = round(row[name], 4)
    return row


def by_worker(store: Store, since: datetime | None = None) -> list[dict]:
    """One row per worker: runs, succeeded, failed, cancelled, success_rate, mean_s, p95_s,
    max_s, functions (that it ran), last_ended_at."""
    rows = store.resource_stats.by("worker", since)
    return [_round({"worker": r.pop("_id"), **{("functions" if k == "others" else k): v for k, v in r.items()}})
            for r in rows]


def by_function(store: Store, since: datetime | None = None) -> list[dict]:
    """One row per function: the same figures, and ``workers`` (that ran it)."""
    rows = store.resource_stats.by("function", since)
    out = []
    for r in rows:
        r["others"] = sorted(w for w in r["others"] if w)
        out.append(_round({"function": r.pop("_id"), **{("workers" if k == "others" else k): v for k, v in r.items()}}))
    return out


def service_map(store: Store, now: datetime | None = None, recent_s: float = DEFAULT_RECENT_S) -> dict[str, list[str]]:
    """``{function: [online worker names]}``: workers with a version ready or a recent run of it."""
    now = now or store.now()
    online = {w["_id"]: w for w in store.workers.list({"state": ONLINE})}
    served: dict[str, set[str]] = {}
    for name, w in online.items():
        for pair in w.get("versions_ready") or []:
            if isinstance(pair, (list, tuple)) and len(pair) == 2:
                served.setdefault(str(pair[0]), set()).add(name)
    if online:
        recent = store.reads.recent_runs_by_function(sorted(online), now - timedelta(seconds=recent_s))
        for function, workers in recent.items():
            served.setdefault(function, set()).update(workers)
    return {fn: sorted(names) for fn, names in sorted(served.items())}


def resource_stats(store: Store, *, window_s: float = DEFAULT_WINDOW_S, recent_s: float = DEFAULT_RECENT_S,
                   now: datetime | None = None) -> dict:
    """Everything ``GET /api/v1/stats/resources`` answers: ``workers``, ``functions``, ``service_map``.

    Each worker row also carries the worker's state, host and latest resources (cpu, mem,
    disk, gpus) when the worker is known.
    """
    now = now or store.now()
    since = now - timedelta(seconds=window_s) if window_s else None
    workers = by_worker(store, since)
    known = {w["_id"]: w for w in store.workers.list()}
    listed = {row["worker"] for row in workers}
    workers += [{"worker": name, "runs": 0, "succeeded": 0, "failed": 0, "cancelled": 0, "success_rate": None,
                 "mean_s": None, "p95_s": None, "max_s": None, "functions": [], "last_ended_at": None}
                for name in sorted(set(known) - listed)]
    for row in workers:
        info = known.get(row["worker"], {})
        row.update(state=info.get("state"), host=info.get("host"), last_seen=info.get("last_seen"),
                   cpu_percent=(info.get("cpu") or {}).get("percent"), mem_percent=(info.get("mem") or {}).get("percent"),
                   disk_percent=(info.get("disk") or {}).get("percent"), gpus=info.get("gpus") or [],
                   quarantined=info.get("quarantined") or [])
        row["functions"] = sorted(f for f in row.get("functions") or [] if f)
    workers.sort(key=lambda r: r["worker"] or "")
    return {"window_s": window_s, "since": since, "server_time": now, "workers": workers,
            "functions": by_function(store, since), "service_map": service_map(store, now, recent_s)}
