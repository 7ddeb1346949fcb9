"""Which partitions a user may use: one pure decision, read by the API, the CLI and the pages.

A partition is a named area of functions and services (``nlp``, ``vision``). Everything is in
exactly one partition; ``public`` is open to every logged-in user. Admins see and call
everything; every other user sees and calls ``public`` plus the partitions their groups grant.
Something in a closed partition answers 404 like an unknown thing (its existence is not revealed).
"""
from __future__ import annotations

from typing import Iterable

from fsm.identifiers import PARTITION

PUBLIC = "public"
#: ``open_partitions`` answers this for admins: every partition.
ALL = None


def open_partitions(user: dict | None, groups: Iterable[dict]) -> frozenset[str] | None:
    """The partitions ``user`` may use: ``None`` (``ALL``) for an admin, else ``public`` plus those
    granted by the user's groups among ``groups`` (group documents ``{_id, partitions}``)."""
    if not user:
        return frozenset()
    if user.get("role") == "admin":
        return ALL
    mine = set(user.get("groups") or ())
    granted = {p for g in groups if g.get("_id") in mine for p in g.get("partitions") or ()}
    return frozenset({PUBLIC} | granted)


def is_open(partitions: frozenset[str] | None, partition: str | None) -> bool:
    """Whether a thing in ``partition`` (missing: ``public``) is open under ``partitions``."""
    return partitions is ALL or (partition or PUBLIC) in partitions


def check_name(name: object) -> str:
    """A partition name (``fsm.identifiers.PARTITION``) or ``ValueError``."""
    if not isinstance(name, str) or not PARTITION.match(name):
        raise ValueError(f"a partition name must be {PARTITION.rule}, got {name!r}")
    return name
