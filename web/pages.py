"""The HTML pages."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from flask import abort, flash, redirect, render_template, request, session, url_for
from flask_wtf.csrf import generate_csrf

from fsm.errors import NotFound, TaskNotFound, Unauthorized
from fsm.states import Status
from fsm.store import server_now
from web import bp
from web.session import can, check_csrf, login_required, store, user

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
    check_csrf()
    try:
        who = store().users.by_password(request.form.get("name", ""), request.form.get("password", ""))
    except Unauthorized as exc:
        flash(exc.message, "danger")
        return render_template("login.html", next=request.form.get("next", "/")), 401
    session.clear()
    session["user"] = who["_id"]
    session.permanent = True
    target = request.form.get("next") or "/"
    return redirect(target if target.startswith("/") and not target.startswith("//") else "/")


@bp.post("/logout")
def logout():
    check_csrf()
    session.clear()
    return redirect(url_for("web.login"))


@bp.get("/")
@login_required()
def portal():
    s = store()
    counts = s.tasks.counts_by_status()
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
    if not can("super") and doc.get("submitted_by") != user()["_id"]:
        abort(403)
    return render_template("task.html", task=doc)


@bp.get("/workers")
@login_required()
def workers():
    return render_template("workers.html", workers=store().workers.list())


@bp.get("/workers/<name>")
@login_required()
def worker(name):
    try:
        doc = store().workers.get(name)
    except NotFound:
        abort(404)
    running = list(store().db.tasks.find({"status": "running", "attempts": {"$elemMatch": {
        "worker": name, "state": "running"}}}, {"function": 1, "version": 1, "started_at": 1}).limit(50))
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
    return render_template("schedules.html", schedules=list(store().db.schedules.find().sort("_id", 1).limit(500)))


@bp.get("/users")
@login_required("admin")
def users():
    return render_template("users.html", users=store().users.list())


@bp.app_template_filter("ago")
def ago(when):
    if not when:
        return "-"
    seconds = (server_now(store().db) - when).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{max(0, seconds):.0f}s ago"


@bp.app_template_filter("gb")
def gb(value):
    return "-" if value is None else f"{value / 1e9:.1f} GB"
