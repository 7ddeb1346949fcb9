"""The worker's own lease fence: every running attempt has a deadline on this machine's monotonic clock.

An attempt's lease on the server ends ``lease_s`` after the claim or the last renewal that
covered it was applied, which is after this worker sent it. So ``sent + lease_s - margin``
by the monotonic clock (never the wall clock) always comes before the server's lease end:
an attempt still not renewed by then is killed here, before the server may hand it to
another worker. ``Fence`` checks the deadlines in a thread of its own, so a MongoDB call
blocked elsewhere never delays the kill.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Iterable

log = logging.getLogger("suanwang.worker.fence")

#: The watch thread's longest sleep (it is woken early when an attempt starts).
CHECK_S = 0.5


class Fence:
    """``hold`` when a claim is sent, ``renewed`` after a renewal succeeds, ``drop`` when an attempt ends."""

    def __init__(self, lease_s: float, margin_s: float, on_expired: Callable[[str, float], None]):
        self.lease_s = lease_s
        self.margin_s = margin_s
        self.on_expired = on_expired  # (attempt id, seconds since it was last known held)
        self._held: dict[str, float] = {}  # attempt id -> monotonic time its last claim/renewal was sent
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(self, attempt_id: str, sent: float) -> None:
        with self._lock:
            self._held[attempt_id] = sent
        self._wake.set()

    def renewed(self, attempt_ids: Iterable[str], sent: float) -> None:
        """A renewal sent at ``sent`` was applied to these attempts."""
        with self._lock:
            for attempt_id in attempt_ids:
                if attempt_id in self._held:
                    self._held[attempt_id] = max(self._held[attempt_id], sent)

    def drop(self, attempt_id: str) -> None:
        with self._lock:
            self._held.pop(attempt_id, None)

    def deadline(self, attempt_id: str) -> float | None:
        with self._lock:
            sent = self._held.get(attempt_id)
        return None if sent is None else sent + self.lease_s - self.margin_s

    def expired(self, now: float | None = None) -> list[tuple[str, float]]:
        """Attempts past their deadline (removed from the fence), with how long since they were held."""
        now = time.monotonic() if now is None else now
        with self._lock:
            due = [(aid, now - sent) for aid, sent in self._held.items()
                   if now >= sent + self.lease_s - self.margin_s]
            for aid, _ in due:
                del self._held[aid]
        return due

    # ------------------------------------------------------------------ thread
    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="suanwang-fence", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            for attempt_id, silent_s in self.expired():
                try:
                    self.on_expired(attempt_id, silent_s)
                except Exception:  # noqa: BLE001 - the fence must outlive any one failure
                    log.exception("fencing attempt %s failed", attempt_id)
            with self._lock:
                soonest = min(self._held.values(), default=None)
            if soonest is None:  # nothing held: sleep until hold() or stop() (an idle worker costs nothing here)
                self._wake.wait()
            else:
                self._wake.wait(min(CHECK_S, max(0.0, soonest + self.lease_s - self.margin_s - time.monotonic())))
            self._wake.clear()
