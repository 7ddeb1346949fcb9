"""Actions from the pages: each goes through the application layer (``scheduler.service``, so the
same role checks and FSM verbs as the API) and reports its outcome."""
from __future__ import annotations

from flask import abort, flash, jsonify, redirect, request, url_for

from fsm.errors import SuanwangError
from fsm import rights
from fsm.states import ACTION_TARGETS
from scheduler import credits, service, service_accounts
from web import bp
from web.session import can, local_path, login_required, store, user

MAX_SELECTED = 1000


#: Page action (the actions of ``fsm.states``; which apply to a task is the FSM's call) -> the right
#: it needs (``fsm.rights``); each task then goes through the service.
ACTION_RIGHTS = {"priority": "change_task", "enable": "change_task", "disable": "change_task",
                 "requeue": "change_task", "cancel": "cancel_task_own"}
assert set(ACTION_RIGHTS) == set(ACTION_TARGETS), "every FSM action needs a right"
TASK_ACTIONS = set(ACTION_TARGETS)


def _apply(action: str, task_id: str, priority: int | None, who: dict) -> None:
    s = store()
    if action == "priority":
        service.patch_task(s, task_id, {"priority": priority}, who)
    elif action in ("enable", "disable"):
        service.patch_task(s, task_id, {"is_enabled": action == "enable"}, who)
    elif action == "cancel":
        service.cancel_task(s, task_id, who)
    else:
        service.requeue_task(s, task_id, who)


@bp.post("/actions/tasks")
@login_required()
def task_action():
    """Apply one action to the selected tasks, with the API's rights; answers per-task outcomes."""
    action = request.form.get("action", "")
    ids = request.form.getlist("ids") or [i for i in request.form.get("ids_csv", "").split(",") if i]
    if action not in TASK_ACTIONS or not ids or len(ids) > MAX_SELECTED:
        abort(400, description=f"action must be one of {sorted(TASK_ACTIONS)} with 1-{MAX_SELECTED} task ids")
    if not can(ACTION_RIGHTS[action]):
        abort(403, description=f"{rights.RIGHTS[ACTION_RIGHTS[action]][1]} needs the "
                               f"{rights.role_of(ACTION_RIGHTS[action])} role or above")
    priority = None
    if action == "priority":
        try:
            priority = int(request.form.get("value", ""))
        except ValueError:
            abort(400, description=f"priority must be an integer, got {request.form.get('value')!r}")
    who = user()
    results = []
    for task_id in ids:
        try:
            _apply(action, task_id, priority, who)
            results.append({"id": task_id, "ok": True})
        except SuanwangError as exc:
            results.append({"id": task_id, "ok": False, "error": exc.message})
    done = sum(r["ok"] for r in results)
    if request.form.get("next"):  # a plain form (the task page): flash the outcome and go back
        refused = "; ".join(r["error"] for r in results if not r["ok"])
        flash(f"{action}: {done} done" + (f", refused: {refused}" if refused else ""),
              "warning" if refused else "success")
        return redirect(local_path(request.form["next"], url_for("web.tasks")))
    return jsonify({"action": action, "done": done, "failed": len(results) - done, "results": results})


@bp.post("/actions/workers/<name>/<state>")
@login_required("manage_workers")
def worker_action(name, state):
    """Drain a worker (it finishes what it runs and claims nothing more) or put it back online."""
    if state not in ("drain", "resume"):
        abort(400, description="drain or resume")
    try:
        doc = service.drain_worker(store(), name, user(), draining=state == "drain")
    except SuanwangError as exc:
        flash(f"worker {name}: {exc.message}", "danger")
    else:
        flash(f"worker {name} is now {doc['state']}", "success")
    return redirect(local_path(request.form.get("next", ""), url_for("web.workers")))


@bp.post("/actions/users")
@login_required("manage_users")
def user_add():
    """Add a user (a form on the users page); the outcome is flashed there."""
    form = request.form
    try:
        store().users.add(form.get("name", "").strip(), form.get("role", ""), form.get("password") or None)
    except SuanwangError as exc:
        flash(f"user not added: {exc.message}", "danger")
    else:
        flash(f"user {form.get('name', '').strip()} added as {form.get('role')}", "success")
    return redirect(url_for("web.users"))


@bp.post("/actions/users/<name>/remove")
@login_required("manage_users")
def user_remove(name):
    if name == user()["_id"]:
        flash("you cannot remove yourself", "warning")
        return redirect(url_for("web.users"))
    try:
        store().users.remove(name)
    except SuanwangError as exc:
        flash(exc.message, "danger")
    else:
        flash(f"user {name} removed", "success")
    return redirect(url_for("web.users"))


@bp.post("/actions/users/<name>/password")
@login_required("manage_users")
def user_password(name):
    try:  # through the use case: audited, and the user's web sessions end
        service_accounts.patch_user(store(), name, {"password": request.form.get("password", "")}, user())
    except SuanwangError as exc:
        flash(f"password not changed: {exc.message}", "danger")
    else:
        flash(f"password of {name} changed", "success")
    return redirect(url_for("web.users"))



@bp.post("/actions/users/<name>/credits")
@login_required("manage_credits")
def user_credits(name):
    """Top up a user's credits (the users page's form), through the use case: validated and audited."""
    raw = request.form.get("amount", "").strip()
    try:
        value = float(raw)
    except ValueError:
        flash(f"credits not changed: the amount must be a number, got {raw!r}", "danger")
        return redirect(url_for("web.users"))
    try:
        done = credits.top_up(store(), "user", name, {"amount": value, "note": request.form.get("note") or None},
                              user())
    except SuanwangError as exc:
        flash(f"credits not changed: {exc.message}", "danger")
    else:
        flash(f"{name}: {done['entry']['amount']:+g} credits, balance {done['balance']:g}", "success")
    return redirect(url_for("web.users"))
