"""The HTTP API under /api/v1: parse, authorise, call ``scheduler.service``, answer JSON."""
from __future__ import annotations

from flask import Blueprint, Response, jsonify, request
from pymongo.errors import PyMongoError

from fsm.errors import ValidationError
from scheduler import service
from scheduler.auth import current_user, require, store

bp = Blueprint("api", __name__)


def body():
    """The JSON body; malformed JSON is a 400 (raised by Flask's ``get_json``)."""
    if not request.is_json:
        raise ValidationError("send a JSON body with 'Content-Type: application/json'")
    return request.get_json()


def task_view(task: dict) -> dict:
    """A task as the API shows it: ``id`` instead of ``_id``; its attempts included."""
    view = {"id": task["_id"], **{k: v for k, v in task.items() if k not in ("_id", "rev")}}
    view.setdefault("attempts", [])
    return view


@bp.post("/tasks")
def publish_tasks():
    docs = service.publish(store(), body(), current_user())
    if isinstance(request.get_json(), list):
        return jsonify({"items": [{"id": d["_id"], "status": d["status"], "version": d["version"]} for d in docs],
                        "total": len(docs)}), 201
    return jsonify(task_view(docs[0])), 201


@bp.get("/tasks")
def list_tasks():
    page = service.list_tasks(store(), current_user(), request.args.to_dict())
    page["items"] = [task_view(t) for t in page["items"]]
    return jsonify(page)


@bp.get("/tasks/<task_id>")
def get_task(task_id):
    return jsonify(task_view(service.get_task(store(), task_id, current_user())))


@bp.patch("/tasks/<task_id>")
def patch_task(task_id):
    return jsonify(task_view(service.patch_task(store(), task_id, body(), current_user())))


@bp.post("/tasks/<task_id>/cancel")
def cancel_task(task_id):
    return jsonify(task_view(service.cancel_task(store(), task_id, current_user())))


@bp.post("/tasks/<task_id>/requeue")
def requeue_task(task_id):
    return jsonify(task_view(service.requeue_task(store(), task_id, current_user())))


def worker_view(worker: dict) -> dict:
    return {"name": worker["_id"], **{k: v for k, v in worker.items() if k != "_id"}}


@bp.get("/workers")
@require("general")
def list_workers():
    items = [worker_view(w) for w in service.list_workers(store())]
    return jsonify({"items": items, "total": len(items)})


@bp.get("/workers/<name>")
@require("general")
def get_worker(name):
    return jsonify(worker_view(store().workers.get(name)))


@bp.post("/workers/<name>/drain")
def drain_worker(name):
    return jsonify(worker_view(service.drain_worker(store(), name, current_user())))


@bp.post("/workers/<name>/resume")
def resume_worker(name):
    return jsonify(worker_view(service.drain_worker(store(), name, current_user(), draining=False)))


@bp.get("/stats")
@require("general")
def stats():
    return jsonify(service.stats(store()))


@bp.get("/users")
@require("admin")
def list_users():
    users = [{"name": u["_id"], **{k: v for k, v in u.items() if k != "_id"}} for u in store().users.list()]
    return jsonify({"items": users, "total": len(users)})


@bp.post("/users")
def add_user():
    return jsonify(service.add_user(store(), body(), current_user())), 201


@bp.get("/healthz")
def healthz():
    """No auth: load balancers and `suanwang up` ask it. 503 while MongoDB is away."""
    try:
        store().db.command("ping")
    except PyMongoError as exc:
        return jsonify({"status": "unavailable", "mongodb": str(exc).split(",")[0][:200]}), 503
    return jsonify({"status": "ok", "mongodb": "ok"})


@bp.get("/metrics")
def metrics():
    """Prometheus text format, read from MongoDB at scrape time (no token needed, like most exporters)."""
    from prometheus_client import CONTENT_TYPE_LATEST

    from scheduler.metrics import render

    return Response(render(store()), content_type=CONTENT_TYPE_LATEST)


@bp.get("/openapi.json")
def openapi():
    from scheduler.openapi import document

    return jsonify(document())
