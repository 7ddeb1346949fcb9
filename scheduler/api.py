"""The HTTP API under /api/v1: parse, authorise, call ``scheduler.service``, answer JSON.

Errors are raised as ``fsm.errors`` and answered by the app as
``{"error": {"code", "message"}}`` (see ``scheduler.app``). ``/healthz``, ``/metrics`` and
``/openapi.json`` need no token (``/metrics`` does when ``ServerConfig.metrics_token`` is set).
"""
from __future__ import annotations

import hmac

from flask import Blueprint, Response, current_app, jsonify, request

from fsm.errors import Unauthorized, ValidationError
from fsm.store.driver import StoreError
from scheduler import service
from scheduler.auth import bearer_token, current_user, public, require, store
from scheduler.query_args import query_params

bp = Blueprint("api", __name__)
#: How long /healthz waits for MongoDB's answer.
HEALTH_TIMEOUT_S = 2.0


class UnsupportedMediaType(ValidationError):
    """The body is not sent as JSON."""

    code, http_status = "unsupported_media_type", 415


def body():
    """The JSON body. Not JSON: 415; malformed JSON: 400 (Flask); too large: 413 (before reading)."""
    if not request.is_json:
        raise UnsupportedMediaType("send a JSON body with 'Content-Type: application/json'")
    return request.get_json()


def task_view(task: dict) -> dict:
    """A task as the API shows it: ``id`` instead of ``_id``, without internal fences."""
    view = {"id": task["_id"], **{k: v for k, v in task.items() if k not in ("_id", "rev")}}
    if "history" in task:
        view.setdefault("attempts", [])
    return view


def worker_view(worker: dict) -> dict:
    return {"name": worker["_id"], **{k: v for k, v in worker.items() if k != "_id"}}


def user_view(user: dict) -> dict:
    return {"name": user["_id"], **{k: v for k, v in user.items() if k not in ("_id", "password_hash", "tokens")}}


def priority_caps() -> dict:
    return current_app.config["SUANWANG"].priority_caps


# --------------------------------------------------------------------- tasks
@bp.post("/tasks")
def publish_tasks():
    user = current_user()
    payload = body()
    docs = service.publish(store(), payload, user, priority_caps())
    if isinstance(payload, list):
        items = [{"id": d["_id"], "status": d["status"], "function": d["function"], "version": d["version"]}
                 for d in docs]
        answer = {"items": items, "total": len(items)}
        warnings = sorted({w for d in docs for w in d.get("warnings", [])})
        if warnings:
            answer["warnings"] = warnings
        return jsonify(answer), 201
    return jsonify(task_view(docs[0])), 201


@bp.get("/tasks")
def list_tasks():
    page = service.list_tasks(store(), current_user(), request.args.to_dict())
    page["items"] = [task_view(t) for t in page["items"]]
    return jsonify(page)


@bp.get("/tasks/<task_id>")
def get_task(task_id):
    return jsonify(task_view(service.get_task(store(), task_id, current_user())))


@bp.get("/tasks/<task_id>/explain")
def explain_task(task_id):
    """Why the task waits: which workers could take it, why the others cannot, what is ahead."""
    from scheduler.service_explain import explain

    return jsonify(explain(store(), task_id, current_user()))


@bp.patch("/tasks/<task_id>")
def patch_task(task_id):
    user = current_user()
    return jsonify(task_view(service.patch_task(store(), task_id, body(), user, priority_caps())))


@bp.post("/tasks/<task_id>/cancel")
def cancel_task(task_id):
    return jsonify(task_view(service.cancel_task(store(), task_id, current_user())))


@bp.post("/tasks/<task_id>/requeue")
def requeue_task(task_id):
    return jsonify(task_view(service.requeue_task(store(), task_id, current_user())))


# ------------------------------------------------------------------- workers
@bp.get("/workers")
def list_workers():
    items = [worker_view(w) for w in service.list_workers(store(), current_user(), request.args.to_dict())]
    return jsonify({"items": items, "total": len(items)})


@bp.get("/workers/<name>")
def get_worker(name):
    return jsonify(worker_view(service.get_worker(store(), name, current_user())))


@bp.post("/workers/<name>/drain")
def drain_worker(name):
    return jsonify(worker_view(service.drain_worker(store(), name, current_user())))


@bp.post("/workers/<name>/resume")
def resume_worker(name):
    return jsonify(worker_view(service.drain_worker(store(), name, current_user(), draining=False)))


# --------------------------------------------------------------- stats, users
@bp.get("/stats")
@query_params()
def stats():
    return jsonify(service.stats(store(), current_user()))


@bp.get("/users")
@query_params()
@require("manage_users")
def list_users():
    users = [user_view(u) for u in service.list_users(store(), current_user())]
    return jsonify({"items": users, "total": len(users)})


@bp.post("/users")
def add_user():
    user = current_user()
    return jsonify(service.add_user(store(), body(), user)), 201


# ----------------------------------------------------------- no token needed
@bp.get("/healthz")
@public
def healthz():
    """No auth: load balancers and ``suanwang up`` ask it. 503 while MongoDB is unreachable."""
    try:
        store().ping(HEALTH_TIMEOUT_S)
    except StoreError as exc:
        return jsonify({"status": "unavailable", "mongodb": str(exc).split(",")[0][:200]}), 503
    return jsonify({"status": "ok", "mongodb": "ok"})


@bp.get("/metrics")
@public
def metrics():
    """Prometheus text format, read from MongoDB at scrape time.

    Open by default (like most exporters); with ``ServerConfig.metrics_token`` set it needs
    that token, or any user's token, as ``Authorization: Bearer``.
    """
    from prometheus_client import CONTENT_TYPE_LATEST

    from scheduler.metrics import render

    wanted = current_app.config["SUANWANG"].metrics_token
    if wanted:
        token = bearer_token()
        if token is None:
            raise Unauthorized("/metrics needs 'Authorization: Bearer <metrics token>'")
        if not hmac.compare_digest(token.encode(), wanted.encode()):
            current_user()  # any valid user token will do; raises Unauthorized otherwise
    return Response(render(store()), content_type=CONTENT_TYPE_LATEST)


@bp.get("/openapi.json")
@public
def openapi():
    from scheduler.openapi import document

    return jsonify(document())
