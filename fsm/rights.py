"""Who may do what: one table of rights, read by the service layers, the API and the pages.

A right names the lowest role that holds it (roles rank admin > super > business > general,
``fsm.store.users.RANK``). Rights ending in ``_own`` apply to the caller's own things only;
their ``_any`` twin lifts that limit. No module checks a role by name for an action: it asks
``may(user, right)`` or ``check(user, right)``, so the API and the pages cannot disagree.
"""
from __future__ import annotations

from fsm.errors import Forbidden
from fsm.store.users import RANK, has_role

#: right -> (lowest role holding it, what it allows: the phrase a refusal names).
RIGHTS: dict[str, tuple[str, str]] = {
    "publish": ("business", "publishing tasks"),
    "read_task_any": ("super", "reading other users' tasks"),
    "cancel_task_own": ("business", "cancelling tasks"),
    "cancel_task_any": ("super", "cancelling other users' tasks"),
    "change_task": ("super", "re-prioritising, enabling/disabling and re-queueing tasks"),
    "manage_workers": ("admin", "draining or resuming a worker"),
    "manage_users": ("admin", "managing users"),
    "read_audit": ("admin", "reading the audit trail"),
    "manage_functions": ("super", "registering and changing function versions"),
    "manage_repos": ("admin", "adding and listing allowed repositories"),
    "see_private_functions": ("super", "seeing private functions"),
    "create_schedule": ("business", "creating schedules"),
    "manage_services": ("super", "creating, deploying, rolling back and undeploying services"),
    "manage_groups": ("admin", "managing groups and their partitions"),
    "manage_credits": ("admin", "topping up credits and reading other users' ledgers"),
    "manage_schedule_any": ("super", "reading and changing other users' schedules"),
}


def role_of(right: str) -> str:
    """The lowest role holding ``right``; a role name stands for itself (``KeyError`` otherwise)."""
    return right if right in RANK else RIGHTS[right][0]


def may(user: dict | None, right: str) -> bool:
    """Whether ``user`` holds ``right``; nobody (None) holds none."""
    return bool(user) and has_role(user, role_of(right))


def check(user: dict, right: str) -> None:
    """Raise ``Forbidden`` (403) naming the right and the role it needs, unless ``user`` holds it.

    ``right`` is a right of ``RIGHTS`` or a role name ("admin": that role or above).
    """
    if not may(user, right):
        role, what = RIGHTS.get(right, (right, "this"))
        raise Forbidden(f"{what} needs the {role} role or above; {user.get('_id')} is {user.get('role')}",
                        right=right, role=role)


def may_cancel(user: dict, owner: str | None) -> bool:
    """A task's submitter may cancel it (with ``cancel_task_own``); others need ``cancel_task_any``."""
    return may(user, "cancel_task_any") or (owner == user.get("_id") and may(user, "cancel_task_own"))
