"""Says once that MongoDB is unreachable and once that it is back, timed from the last success."""
from __future__ import annotations

import logging
import threading
import time

from fsm.store.driver import StoreError, is_transient

log = logging.getLogger("suanwang.worker")


class Trouble:
    """Says once that MongoDB is unreachable, and once that it is back, timed from the last success
    (the first error is logged only after a call timed out, well after the connection was lost)."""

    def __init__(self):
        self._since: float | None = None  # the last success before the current trouble
        self._last_ok = time.monotonic()
        self._lock = threading.Lock()

    def failed(self, what: str, exc: Exception) -> None:
        with self._lock:
            first = self._since is None
            if first:
                self._since = self._last_ok
        if first:
            log.warning("MongoDB error in %s (%s: %s), %.1f s after the last successful call; retrying with "
                        "backoff", what, type(exc).__name__, str(exc).split(",")[0][:200],
                        time.monotonic() - self._since)
        else:
            log.debug("MongoDB still failing in %s: %s", what, exc)

    def ok(self) -> None:
        self._last_ok = time.monotonic()
        if self._since is not None:
            with self._lock:
                since, self._since = self._since, None
            if since is not None:
                log.info("MongoDB reachable again after %.1f s", self._last_ok - since)


def transient(exc: StoreError) -> bool:
    return is_transient(exc)
