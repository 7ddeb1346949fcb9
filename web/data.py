"""JSON endpoints behind the pages: the tasks table (server-side) and the worker charts."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from flask import abort, jsonify, request

from fsm.states import actions_allowed
from fsm.store import server_now
from web import bp
from web.session import can, login_required, store, user
from web.tables import BadRequest, parse_tasks

ROW_FIELDS = {"function": 1, "version": 1, "status": 1, "priority": 1, "is_enabled": 1, "submitted_by": 1,
              "created_at": 1, "finished_at": 1, "workers": 1, "reason": 1}


@bp.get("/data/tasks")
@login_required()
def tasks_table():
    try:
        table = parse_tasks(request.args, None if can("super") else user()["_id"])
    except BadRequest as exc:
        abort(400, description=str(exc))
    tasks = store().tasks
    docs, filtered = tasks.page(table.query, sort=table.sort, skip=table.skip, limit=table.limit,
                                projection=ROW_FIELDS)
    total = tasks.tasks.estimated_document_count() if can("super") else filtered
    rows = [{"id": d["_id"], "function": d["function"], "version": d.get("version"), "status": d["status"],
             "priority": d["priority"], "is_enabled": d.get("is_enabled", True), "user": d.get("submitted_by"),
             "created_at": d["created_at"].isoformat() if d.get("created_at") else None,
             "workers": ", ".join(d.get("workers") or []), "reason": d.get("reason"),
             "actions": actions_allowed(d["status"])} for d in docs]
    return jsonify({"draw": table.draw, "recordsTotal": total, "recordsFiltered": filtered, "data": rows})


@bp.get("/data/workers/<name>/samples")
@login_required()
def worker_samples(name):
    """CPU, memory and GPU of one worker over the last hours, averaged into at most ~120 points."""
    hours = _hours_arg(lowest=0.1)
    db = store().db
    since = server_now(db) - timedelta(hours=hours)
    bin_minutes = max(1, int(hours * 60 / 120))
    rows = db.worker_samples.aggregate([
        {"$match": {"worker": name, "at": {"$gte": since}}},
        {"$group": {"_id": {"$dateTrunc": {"date": "$at", "unit": "minute", "binSize": bin_minutes}},
                    "cpu": {"$avg": "$cpu"}, "mem": {"$avg": "$mem"}, "load": {"$avg": "$load"},
                    "gpu": {"$avg": {"$avg": "$gpus.util"}}, "gpu_temp": {"$avg": {"$max": "$gpus.temp"}}}},
        {"$sort": {"_id": 1}},
    ])
    points = [{"at": r["_id"].isoformat(), "cpu": _round(r["cpu"]), "mem": _round(r["mem"]),
               "load": _round(r["load"]), "gpu": _round(r["gpu"]), "gpu_temp": _round(r["gpu_temp"])} for r in rows]
    return jsonify({"worker": name, "bin_minutes": bin_minutes, "points": points})


def _hours_arg(lowest: float, highest: float = 48.0, default: float = 6.0) -> float:
    """The ``hours`` query argument, clamped; 400 when it is not a number."""
    try:
        return max(lowest, min(highest, float(request.args.get("hours", default))))
    except ValueError:
        abort(400, description="hours must be a number")


def _round(value):
    return None if value is None else round(value, 1)


@bp.get("/data/throughput")
@login_required()
def throughput():
    """Tasks finished per bucket over the last hours, by final status (the ``finished`` index)."""
    hours = _hours_arg(lowest=1.0)
    db = store().db
    since = server_now(db) - timedelta(hours=hours)
    bin_minutes = next((m for m in (5, 10, 15, 20, 30, 40, 60) if m >= hours * 60 / 72), 60)
    rows = db.tasks.aggregate([
        {"$match": {"finished_at": {"$gte": since}}},
        {"$group": {"_id": {"at": {"$dateTrunc": {"date": "$finished_at", "unit": "minute", "binSize": bin_minutes}},
                            "status": "$status"}, "n": {"$sum": 1}}},
        {"$sort": {"_id.at": 1}},
    ])
    step = bin_minutes * 60
    start = int(since.timestamp())
    first = start // step * step  # $dateTrunc's bins count from 2000-01-01, a multiple of every step here
    buckets: dict[int, dict[str, int]] = {t: {} for t in range(first, start + int(hours * 3600) + 1, step)}
    for row in rows:
        buckets.setdefault(int(row["_id"]["at"].timestamp()), {})[row["_id"]["status"]] = row["n"]
    points = [{"at": datetime.fromtimestamp(t, timezone.utc).isoformat(), **counts}
              for t, counts in sorted(buckets.items())]
    return jsonify({"bin_minutes": bin_minutes, "points": points})
