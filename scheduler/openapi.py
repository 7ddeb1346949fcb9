"""The API's OpenAPI 3.1 document (served at /api/v1/openapi.json)."""
from __future__ import annotations

from flask import current_app

TASK_BODY = {
    "type": "object", "additionalProperties": False, "required": ["function"],
    "properties": {
        "id": {"type": "string", "description": "optional idempotency id; a duplicate is refused (409)"},
        "function": {"type": "string", "examples": ["echo"]},
        "version": {"type": "string", "description": "default: the newest non-deprecated version"},
        "args": {"type": "array"}, "kwargs": {"type": "object"},
        "priority": {"type": "integer", "description": "higher runs first"},
        "is_enabled": {"type": "boolean"},
        "redundancy": {"type": "integer", "minimum": 1, "maximum": 16},
        "quorum": {"type": "integer", "minimum": 1},
        "timeout_s": {"type": "number"}, "max_retries": {"type": "integer", "minimum": 0},
        "retry_backoff_s": {"type": "number", "minimum": 0},
        "requires": {"type": "object", "additionalProperties": False, "properties": {
            "gpus": {"type": "integer"}, "mem_gb": {"type": "number"},
            "tags": {"type": "array", "items": {"type": "string"}}}},
        "run_after": {"type": "string", "format": "date-time"}, "delay_s": {"type": "number"},
        "depends_on": {"type": "array", "items": {"type": "string"}, "maxItems": 1000, "uniqueItems": True,
                       "description": "task ids (of this request too) that must succeed first"},
    },
}
PATCH_BODY = {"type": "object", "additionalProperties": False, "minProperties": 1, "properties": {
    "priority": {"type": "integer"}, "is_enabled": {"type": "boolean"}}}
USER_BODY = {"type": "object", "additionalProperties": False, "required": ["name", "role"], "properties": {
    "name": {"type": "string"}, "role": {"enum": ["admin", "super", "business", "general"]},
    "password": {"type": "string", "minLength": 8}, "groups": {"type": "array", "items": {"type": "string"}}}}
ERROR = {"type": "object", "properties": {"error": {"type": "object", "properties": {
    "code": {"type": "string"}, "message": {"type": "string"}}}}}

#: Routes that need no token.
PUBLIC = {("get", "/healthz"), ("get", "/metrics"), ("get", "/openapi.json")}
#: (method, path) -> (request body schema, success status).
BODIES = {("post", "/tasks"): ({"oneOf": [TASK_BODY, {"type": "array", "items": TASK_BODY}]}, "201"),
          ("patch", "/tasks/{task_id}"): (PATCH_BODY, "200"),
          ("post", "/users"): (USER_BODY, "201")}
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


def _paths() -> dict:
    """Every /api/v1 route the app serves, with a summary where one is written."""
    paths: dict = {}
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
            if (m, path) in BODIES:
                schema, ok = BODIES[(m, path)]
                op["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
                if ok != "200":
                    op["responses"] = {ok: {"description": "created"}, "default": op["responses"]["default"]}
            if (m, path) in PUBLIC:
                op["security"] = []
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
