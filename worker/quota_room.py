"""The room left under running quotas, as this worker sees it between two counts of the leader.

The leader writes ``{at, limits: [{owners, room}]}`` into the worker's document (``fsm.store.quotas``);
the heartbeat hands it here. Claims this worker made after ``at`` (by the server's clock) are not
in that count yet, so they are taken off; owners under a limit without room are avoided by the
next claim. Claims run one at a time per worker, so one worker never overshoots.
"""
from __future__ import annotations

import threading


class QuotaRoom:
    def __init__(self) -> None:
        self._at = None
        self._limits: list[dict] = []
        self._mine: dict[str, tuple[str, object]] = {}  # attempt id -> (owner, server time of the claim)
        self._lock = threading.Lock()

    def update(self, room: dict | None) -> None:
        with self._lock:
            self._at = (room or {}).get("at")
            self._limits = list((room or {}).get("limits") or [])

    def limited(self, owner: str) -> bool:
        with self._lock:
            return any(owner in entry["owners"] for entry in self._limits)

    def limited_owners(self) -> tuple[str, ...]:
        """Everyone under a running quota (tasks claimed ahead are never theirs: those claims count one by one)."""
        with self._lock:
            return tuple(sorted({owner for entry in self._limits for owner in entry["owners"]}))

    def claimed(self, attempt_id: str, owner: str, at) -> None:
        with self._lock:
            self._mine[attempt_id] = (owner, at)

    def ended(self, attempt_id: str) -> None:
        with self._lock:
            self._mine.pop(attempt_id, None)

    def avoid(self) -> tuple[str, ...]:
        """Owners without room now."""
        with self._lock:
            out: set[str] = set()
            for entry in self._limits:
                owners = set(entry["owners"])
                since = sum(1 for owner, at in self._mine.values()
                            if owner in owners and (self._at is None or at is None or at > self._at))
                if entry["room"] - since <= 0:
                    out |= owners
            return tuple(sorted(out))
