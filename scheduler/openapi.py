"""The API's OpenAPI 3.1 document (served at /api/v1/openapi.json)."""
from __future__ import annotations

from flask import current_app

from fsm.errors import DETAILS
from fsm.identifiers import GROUP_NAME, PARTITION, SERVICE_NAME, USER_NAME
from fsm.store import spec
from fsm.store.users import ROLES

#: The task body, generated from the one description of its fields (``fsm.store.spec.FIELDS``).
TASK_BODY = spec.json_schema()
PATCH_BODY = {"type": "object", "additionalProperties": False, "minProperties": 1, "properties": {
    name: spec.FIELDS[name].json_schema() for name in ("priority", "is_enabled")}}
USER_BODY = {"type": "object", "additionalProperties": False, "required": ["name", "role"], "properties": {
    "name": {"type": "string", "pattern": USER_NAME.posix}, "role": {"enum": list(ROLES)},
    "password": {"type": "string", "minLength": 8}, "groups": {"type": "array", "items": {"type": "string"}}}}
PARTITIONS = {"type": "array", "items": {"type": "string", "pattern": PARTITION.posix}}
GROUP_BODY = {"type": "object", "additionalProperties": False, "required": ["name"], "properties": {
    "name": {"type": "string", "pattern": GROUP_NAME.posix}, "partitions": PARTITIONS}}
SERVICE_BODY = {"type": "object", "additionalProperties": False, "required": ["name", "function", "version"],
                "properties": {"name": {"type": "string", "pattern": SERVICE_NAME.posix},
                               "function": {"type": "string"}, "version": {"type": "string"},
                               "partition": {"type": "string", "pattern": PARTITION.posix, "default": "public"},
                               "price": {"type": "number", "minimum": 0, "default": 0,
                                         "description": "credits per call"}}}
#: ``{"error": {"code", "message", ...details}}``: the details of ``fsm.errors.DETAILS``.
ERROR = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["code", "message"], "additionalProperties": True, "properties": {
        "code": {"type": "string", "description": "what happened, e.g. invalid, forbidden, csrf_failed"},
        "message": {"type": "string", "description": "the problem in words, naming the field and the limit"},
        **{name: {**schema, "description": what} for name, (schema, what) in DETAILS.items()}}}}}

#: (method, path) -> (request body schema, success status).
BODIES = {("post", "/tasks"): ({"oneOf": [TASK_BODY, {"type": "array", "items": TASK_BODY}]}, "201"),
          ("patch", "/tasks/{task_id}"): (PATCH_BODY, "200"),
          ("post", "/users"): (USER_BODY, "201"),
          ("post", "/groups"): (GROUP_BODY, "201"),
          ("patch", "/groups/{name}"): ({"type": "object", "additionalProperties": False, "required": ["partitions"],
                                         "properties": {"partitions": PARTITIONS}}, "200"),
          ("post", "/services"): (SERVICE_BODY, "201"),
          ("post", "/services/{name}/deploy"): ({"type": "object", "additionalProperties": False,
                                                  "required": ["version"],
                                                  "properties": {"version": {"type": "string"}}}, "200")}
#: (method, path) -> summary; paths use OpenAPI's {param} syntax.
SUMMARIES = {
    ("post", "/tasks"): "Publish a task, or a list of tasks (bulk)",
    ("get", "/tasks"): "List tasks (filters: status, reason, function, worker, submitted_by; limit, skip, sort, order)",
    ("get", "/tasks/{task_id}"): "A task with its history and attempts",
    ("patch", "/tasks/{task_id}"): "Re-prioritise or enable/disable a live task (super)",
    ("post", "/tasks/{task_id}/cancel"): "Cancel a live task",
    ("post", "/tasks/{task_id}/requeue"): "Re-queue a failed or cancelled task (super)",
    ("get", "/workers"): "Workers and their latest whoami (filter: state)",
    ("get", "/workers/{name}"): "One worker",
    ("post", "/workers/{name}/drain"): "Stop a worker claiming new tasks (admin)",
    ("post", "/workers/{name}/resume"): "Let a drained worker claim again (admin)",
    ("get", "/stats"): "Counts by status, queue age, throughput, service map",
    ("get", "/users"): "Users (admin)",
    ("post", "/users"): "Create a user; answers its token once (admin)",
    ("get", "/healthz"): "Liveness and MongoDB reachability (no auth)",
    ("get", "/metrics"): "Prometheus metrics (no auth unless the server sets a metrics token)",
    ("get", "/openapi.json"): "This document",
}


def _summaries() -> dict:
    """This module's summaries and those the feature blueprints (schedules, notifications) publish."""
    merged = dict(SUMMARIES)
    for bp in current_app.blueprints.values():
        module = __import__(bp.import_name, fromlist=["SUMMARIES"])
        merged.update(getattr(module, "SUMMARIES", {}))
    return merged


def _bodies() -> dict:
    """This module's request bodies and those the feature blueprints (accounts) publish as ``BODIES``."""
    merged = dict(BODIES)
    for bp in current_app.blueprints.values():
        merged.update(getattr(__import__(bp.import_name, fromlist=["BODIES"]), "BODIES", {}))
    return merged


def _paths() -> dict:
    """Every /api/v1 route the app serves, with a summary where one is written."""
    paths: dict = {}
    bodies = _bodies()
    for rule in current_app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        path = rule.rule[len("/api/v1"):].replace("<", "{").replace(">", "}")
        path = "/".join(part.split(":")[-1] if part.startswith("{") else part for part in path.split("/"))
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            m = method.lower()
            op = {"summary": _summaries().get((m, path), rule.endpoint.replace("_", " ")),
                  "operationId": f"{m}_{rule.endpoint}".replace(".", "_"),
                  "responses": {"200": {"description": "OK"}, "default": {
                      "description": "error", "content": {"application/json": {"schema": ERROR}}}}}
            params = [seg[1:-1] for seg in path.split("/") if seg.startswith("{")]
            if params:
                op["parameters"] = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                                    for p in params]
            if (m, path) in bodies:
                schema, ok = bodies[(m, path)]
                op["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
                if ok != "200":
                    op["responses"] = {ok: {"description": "created"}, "default": op["responses"]["default"]}
            if getattr(current_app.view_functions.get(rule.endpoint), "suanwang_public", False):
                op["security"] = []  # a ``scheduler.auth.public`` view
            paths.setdefault(path, {})[m] = op
    return dict(sorted(paths.items()))


def document() -> dict:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Suanwang API", "version": "1",
                 "description": "A distributed task queue on MongoDB. Send 'Authorization: Bearer <token>'."},
        "servers": [{"url": "/api/v1"}],
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
                       "schemas": {"Task": TASK_BODY, "Error": ERROR}},
        "security": [{"bearer": []}],
        "paths": _paths(),
    }
