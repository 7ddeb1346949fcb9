"""The HTML pages."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from flask import abort, flash, g, redirect, render_template, request, session, url_for
from flask_wtf.csrf import generate_csrf

from fsm.errors import NotFound, TaskNotFound, Unauthorized
from fsm.states import Status
from fsm.store import server_now
from fsm.store.users import ROLES
from web import bp
from web.session import can, local_path, login_required, store, user

VENDOR = Path(__file__).parent / "static" / "vendor"


@bp.app_context_processor
def page_context():
    return {"me": user(), "can": can, "csrf_token": generate_csrf,
            "assets_missing": not (VENDOR / ".installed").exists()}


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
    session.clear()
    session["user"] = who["_id"]
    session.permanent = True
    return redirect(local_path(request.form.get("next", ""), url_for("web.portal")))


@bp.post("/logout")
def logout():
    session.clear()
    return redirect(url_for("web.login"))


@bp.get("/")
@login_required()
def portal():
    """Queue depth, throughput and the machines at a glance."""
    s = store()
    # one COUNT_SCAN of the status_created index per status, never a collection scan
    counts = {status.value: s.db.tasks.count_documents({"status": status.value}) for status in Status}
    now = server_now(s.db)
    finished = s.db.tasks.count_documents({"finished_at": {"$gte": now - timedelta(minutes=5)}})
    oldest = s.db.tasks.find_one({"status": "queued"}, {"created_at": 1}, sort=[("created_at", 1)])
    workers = s.workers.list()
    return render_template("portal.html", counts=counts, throughput=finished / 5.0, workers=workers,
                           oldest_age=(now - oldest["created_at"]).total_seconds() if oldest else 0)


@bp.get("/tasks")
@login_required()
def tasks():
    return render_template("tasks.html", statuses=[s.value for s in Status], args=request.args)


@bp.get("/tasks/<task_id>")
@login_required()
def task(task_id):
    try:
        doc = store().tasks.get(task_id)
    except TaskNotFound:
        abort(404)
    if not can("read_task_any") and doc.get("submitted_by") != user()["_id"]:
        abort(403)
    return render_template("task.html", task=doc)


@bp.get("/workers")
@login_required()
def workers():
    return render_template("workers.html", workers=store().workers.list(), running=running_by_worker())


def running_by_worker(name: str | None = None, limit: int = 500) -> dict[str, list[dict]]:
    """The running tasks, per worker that runs an attempt of them (the lease index serves it)."""
    match: dict = {"state": "running"} if name is None else {"state": "running", "worker": name}
    docs = store().db.tasks.find({"status": "running", "attempts": {"$elemMatch": match}},
                                 {"function": 1, "version": 1, "attempts.worker": 1, "attempts.state": 1,
                                  "attempts.started_at": 1}).limit(limit)
    by_worker: dict[str, list[dict]] = {}
    for doc in docs:
        for attempt in doc.get("attempts", []):
            if attempt.get("state") == "running" and (name is None or attempt.get("worker") == name):
                by_worker.setdefault(attempt["worker"], []).append(
                    {"_id": doc["_id"], "function": doc["function"], "started_at": attempt.get("started_at")})
    return by_worker


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
    query = {} if can("super") else {"public": True}
    docs = list(store().db.functions.find(query, {"content": 0}).sort([("code", 1), ("create_time", -1)]))
    from registry.builtins import BUILTINS

    builtins = [{"code": name, "doc": (f.__doc__ or "").strip()} for name, f in sorted(BUILTINS.items())]
    return render_template("functions.html", functions=docs, builtins=builtins)


@bp.get("/functions/<code>/<version>")
@login_required()
def function(code, version):
    doc = store().db.functions.find_one({"code": code, "version": version})
    if doc is None or (not doc.get("public") and not can("super")):
        abort(404)
    return render_template("function.html", fn=doc)


@bp.get("/schedules")
@login_required()
def schedules():
    """Schedule definitions (everyone's for super-users, else one's own) and each one's latest run."""
    db = store().db
    query = {} if can("super") else {"owner": user()["_id"]}
    docs = list(db.schedules.find(query).sort("_id", 1).limit(500))
    for doc in docs:  # the schedule_runs index answers each with one key
        doc["last_run"] = db.tasks.find_one({"schedule_id": doc["_id"]}, {"status": 1, "scheduled_for": 1},
                                            sort=[("scheduled_for", -1)])
    return render_template("schedules.html", schedules=docs)


@bp.get("/users")
@login_required("manage_users")
def users():
    users = list(store().db.users.find({}, {"role": 1, "groups": 1, "created_at": 1,
                                             "has_password": {"$toBool": "$password_hash"}}).sort("_id", 1))
    return render_template("users.html", users=users, roles=ROLES)


@bp.app_template_filter("ago")
def ago(when):
    if not when:
        return "-"
    if "web_now" not in g:  # one clock reading per request, MongoDB's (the clock that wrote last_seen)
        g.web_now = server_now(store().db)
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
