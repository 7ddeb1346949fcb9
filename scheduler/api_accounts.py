"""HTTP routes of accounts (mounted under /api/v1; the verbs live in ``scheduler.service_accounts``).

    GET    /whoami                            the caller (as GET /users/<name> shows it)
    GET    /users/<name>                      a user (admin, or the user themself)
    PATCH  /users/<name>                      {"role", "groups", "password"}: any of them
    POST   /users/<name>/tokens               {"label", "expires_in_s"}: the secret is answered once   201
    GET    /users/<name>/tokens               the user's tokens, without secrets
    DELETE /users/<name>/tokens/<token_id>    revoke a token at once
    DELETE /users/<name>/sessions             end the user's web sessions
    GET    /audit                             the audit trail, newest first (admin; actor, action, target)
    POST   /users/<name>/credits              {"amount", "note"}: top up (admin; negative: a correction)
    POST   /groups/<name>/credits             the same for a group's account (admin)
    GET    /users/<name>/ledger               the user's credit movements, newest first (self or admin)
"""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from fsm.store.users import ROLES
from scheduler import credits
from scheduler import service_accounts as accounts
from scheduler.api import body
from scheduler.auth import current_user, store
from scheduler.query_args import query_params

bp = Blueprint("accounts", __name__)

GROUPS = {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": accounts.MAX_GROUP_NAME}}
CREDITS_BODY = {"type": "object", "additionalProperties": False, "required": ["amount"], "properties": {
    "amount": {"type": "number", "not": {"const": 0}, "minimum": -credits.pricing.MAX_AMOUNT,
               "maximum": credits.pricing.MAX_AMOUNT,
               "description": "credits to add; negative: a correction (the balance never goes below zero)"},
    "note": {"type": "string", "maxLength": credits.MAX_NOTE}}}
#: Request bodies for the OpenAPI document: (method, path) -> (schema, success status).
BODIES = {
    ("post", "/users/{name}/credits"): (CREDITS_BODY, "200"),
    ("post", "/groups/{name}/credits"): (CREDITS_BODY, "200"),
    ("patch", "/users/{name}"): ({"type": "object", "additionalProperties": False, "minProperties": 1, "properties": {
        "role": {"enum": list(ROLES)}, "groups": GROUPS,
        "password": {"type": "string", "minLength": 8}}}, "200"),
    ("post", "/users/{name}/tokens"): ({"type": "object", "additionalProperties": False, "properties": {
        "label": {"type": "string", "maxLength": accounts.MAX_LABEL},
        "expires_in_s": {"type": ["integer", "null"], "minimum": 1, "maximum": accounts.MAX_TOKEN_LIFETIME_S,
                         "description": "seconds until the token stops working; null or absent: never"}}}, "201"),
}
#: Summaries for the OpenAPI document (``scheduler.openapi.SUMMARIES``).
SUMMARIES = {
    ("get", "/whoami"): "The caller: name, role, groups (the user of the token or the session)",
    ("get", "/users/{name}"): "A user: role, groups, has_password (admin, or the user themself)",
    ("patch", "/users/{name}"): "Change a user's role or groups (admin) or password (admin or self; ends their "
                                "web sessions)",
    ("post", "/users/{name}/tokens"): "Create an API token (self or admin); the secret is answered once",
    ("get", "/users/{name}/tokens"): "A user's API tokens, without secrets (self or admin)",
    ("delete", "/users/{name}/tokens/{token_id}"): "Revoke an API token at once (self or admin)",
    ("delete", "/users/{name}/sessions"): "End a user's web sessions (admin, or self: log out everywhere)",
    ("get", "/audit"): "The audit trail, newest first (admin; filters actor, action, target; limit, skip)",
    ("post", "/users/{name}/credits"): "Top up a user's credits (admin; a negative amount corrects, never below zero)",
    ("post", "/groups/{name}/credits"): "Top up a group's credits (admin)",
    ("get", "/users/{name}/ledger"): "A user's credit movements, newest first (self or admin; limit, skip)",
}


@bp.get("/whoami")
@query_params()
def whoami():
    user = current_user()
    return jsonify(accounts.get_user(store(), user["_id"], user))


@bp.get("/users/<name>")
@query_params()
def get_user(name):
    return jsonify(accounts.get_user(store(), name, current_user()))


@bp.patch("/users/<name>")
def patch_user(name):
    user = current_user()
    return jsonify(accounts.patch_user(store(), name, body(), user))


@bp.post("/users/<name>/tokens")
def create_token(name):
    user = current_user()
    payload = body() if request.content_length else {}
    return jsonify(accounts.create_token(store(), name, payload, user)), 201


@bp.get("/users/<name>/tokens")
@query_params()
def list_tokens(name):
    return jsonify(accounts.list_tokens(store(), name, current_user()))


@bp.delete("/users/<name>/tokens/<token_id>")
def revoke_token(name, token_id):
    user = current_user()
    return jsonify(accounts.revoke_token(store(), name, token_id, user))


@bp.delete("/users/<name>/sessions")
def end_sessions(name):
    return jsonify(accounts.end_sessions(store(), name, current_user()))


@bp.get("/audit")
@query_params(*accounts.AUDIT_FILTERS, "limit", "skip")
def audit():
    return jsonify(accounts.list_audit(store(), current_user(), request.args.to_dict()))



@bp.post("/users/<name>/credits")
def top_up_user(name):
    return jsonify(credits.top_up(store(), "user", name, body(), current_user()))


@bp.post("/groups/<name>/credits")
def top_up_group(name):
    return jsonify(credits.top_up(store(), "group", name, body(), current_user()))


@bp.get("/users/<name>/ledger")
@query_params("limit", "skip")
def ledger(name):
    return jsonify(credits.ledger(store(), name, current_user(), request.args.to_dict()))
