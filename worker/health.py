"""The worker's side of "machines judged by their results".

Slot threads ``note`` each attempt's outcome; the heartbeat ``flush``es them into
``machine_stats`` (one small write per function that ran) and learns which functions this
machine is quarantined for (its claims skip them) and which an online peer runs clearly
faster (their fresh tasks are left to that peer for a moment). It reads those back only when
an outcome quarantined this machine, a quarantine ends, or every ``REFRESH_S``: outcomes alone
cost one write per function, and an idle worker's heartbeat costs nothing extra.
"""
from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from fsm.health import HealthPolicy
from fsm.states import AttemptState
from fsm.store import Store

log = logging.getLogger("suanwang.worker.health")

A = AttemptState
#: Outcomes that say something about the machine (a cancel or a drain says nothing).
JUDGED = {A.SUCCEEDED: True, A.FAILED: False, A.TIMED_OUT: False, A.CRASHED: False}
REFRESH_S = 30.0


class HealthTracker:
    def __init__(self, worker: str, policy: HealthPolicy = HealthPolicy()):
        self.worker = worker
        self.policy = policy.validate()
        self._outcomes: list[tuple[str, bool, float]] = []
        self._lock = threading.Lock()
        self._refreshed = float("-inf")
        self.quarantined: list[dict] = []

    def note(self, function: str, state: AttemptState, seconds: float) -> None:
        ok = JUDGED.get(AttemptState(state))
        if ok is not None:
            with self._lock:
                self._outcomes.append((function, ok, seconds))

    def flush(self, store: Store) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        """Store the outcomes; returns (avoid_functions, slow_functions) when refreshed, else None."""
        with self._lock:
            batch, self._outcomes = self._outcomes, []
        now = time.monotonic()
        if not batch and now - self._refreshed < REFRESH_S and not self._expired(store):
            return None
        try:
            fresh = store.machines.record(self.worker, batch, self.policy) if batch else []
            for q in fresh:
                log.warning("worker %s is quarantined for %s until %s: %s", self.worker, q["function"],
                            q["until"].isoformat(timespec="seconds"), q["reason"])
        except Exception:
            with self._lock:  # keep them for the next heartbeat
                self._outcomes = batch + self._outcomes
            raise
        # the reads below (quarantines, online peers, their times) only when something may have changed
        if not fresh and now - self._refreshed < REFRESH_S and not self._expired(store):
            return None
        self.quarantined = store.machines.quarantined(self.worker)
        online = {w["_id"] for w in store.workers.list({"state": "online"})}
        slow = tuple(store.machines.slow_functions(self.worker, online))
        self._refreshed = now
        return tuple(sorted(q["function"] for q in self.quarantined)), slow

    def _expired(self, store: Store) -> bool:
        """A quarantine held here may have ended (checked again at its end, not only every REFRESH_S),
        by the server's clock (``quarantined_until`` is the server's time, never this machine's)."""
        if not self.quarantined or time.monotonic() - self._refreshed < 1.0:
            return False
        soon = store.now() + timedelta(seconds=1)
        return any(q["quarantined_until"] <= soon for q in self.quarantined)

    def view(self) -> list[dict]:
        """For the whoami: the quarantines in force."""
        return [{"function": q["function"], "until": q["quarantined_until"], "reason": q.get("quarantine_reason")}
                for q in self.quarantined]
