"""Actions from the pages: each goes through the store's verbs (the FSM) and reports its outcome."""
from __future__ import annotations

from flask import abort, jsonify, request

from fsm.errors import SuanwangError
from web import bp
from web.session import can, check_csrf, login_required, store, user

TASK_ACTIONS = {"priority", "enable", "disable", "cancel", "requeue"}
MAX_SELECTED = 1000


@bp.post("/actions/tasks")
@login_required()
def task_action():
    """Apply one action to the selected tasks; answers per-task outcomes."""
    check_csrf()
    if not can("super"):
        abort(403, description="acting on tasks needs the super role")
    action = request.form.get("action", "")
    ids = request.form.getlist("ids") or [i for i in request.form.get("ids_csv", "").split(",") if i]
    if action not in TASK_ACTIONS or not ids or len(ids) > MAX_SELECTED:
        abort(400, description=f"action must be one of {sorted(TASK_ACTIONS)} with 1-{MAX_SELECTED} task ids")
    tasks = store().tasks
    by = user()["_id"]
    results = []
    for task_id in ids:
        try:
            if action == "priority":
                value = request.form.get("value", "")
                try:
                    priority = int(value)
                except ValueError:
                    abort(400, description=f"priority must be an integer, got {value!r}")
                tasks.update_fields(task_id, {"priority": priority}, by)
            elif action in ("enable", "disable"):
                tasks.update_fields(task_id, {"is_enabled": action == "enable"}, by)
            elif action == "cancel":
                tasks.cancel(task_id, by)
            else:
                tasks.requeue(task_id, by)
            results.append({"id": task_id, "ok": True})
        except SuanwangError as exc:
            results.append({"id": task_id, "ok": False, "error": exc.message})
    if any(r["ok"] for r in results):
        store().wakeups.signal()
    done = sum(r["ok"] for r in results)
    return jsonify({"action": action, "done": done, "failed": len(results) - done, "results": results})


@bp.post("/actions/workers/<name>/<state>")
@login_required("admin")
def worker_action(name, state):
    check_csrf()
    if state not in ("drain", "resume"):
        abort(400, description="drain or resume")
    try:
        doc = store().workers.set_state(name, "draining" if state == "drain" else "online")
    except SuanwangError as exc:
        return jsonify({"ok": False, "error": exc.message}), exc.http_status
    return jsonify({"ok": True, "worker": name, "state": doc["state"]})
