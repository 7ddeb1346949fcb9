"""The HTML pages."""
from __future__ import annotations

from pathlib import Path

from flask import abort, flash, g, redirect, render_template, request, url_for
from flask_wtf.csrf import generate_csrf

from fsm.errors import Forbidden, NotFound, TaskNotFound, Unauthorized
from fsm.states import Status
from fsm.store.users import ROLES
from scheduler import auth, service, service_accounts, service_explain, service_flow, service_views
from web import bp
from web.session import can, local_path, login_required, store, user

VENDOR = Path(__file__).parent / "static" / "vendor"


@bp.app_context_processor
def page_context():
    me = user()
    return {"me": me, "can": can, "csrf_token": generate_csrf,
            "assets_missing": not (VENDOR / ".installed").exists(),
            # the Functions menu: only the partitions open to the viewer
            "partitions": (lambda: service_views.nav_partitions(store(), me)) if me else (lambda: [])}


@bp.get("/login")
def login():
    return render_template("login.html", next=request.args.get("next", "/"))


@bp.post("/login")
def login_post():
    try:
        who = store().users.by_password(request.form.get("name", ""), request.form.get("password", ""))
    except Unauthorized as exc:
        flash(exc.message, "danger")
        return render_template("login.html", next=request.form.get("next", "/"), name=request.form.get("name", "")), 401
    auth.start_session(who["_id"])
    return redirect(local_path(request.form.get("next", ""), url_for("web.portal")))


@bp.post("/logout")
def logout():
    auth.end_session()
    return redirect(url_for("web.login"))


@bp.get("/")
@login_required()
def portal():
    """Queue depth, throughput and the machines at a glance."""
    return render_template("portal.html", **service_views.portal(store(), user()))


@bp.get("/tasks")
@login_required()
def tasks():
    return render_template("tasks.html", statuses=[s.value for s in Status], args=request.args)


@bp.get("/tasks/<task_id>")
@login_required()
def task(task_id):
    try:
        doc = service.get_task(store(), task_id, user())
    except TaskNotFound:
        abort(404)
    except Forbidden:
        abort(403)
    waiting = service_explain.explain(store(), task_id, user()) if doc["status"] in ("pending", "queued") else None
    return render_template("task.html", task=doc, flow=service_flow.task_workflow(store(), doc, user()),
                           waiting=waiting)


@bp.get("/workers")
@login_required()
def workers():
    return render_template("workers.html", workers=store().workers.list(), running=running_by_worker())


def running_by_worker(name: str | None = None, limit: int = 500) -> dict[str, list[dict]]:
    """The running tasks, per worker that runs an attempt of them (the lease index serves it)."""
    return service_views.running_by_worker(store(), user(), name, limit)


@bp.get("/workers/<name>")
@login_required()
def worker(name):
    try:
        doc = store().workers.get(name)
    except NotFound:
        abort(404)
    running = running_by_worker(name, limit=50).get(name, [])
    return render_template("worker.html", worker=doc, running=running)


@bp.get("/functions")
@login_required()
def functions():
    partition = request.args.get("partition") or None
    try:
        docs, builtins = service_views.functions(store(), user(), partition)
    except NotFound:
        abort(404)
    return render_template("functions.html", functions=docs, builtins=builtins, partition=partition)


@bp.get("/functions/<code>/<version>")
@login_required()
def function(code, version):
    try:
        doc = service_views.function(store(), user(), code, version)
    except NotFound:
        abort(404)
    return render_template("function.html", fn=doc)


@bp.get("/schedules")
@login_required()
def schedules():
    """Schedule definitions (everyone's for super-users, else one's own) and each one's latest run."""
    return render_template("schedules.html", schedules=service_views.schedules_with_last_run(store(), user()))


@bp.get("/users")
@login_required("manage_users")
def users():
    return render_template("users.html", users=service_views.users(store(), user()), roles=ROLES)


@bp.get("/audit")
@login_required("read_audit")
def audit():
    """The audit trail (admin): who changed roles, groups, passwords, tokens, sessions, services, credits."""
    args = {k: v for k, v in request.args.items() if k in ("actor", "action", "target", "skip") and v}
    page = service_accounts.list_audit(store(), user(), args)
    return render_template("audit.html", page=page, args=args)


@bp.app_template_filter("ago")
def ago(when):
    if not when:
        return "-"
    if "web_now" not in g:  # one clock reading per request, MongoDB's (the clock that wrote last_seen)
        g.web_now = service_views.server_now(store())
    seconds = (g.web_now - when).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{max(0, seconds):.0f}s ago"


@bp.app_template_filter("when")
def when(value):
    """A stored UTC datetime, to the second."""
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if hasattr(value, "strftime") else (value or "-")


@bp.app_template_filter("gb")
def gb(value):
    return f"{value / 1e9:.1f} GB" if isinstance(value, (int, float)) else "-"
