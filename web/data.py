"""JSON endpoints behind the pages: the tasks table (server-side) and the worker charts."""
from __future__ import annotations

from datetime import datetime, timezone

from flask import abort, jsonify, request

from fsm.states import actions_allowed
from scheduler import service_views
from web import bp
from web.session import can, login_required, store, user
from web.tables import BadRequest, parse_tasks


@bp.get("/data/tasks")
@login_required()
def tasks_table():
    try:
        table = parse_tasks(request.args, None if can("super") else user()["_id"])
    except BadRequest as exc:
        abort(400, description=str(exc))
    docs, filtered, total = service_views.tasks_table(store(), user(), table.query, sort=table.sort, skip=table.skip,
                                                      limit=table.limit)
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
    samples = service_views.worker_samples(store(), user(), name, _hours_arg(lowest=0.1))
    points = [{"at": r["at"].isoformat(), "cpu": _round(r["cpu"]), "mem": _round(r["mem"]),
               "load": _round(r["load"]), "gpu": _round(r["gpu"]), "gpu_temp": _round(r["gpu_temp"])}
              for r in samples["rows"]]
    return jsonify({"worker": name, "bin_minutes": samples["bin_minutes"], "points": points})


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
    chart = service_views.throughput(store(), user(), _hours_arg(lowest=1.0))
    points = [{"at": datetime.fromtimestamp(t, timezone.utc).isoformat(), **counts} for t, counts in chart["buckets"]]
    return jsonify({"bin_minutes": chart["bin_minutes"], "points": points})
