"""What the web pages show, as use cases with their role checks; like ``scheduler.service``, no Flask.

Each function takes the store and the calling user and reads through the store's named read
models, so a page shows exactly what the API and ``/metrics`` count (e.g. the portal's queue
age is ``TaskReads.queue_age_s``, the same as ``GET /api/v1/stats``).
"""
from __future__ import annotations

from datetime import datetime, timedelta

from fsm.errors import Forbidden, FunctionNotFound, NotFound
from fsm.store import Store
from fsm.store.ledger import user_account
from fsm.store.users import has_role
from registry.builtins import BUILTINS
from scheduler import schedules, service_services
from scheduler.service import sees_all

#: The portal's throughput is averaged over this many minutes.
THROUGHPUT_MINUTES = 5
#: Fields of a tasks-table row.
ROW_FIELDS = {"function": 1, "version": 1, "status": 1, "priority": 1, "is_enabled": 1, "submitted_by": 1,
              "created_at": 1, "finished_at": 1, "workers": 1, "reason": 1}


def portal(store: Store, user: dict) -> dict:
    """Counts by status, throughput per minute, the queue's age and the workers."""
    now = store.now()
    counts = store.reads.status_counts()
    finished = store.reads.finished_since(now - timedelta(minutes=THROUGHPUT_MINUTES))
    return {"counts": counts, "throughput": finished / THROUGHPUT_MINUTES, "oldest_age": store.reads.queue_age_s(now),
            "workers": store.workers.list()}


def running_by_worker(store: Store, user: dict, worker: str | None = None, limit: int = 500) -> dict[str, list]:
    return store.reads.running_by_worker(worker, limit)


def tasks_table(store: Store, user: dict, query: dict, *, sort: list, skip: int, limit: int) -> tuple[list, int, int]:
    """One page of task rows, the number matching and the number in total (own tasks for non-super)."""
    if not sees_all(user):
        query = {**query, "submitted_by": user["_id"]}
    docs, filtered = store.tasks.page(query, sort=sort, skip=skip, limit=limit, projection=ROW_FIELDS)
    total = store.tasks.estimated_count() if sees_all(user) else filtered
    return docs, filtered, total


def functions(store: Store, user: dict, partition: str | None = None) -> tuple[list[dict], list[dict]]:
    """Registered versions (public ones only below super) and the built-ins (in ``public``), of every
    partition open to ``user`` or of ``partition`` alone (404 when it is closed to them)."""
    open_ = service_services.open_partitions(store, user)
    if partition is not None:
        if partition not in nav_partitions(store, user):
            raise NotFound(f"no partition {partition!r}")
        open_ = frozenset({partition})
    docs, _ = store.functions.list(public_only=not has_role(user, "super"), partitions=open_)
    builtins = [] if partition not in (None, "public") else [
        {"code": name, "doc": (f.__doc__ or "").strip()} for name, f in sorted(BUILTINS.items())]
    return docs, builtins


def nav_partitions(store: Store, user: dict) -> list[str]:
    """The partitions the navigation offers ``user``: those open to them (an admin: every one in use)."""
    open_ = service_services.open_partitions(store, user)
    if open_ is None:
        return sorted(set(store.functions.partitions()) | {g2 for g in store.groups.list()
                                                              for g2 in g.get("partitions") or []})
    return sorted(open_)


def function(store: Store, user: dict, code: str, version: str) -> dict:
    """One version with its source; a private one is unknown below super."""
    doc = store.functions.find(code, version)
    if doc is None or (not doc.get("public") and not has_role(user, "super")):
        raise FunctionNotFound(f"function {code!r} has no version {version!r}")
    service_services.check_function_open(store, user, doc)  # a closed partition's page is not shown
    return doc


def schedules_with_last_run(store: Store, user: dict) -> list[dict]:
    """The schedules the user may see, each with ``last_run`` (its latest firing, or None)."""
    docs = schedules.list_schedules(store, user, {"limit": schedules.MAX_PAGE})["items"]
    for doc in docs:
        doc["last_run"] = store.reads.last_run(doc["_id"])
    return docs


def users(store: Store, user: dict) -> list[dict]:
    """Every user for the users page, each with its credit ``balance`` (one read for all)."""
    if not has_role(user, "admin"):
        raise Forbidden("managing users needs the admin role")
    docs = store.users.listing()
    balances = store.ledger.balances([user_account(d["_id"]) for d in docs])
    for doc in docs:
        doc["balance"] = balances[user_account(doc["_id"])]
    return docs


def worker_samples(store: Store, user: dict, worker: str, hours: float) -> dict:
    """A worker's CPU, memory and GPU over the last ``hours``, in at most ~120 points."""
    bin_minutes = max(1, int(hours * 60 / 120))
    rows = store.reads.worker_samples(worker, store.now() - timedelta(hours=hours), bin_minutes)
    return {"bin_minutes": bin_minutes, "rows": rows}


def throughput(store: Store, user: dict, hours: float) -> dict:
    """Tasks finished per bin over the last ``hours`` (about 72 bins), by final status; empty bins included."""
    since = store.now() - timedelta(hours=hours)
    bin_minutes = next((m for m in (5, 10, 15, 20, 30, 40, 60) if m >= hours * 60 / 72), 60)
    step = bin_minutes * 60
    start = int(since.timestamp())
    first = start // step * step  # $dateTrunc's bins count from 2000-01-01, a multiple of every step here
    buckets: dict[int, dict[str, int]] = {t: {} for t in range(first, start + int(hours * 3600) + 1, step)}
    for row in store.reads.finished_histogram(since, bin_minutes):
        buckets.setdefault(int(row["at"].timestamp()), {})[row["status"]] = row["n"]
    return {"bin_minutes": bin_minutes, "buckets": sorted(buckets.items())}


def server_now(store: Store) -> datetime:
    return store.now()
