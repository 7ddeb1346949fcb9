"""Publish-time checks: does the function exist, which version does a task get, may this user run it.

The service layer calls ``resolve_version`` for every task before storing it, so a task
always records the exact version it will run: a task that names no version gets the
newest non-deprecated one (the one registered last). ``task_defaults`` gives the fields a
version declares for its tasks (``requires``), for the service to apply when a body leaves
them out.
"""
from __future__ import annotations

from fsm.errors import Forbidden, FunctionNotFound
from fsm.store.users import RANK
from registry.builtins import BUILTIN_VERSION, BUILTINS
from registry.store import FunctionStore, registry_stores


def _registered(db, function: str, version: str | None) -> dict:
    functions: FunctionStore = registry_stores(db)[0]  # a Store, or a raw Database
    if version is None:
        doc = functions.newest(function)
        if doc is None:
            if functions.exists(function):
                raise FunctionNotFound(f"every version of {function!r} is deprecated; name a version explicitly")
            raise FunctionNotFound(f"unknown function {function!r}; built-ins are {', '.join(sorted(BUILTINS))}")
        return doc
    doc = functions.find(function, version)
    if doc is None:
        if function in BUILTINS:
            raise FunctionNotFound(f"built-in function {function!r} has only version {BUILTIN_VERSION!r}")
        raise FunctionNotFound(f"function {function!r} has no version {version!r}" if functions.exists(function)
                               else f"unknown function {function!r} (version {version!r})")
    return doc


def resolve_version(db, function: str, version: str | None, role: str) -> str | None:
    """The version a new task of ``function`` runs; raises when unknown or not allowed for ``role``."""
    if function in BUILTINS and version in (None, BUILTIN_VERSION):
        return BUILTIN_VERSION
    if ":" in function:
        if role not in ("admin", "super"):
            raise Forbidden("only admin and super-users may publish custom module:function tasks")
        return version
    doc = _registered(db, function, version)
    rank = RANK.get(role, -1)
    if rank < RANK["super"]:
        if not doc.get("public"):
            raise Forbidden(f"function {function} version {doc['version']} is not public; business users may "
                            "only publish tasks of public functions")
        if rank < RANK["business"]:
            raise Forbidden("general users may not publish tasks")
    return doc["version"]


def task_defaults(db, function: str, version: str | None) -> dict:
    """Fields the version declares for its tasks (``{"requires": {...}, "price": {...}}``); ``{}`` for built-ins."""
    if function in BUILTINS and version in (None, BUILTIN_VERSION) or ":" in function:
        return {}
    doc = _registered(db, function, version)
    out = {"requires": doc["requires"]} if doc.get("requires") else {}
    if doc.get("price"):  # credits per call / CPU-second / GPU-second (``fsm.pricing``)
        out["price"] = doc["price"]
    return out
