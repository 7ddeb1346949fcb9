"""HTTP routes of schedules (mounted under /api/v1; the verbs live in ``scheduler.schedules``).

    GET    /schedules                     the caller's schedules (super, admin: all) (?paused=, ?function=)
    POST   /schedules                     create (business and above)                        201
    GET    /schedules/<id>                one schedule, with its next run time and recent tasks
    PATCH  /schedules/<id>                change trigger, timezone, task, misfire_grace_s, coalesce, paused
    DELETE /schedules/<id>                remove it (its tasks stay)
    POST   /schedules/<id>/pause|resume

A body names its trigger as ``{"cron": "*/5 * * * *"}``, ``{"interval_s": 60}``,
``{"run_at": "2026-12-01T09:00:00"}`` (each with an optional ``"timezone"``) or a full
``{"trigger": {"type": "cron", "second": "*/10", ...}}``, plus ``"task"``: a task body.
"""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from scheduler import schedules
from scheduler.api import body, priority_caps
from scheduler.service import check_priority
from scheduler.auth import current_user, store
from scheduler.query_args import query_params

bp = Blueprint("schedules", __name__)

#: Summaries for the OpenAPI document (``scheduler.openapi.SUMMARIES``).
SUMMARIES = {
    ("get", "/schedules"): "Schedules (yours; super and admin: all)",
    ("post", "/schedules"): "Create a cron, interval or one-off schedule with a task template",
    ("get", "/schedules/{schedule_id}"): "A schedule with its next run time and recent tasks",
    ("patch", "/schedules/{schedule_id}"): "Change a schedule's trigger, task or settings",
    ("delete", "/schedules/{schedule_id}"): "Remove a schedule (its tasks stay)",
    ("post", "/schedules/{schedule_id}/pause"): "Pause a schedule",
    ("post", "/schedules/{schedule_id}/resume"): "Resume a paused schedule",
}


def _check_template_priority(user: dict) -> None:
    """A schedule's tasks may not carry a priority above its owner's cap."""
    payload = body()
    task = payload.get("task") if isinstance(payload, dict) else None
    if isinstance(task, dict):
        check_priority(user, task.get("priority"), priority_caps())


def _now():
    return store().now()


@bp.get("/schedules")
@query_params("paused", "function", "limit", "skip")
def list_schedules():
    page = schedules.list_schedules(store(), current_user(), request.args.to_dict())
    now = _now()
    page["items"] = [schedules.view(d, now) for d in page["items"]]
    return jsonify(page)


@bp.post("/schedules")
def create_schedule():
    user = current_user()
    _check_template_priority(user)
    doc = schedules.create(store(), body(), user)
    return jsonify(schedules.view(doc, _now())), 201


@bp.get("/schedules/<schedule_id>")
def get_schedule(schedule_id):
    doc = schedules.get(store(), schedule_id, current_user())
    out = schedules.view(doc, _now())
    out["recent_tasks"] = [{"id": t["_id"], **{k: v for k, v in t.items() if k != "_id"}}
                           for t in schedules.recent_tasks(store(), schedule_id)]
    return jsonify(out)


@bp.patch("/schedules/<schedule_id>")
def patch_schedule(schedule_id):
    user = current_user()
    _check_template_priority(user)
    return jsonify(schedules.view(schedules.update(store(), schedule_id, body(), user), _now()))


@bp.delete("/schedules/<schedule_id>")
def delete_schedule(schedule_id):
    doc = schedules.remove(store(), schedule_id, current_user())
    return jsonify({"id": doc["_id"], "deleted": True})


@bp.post("/schedules/<schedule_id>/pause")
def pause_schedule(schedule_id):
    return jsonify(schedules.view(schedules.set_paused(store(), schedule_id, True, current_user()), _now()))


@bp.post("/schedules/<schedule_id>/resume")
def resume_schedule(schedule_id):
    return jsonify(schedules.view(schedules.set_paused(store(), schedule_id, False, current_user()), _now()))
