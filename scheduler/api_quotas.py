"""HTTP routes of quotas (mounted under /api/v1; the rules live in ``scheduler.quotas``).

    PUT /users/<name>/quotas    {"queued", "running", "data_bytes"} (admin): the limits, null for none
    GET /users/<name>/quotas    the limits and the usage (the user themself or an admin)
    PUT /groups/<name>/quotas   the same for a group's members together (admin)
    GET /groups/<name>/quotas   (a member or an admin)
"""
from __future__ import annotations

from flask import Blueprint, jsonify

from scheduler import quotas
from scheduler.api import body
from scheduler.auth import current_user, store

bp = Blueprint("quotas", __name__)

LIMIT = {"type": ["integer", "null"], "minimum": 0}
QUOTA_BODY = {"type": "object", "additionalProperties": False,
              "properties": {"queued": LIMIT, "running": LIMIT, "data_bytes": LIMIT}}
#: Request bodies for the OpenAPI document (``scheduler.openapi``).
BODIES = {("put", "/users/{name}/quotas"): (QUOTA_BODY, "200"), ("put", "/groups/{name}/quotas"): (QUOTA_BODY, "200")}
#: Summaries for the OpenAPI document (``scheduler.openapi.SUMMARIES``).
SUMMARIES = {
    ("put", "/users/{name}/quotas"): "Set a user's quotas: tasks waiting, tasks running, bytes stored (admin)",
    ("get", "/users/{name}/quotas"): "A user's quotas and usage (the user or an admin)",
    ("put", "/groups/{name}/quotas"): "Set a group's quotas, counting its members together (admin)",
    ("get", "/groups/{name}/quotas"): "A group's quotas and usage (a member or an admin)",
}


@bp.put("/users/<name>/quotas")
def put_user_quotas(name: str):
    return jsonify(quotas.set_quota(store(), "user", name, body(), current_user()))


@bp.get("/users/<name>/quotas")
def get_user_quotas(name: str):
    return jsonify(quotas.get_quota(store(), "user", name, current_user()))


@bp.put("/groups/<name>/quotas")
def put_group_quotas(name: str):
    return jsonify(quotas.set_quota(store(), "group", name, body(), current_user()))


@bp.get("/groups/<name>/quotas")
def get_group_quotas(name: str):
    return jsonify(quotas.get_quota(store(), "group", name, current_user()))
