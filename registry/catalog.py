"""Publish-time checks: does the function exist, which version does a task get, may this user run it.

The service layer calls ``resolve_version`` for every task before storing it, so a task
always records the exact version it will run.
"""
from __future__ import annotations

from pymongo.database import Database

from fsm.errors import Forbidden, FunctionNotFound
from registry.builtins import BUILTIN_VERSION, BUILTINS


def resolve_version(db: Database, function: str, version: str | None, role: str) -> str | None:
    """The version a new task of ``function`` runs; raises when unknown or not allowed for ``role``."""
    if function in BUILTINS and version in (None, BUILTIN_VERSION):
        return BUILTIN_VERSION
    if ":" in function:
        if role not in ("admin", "super"):
            raise Forbidden("only admin and super-users may publish custom module:function tasks")
        return version
    raise FunctionNotFound(f"unknown function {function!r}" + (f" (version {version!r})" if version else "")
                           + f"; built-ins are {', '.join(sorted(BUILTINS))}")
