"""Quotas: per user and per group, on tasks waiting, tasks running and bytes stored.

    set      admin: ``PUT /users/<name>/quotas`` or ``/groups/<name>/quotas`` with
             ``{"queued", "running", "data_bytes"}`` (an integer >= 0, or null for no limit; a
             field left out is null); audited as ``quota.set``
    read     ``GET`` of the same: the limits and the current usage (the user themself or an admin;
             a group's quota: its members or an admin)
    queued   checked at publish: past it, 429 ``quota_exceeded`` with ``Retry-After`` and nothing
             written (a bulk publish counts every item)
    running  enforced at claim: the leader tells workers the room left under each limit (every
             ``REFRESH_S``; a new limit within ``REREAD_S``), each worker takes off its own claims since
             (``worker.quota_room``); tasks without room wait while other users' run. Exact for one
             worker; several workers can together overshoot by at most one task each per refresh
    data_bytes  checked at upload, before and while the bytes stream; a user's or group's quota
             replaces the server's ``data_quota_bytes`` for them

A group's limit counts its members together; a user is bound by their own and all their groups'.
"""
from __future__ import annotations

import math
import time
from typing import Any

from fsm import rights
from fsm.errors import Forbidden, QuotaLimit, ValidationError
from fsm.fields import json_object
from fsm.store import Store
from fsm.store.quotas import LIMITS
from fsm.store.users import has_role

#: How long a client is told to wait after a queued-quota refusal.
RETRY_AFTER_S = 5
#: How often the leader re-counts the running tasks of users with a running limit.
REFRESH_S = 1.0
#: How often it re-reads which limits exist.
REREAD_S = 5.0
JOB = "quotas"


# ------------------------------------------------------------------ checks
def check_publish(store: Store, user: dict, count: int) -> None:
    """429 when publishing ``count`` more tasks would take ``user`` or a group of theirs past a queued quota."""
    if not count or not store.quotas.any():
        return
    for doc in store.quotas.for_user(user["_id"], user.get("groups") or []):
        limit = doc.get("queued")
        if limit is None:
            continue
        owners = _owners(store, doc)
        used = store.quotas.waiting(owners)
        if used + count > limit:
            holder = _holder(doc)
            raise QuotaLimit(f"the queued quota of {holder} is {limit} waiting task(s) and {used} are waiting; "
                             f"{count} more would exceed it (wait for some to start, or ask an admin to raise it)",
                             quota="queued", limit=limit, used=used, retry_after_s=RETRY_AFTER_S)


def data_bytes_left(store: Store, user: dict, default: int | None) -> int | None:
    """Bytes ``user`` may still store (None: no limit): their and their groups' quotas, else ``default``."""
    quotas = [d for d in store.quotas.for_user(user["_id"], user.get("groups") or [])
              if d.get("data_bytes") is not None] if store.quotas.any() else []
    if not any(d["_id"].startswith("user:") for d in quotas) and default is not None:
        quotas.append({"_id": f"user:{user['_id']}", "data_bytes": default})
    left = None
    for doc in quotas:
        room = doc["data_bytes"] - sum(store.data.usage(owner) for owner in _owners(store, doc))
        left = room if left is None else min(left, room)
    return left


# ------------------------------------------------------------- set and read
def set_quota(store: Store, kind: str, name: str, body: Any, user: dict) -> dict:
    rights.check(user, "manage_users")
    body = json_object(body, LIMITS, example='{"queued": 100, "running": 4, "data_bytes": 10000000000}')
    limits = {}
    for key in LIMITS:
        value = body.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ValidationError(f"'{key}' must be a whole number >= 0, or null for no limit", field=key)
        limits[key] = value
    members = _exists(store, kind, name)
    before = store.quotas.get(kind, name) or {}
    store.quotas.set(kind, name, limits, user["_id"], members=members)
    store.audit.record(user["_id"], "quota.set", f"{kind}:{name}", old={k: before.get(k) for k in LIMITS},
                       new=limits)
    return get_quota(store, kind, name, user)


def get_quota(store: Store, kind: str, name: str, user: dict) -> dict:
    members = _exists(store, kind, name)
    allowed = has_role(user, "admin") or (user["_id"] == name if kind == "user" else name in (user.get("groups") or []))
    if not allowed:
        raise Forbidden(f"only an admin or {'the user' if kind == 'user' else 'a member'} may read this quota")
    doc = store.quotas.get(kind, name) or {}
    owners = [name] if kind == "user" else members
    return {"kind": kind, "name": name, **{k: doc.get(k) for k in LIMITS},
            "usage": {"queued": store.quotas.waiting(owners), "running": store.quotas.running(owners),
                      "data_bytes": sum(store.data.usage(o) for o in owners)},
            "updated_at": doc.get("updated_at"), "updated_by": doc.get("updated_by")}


def groups_changed(store: Store, groups: set[str]) -> None:
    """Users joined or left these groups: their quotas count the members they have now."""
    for group in groups:
        store.quotas.set_members(group, store.users.members(group))


def _exists(store: Store, kind: str, name: str) -> list[str] | None:
    """404 unless the user or group exists; a group's members."""
    if kind == "user":
        store.users.details(name)
        return None
    store.groups.get(name)
    return store.users.members(name)


def _owners(store: Store, doc: dict) -> list[str]:
    kind, _, name = doc["_id"].partition(":")
    return [name] if kind == "user" else list(doc.get("members") or [])


def _holder(doc: dict) -> str:
    kind, _, name = doc["_id"].partition(":")
    return f"user {name}" if kind == "user" else f"group {name}"


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


# -------------------------------------------------------------- the leader
def install(leader) -> None:
    """Keep every worker told the room left under each running limit (``workers.quota_room``)."""
    from scheduler.leader_loop import Job

    state: dict[str, Any] = {"limits": [], "read_at": float("-inf"), "told": True}  # (clears stale ones at start)

    def run(_stop) -> None:
        now = time.monotonic()
        if now - state["read_at"] >= REREAD_S:
            state["limits"], state["read_at"] = leader.store.quotas.running_limits(), now
        if state["limits"] or state["told"]:  # (once more after the last limit went: to clear the workers)
            leader.store.quotas.refresh_room(state["limits"], leader.store.now())
            state["told"] = bool(state["limits"])

    leader.add(Job(JOB, REFRESH_S, run))
