"""HTTP routes of groups and services (mounted under /api/v1; the verbs live in ``scheduler.service_services``).

    POST   /groups                     {"name", "partitions"} (admin)                     201
    GET    /groups, /groups/<name>     (admin; one group shows its ``credits``)
    PATCH  /groups/<name>              {"partitions"} (admin)
    DELETE /groups/<name>              (admin)
    POST   /services                   {"name", "function", "version", "partition", "price"} (super, admin)  201
    GET    /services                   the services whose partition the caller may use
    GET    /services/<name>            deployed and previous version, history (404 when closed)
    POST   /services/<name>/deploy     {"version"}: switch atomically; the replaced one stays as previous
    POST   /services/<name>/rollback   back to the previous version (409 if none)
    POST   /services/<name>/undeploy   new calls answer 409; running tasks are left alone
"""
from __future__ import annotations

from flask import Blueprint, jsonify

from scheduler import credits
from scheduler import service_services as svc
from scheduler.api import body
from scheduler.auth import current_user, store

bp = Blueprint("services", __name__)

#: Summaries for the OpenAPI document (``scheduler.openapi.SUMMARIES``).
SUMMARIES = {
    ("post", "/groups"): "Create a group granting partitions (admin)",
    ("get", "/groups"): "Groups and their partitions (admin)",
    ("get", "/groups/{name}"): "One group with its credits (admin)",
    ("patch", "/groups/{name}"): "Change a group's partitions (admin)",
    ("delete", "/groups/{name}"): "Remove a group (admin)",
    ("post", "/services"): "Create a service: a stable name for a function version (super, admin)",
    ("get", "/services"): "Services in the partitions open to the caller",
    ("get", "/services/{name}"): "A service: deployed and previous version, price, deploy history",
    ("post", "/services/{name}/deploy"): "Deploy a version (atomic; the replaced one is kept for roll-back)",
    ("post", "/services/{name}/rollback"): "Go back to the previous version (409 if none)",
    ("post", "/services/{name}/undeploy"): "Refuse new calls (409) and leave running tasks alone",
}


def group_view(doc: dict) -> dict:
    return {"name": doc["_id"], **{k: v for k, v in doc.items() if k != "_id"}}


service_view = group_view


@bp.post("/groups")
def create_group():
    return jsonify(group_view(svc.create_group(store(), body(), current_user()))), 201


@bp.get("/groups")
def list_groups():
    items = [group_view(g) for g in svc.list_groups(store(), current_user())]
    return jsonify({"items": items, "total": len(items)})


@bp.get("/groups/<name>")
def get_group(name: str):
    doc = group_view(svc.get_group(store(), name, current_user()))
    return jsonify({**doc, "credits": credits.credits_of(store(), "group", name)})


@bp.patch("/groups/<name>")
def patch_group(name: str):
    return jsonify(group_view(svc.patch_group(store(), name, body(), current_user())))


@bp.delete("/groups/<name>")
def delete_group(name: str):
    svc.delete_group(store(), name, current_user())
    return jsonify({"name": name, "deleted": True})


@bp.post("/services")
def create_service():
    return jsonify(service_view(svc.create_service(store(), body(), current_user()))), 201


@bp.get("/services")
def list_services():
    items = [service_view(s) for s in svc.list_services(store(), current_user())]
    return jsonify({"items": items, "total": len(items)})


@bp.get("/services/<name>")
def get_service(name: str):
    return jsonify(service_view(svc.get_service(store(), name, current_user())))


@bp.post("/services/<name>/deploy")
def deploy(name: str):
    return jsonify(service_view(svc.deploy(store(), name, body(), current_user())))


@bp.post("/services/<name>/rollback")
def rollback(name: str):
    return jsonify(service_view(svc.rollback(store(), name, current_user())))


@bp.post("/services/<name>/undeploy")
def undeploy(name: str):
    return jsonify(service_view(svc.undeploy(store(), name, current_user())))
