"""Accounts (use cases, no Flask): a user's details and changes, API tokens, web sessions, the audit trail.

Who may do what:
    GET /users/<name>               admin (``manage_users``), or the user themself (with ``credits``)
    PATCH /users/<name>             role, groups: admin; password: admin, or the user themself
    tokens of a user                the user themself (any role), or admin
    DELETE /users/<name>/sessions   admin, or the user themself (log out everywhere)
    GET /audit                      admin

Every role, groups and password change, token creation and revocation and session
revocation is appended to the audit trail (``fsm.store.audit``). A password change ends
all of that user's web sessions (API tokens stay).
"""
from __future__ import annotations

from typing import Any

from fsm.errors import Conflict, ValidationError
from fsm.identifiers import TOKEN_ID
from fsm.store import Store
from fsm.store.users import ROLES
from scheduler import quotas
from fsm import rights
from scheduler import credits
from scheduler.paging import int_arg

#: Longest token lifetime one may ask for (10 years); omitted or null: the token never expires.
MAX_TOKEN_LIFETIME_S = 10 * 365 * 86400
MAX_LABEL = 100
MAX_GROUPS, MAX_GROUP_NAME = 100, 64
USER_FIELDS = {"role", "groups", "password"}
AUDIT_FILTERS = ("actor", "action", "target")
AUDIT_PAGE, AUDIT_MAX_PAGE = 50, 500


def _self_or(user: dict, name: str, right: str = "manage_users") -> None:
    """The caller is ``name``, or holds ``right`` (403 otherwise)."""
    if user["_id"] != name:
        rights.check(user, right)


def _object(body: Any, example: str) -> dict:
    if not isinstance(body, dict):
        raise ValidationError(f"the body must be a JSON object like {example}")
    return body


# --------------------------------------------------------------------- users
def user_view(doc: dict) -> dict:
    """A user as the API shows it: name, role, groups, created_at, has_password (no secrets)."""
    return {"name": doc["_id"], "role": doc.get("role"), "groups": doc.get("groups") or [],
            "created_at": doc.get("created_at"), "has_password": bool(doc.get("has_password"))}


def get_user(store: Store, name: str, user: dict) -> dict:
    """One user (admin, or the user themself) with their ``credits``; 404 when there is none."""
    _self_or(user, name)
    return {**user_view(store.users.details(name)), "credits": credits.credits_of(store, "user", name)}


def _groups(store: Store, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(g, str) and 0 < len(g) <= MAX_GROUP_NAME for g in value):
        raise ValidationError(f"'groups' must be a list of group names (strings of 1-{MAX_GROUP_NAME} characters), "
                              f"got {value!r}"[:300], field="groups")
    if len(set(value)) != len(value) or len(value) > MAX_GROUPS:
        raise ValidationError(f"'groups' must name each group once (at most {MAX_GROUPS})", field="groups")
    known = getattr(store, "groups", None)  # the groups collection, where groups are managed
    if known is not None and value:
        missing = sorted(set(value) - {g["_id"] for g in known.of(value)})
        if missing:
            raise ValidationError(f"no such group(s): {', '.join(missing)} (create them with POST /api/v1/groups)",
                                  field="groups")
    return value


def patch_user(store: Store, name: str, body: Any, user: dict) -> dict:
    """Change any of ``role``, ``groups`` (admin) and ``password`` (admin or the user themself).

    Each change goes to the audit trail; a password change ends the user's web sessions.
    """
    body = _object(body, '{"role": "super"}, {"groups": ["nlp"]} or {"password": "..."}')
    unknown = set(body) - USER_FIELDS
    if unknown or not body:
        raise ValidationError(f"send any of {', '.join(sorted(USER_FIELDS))}; "
                              + (f"unknown field(s): {', '.join(sorted(unknown))}" if unknown else "got nothing"),
                              field=sorted(unknown)[0] if unknown else None)
    if set(body) - {"password"}:
        rights.check(user, "manage_users")
    else:
        _self_or(user, name)
    role = body.get("role")
    if "role" in body and role not in ROLES:
        raise ValidationError(f"'role' must be one of {', '.join(ROLES)}, got {role!r}", field="role")
    groups = _groups(store, body["groups"]) if "groups" in body else None
    password = body.get("password")
    if "password" in body and (not isinstance(password, str) or len(password) < 8):
        raise ValidationError("'password' must be a string of at least 8 characters", field="password")
    if role is not None and role != "admin" and name == user["_id"] and _last_admin(store, name):
        raise Conflict(f"{name} is the only admin; make another user admin first")
    before = store.users.change(name, role=role, groups=groups, password=password)
    if role is not None and role != before.get("role"):
        store.audit.record(user["_id"], "user.role", name, old=before.get("role"), new=role)
    if groups is not None and groups != (before.get("groups") or []):
        store.audit.record(user["_id"], "user.groups", name, old=before.get("groups") or [], new=groups)
        quotas.groups_changed(store, set(groups) ^ set(before.get("groups") or []))
    if password is not None:
        ended = store.sessions.end_all(name)
        store.audit.record(user["_id"], "user.password", name, sessions_ended=ended)
    return get_user(store, name, user)


def _last_admin(store: Store, name: str) -> bool:
    return [u["_id"] for u in store.users.list() if u.get("role") == "admin"] == [name]


# -------------------------------------------------------------------- tokens
def create_token(store: Store, name: str, body: Any, user: dict) -> dict:
    """A new API token for ``name`` (the user themself, or admin): the secret is in this answer only."""
    _self_or(user, name)
    body = _object(body or {}, '{"label": "laptop", "expires_in_s": 86400}')
    unknown = set(body) - {"label", "expires_in_s"}
    if unknown:
        raise ValidationError(f"unknown field(s): {', '.join(sorted(unknown))} (allowed: label, expires_in_s)",
                              field=sorted(unknown)[0])
    label = body.get("label") or "api"
    if not isinstance(label, str) or len(label) > MAX_LABEL or not label.isprintable():
        raise ValidationError(f"'label' must be a printable string of at most {MAX_LABEL} characters", field="label")
    lifetime = body.get("expires_in_s")
    if lifetime is not None and (isinstance(lifetime, bool) or not isinstance(lifetime, int)
                                 or not 1 <= lifetime <= MAX_TOKEN_LIFETIME_S):
        raise ValidationError(f"'expires_in_s' must be an integer from 1 to {MAX_TOKEN_LIFETIME_S} (seconds), or "
                              "null for a token that never expires", field="expires_in_s", limit=MAX_TOKEN_LIFETIME_S)
    secret, entry = store.users.tokens.create(name, label, lifetime, store.now())
    store.audit.record(user["_id"], "token.create", name, token_id=entry["id"], label=label,
                       expires_at=entry["expires_at"])
    return {**entry, "token": secret}


def list_tokens(store: Store, name: str, user: dict) -> dict:
    """The user's tokens without secrets (the user themself, or admin)."""
    _self_or(user, name)
    items = store.users.tokens.list(name)
    return {"items": items, "total": len(items)}


def revoke_token(store: Store, name: str, token_id: str, user: dict) -> dict:
    """Revoke one token at once (the user themself, or admin); it answers 401 ``token_revoked`` from now on."""
    _self_or(user, name)
    TOKEN_ID.check(token_id, "token id", field="token_id")
    entry = store.users.tokens.revoke(name, token_id, user["_id"], store.now())
    store.audit.record(user["_id"], "token.revoke", name, token_id=token_id, label=entry.get("label"))
    return entry


# ------------------------------------------------------------------ sessions
def end_sessions(store: Store, name: str, user: dict) -> dict:
    """End every web session of ``name`` (admin, or the user themself: log out everywhere)."""
    _self_or(user, name)
    store.users.details(name)  # 404 for an unknown user
    ended = store.sessions.end_all(name)
    store.audit.record(user["_id"], "session.revoke", name, ended=ended)
    return {"name": name, "ended": ended}


# --------------------------------------------------------------------- audit
def audit_view(doc: dict) -> dict:
    return {"id": doc["_id"], **{k: v for k, v in doc.items() if k != "_id"}}


def list_audit(store: Store, user: dict, args: dict) -> dict:
    """One page of the audit trail, newest first (admin): filters actor, action, target; limit, skip."""
    rights.check(user, "read_audit")
    unknown = set(args) - set(AUDIT_FILTERS) - {"limit", "skip"}
    if unknown:
        raise ValidationError(f"unknown query parameter(s): {', '.join(sorted(unknown))} (filters: "
                              f"{', '.join(AUDIT_FILTERS)}; paging: limit, skip)", field=sorted(unknown)[0])
    query = {key: str(args[key]) for key in AUDIT_FILTERS if key in args}
    limit = int_arg(args, "limit", AUDIT_PAGE, 1, AUDIT_MAX_PAGE)
    skip = int_arg(args, "skip", 0, 0, 10 ** 9)
    docs, total = store.audit.page(query, skip, limit)
    return {"items": [audit_view(d) for d in docs], "total": total, "limit": limit, "skip": skip}

