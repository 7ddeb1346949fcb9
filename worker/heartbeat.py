"""The daemon's heartbeat: a thread of its own, so a busy or stuck attempt never delays it.

Every ``heartbeat_s``: renew the leases of everything this worker runs, stop the attempts
the store no longer counts as ours (cancelled, lease lost), refresh the whoami (resources,
running attempts) and read back the worker's stored state (an admin may ask it to drain).
Every ``sample_every_s`` it also stores a small resource sample for the charts.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

from fsm.store import Store
from fsm.store.driver import StoreError as PyMongoError
from fsm.store.workers import DRAINING, OFFLINE, ONLINE
from worker import stats
from worker.config import WorkerConfig

log = logging.getLogger("suanwang.worker.heartbeat")


class HeartbeatHost(Protocol):
    """What the heartbeat needs of the daemon (``worker.daemon.Daemon``), and nothing more."""

    config: WorkerConfig
    store: Store
    fence: Any  # worker.fence.Fence: renewed(held, sent_at)
    live: Any  # worker.live.LiveReporter: report()
    trouble: Any  # worker.trouble.Trouble: ok(), failed(what, exc)

    @property
    def stopping(self) -> bool: ...

    def running_ids(self) -> list[str]: ...

    def lost(self, attempt_id: str) -> None: ...

    def set_admin_draining(self, draining: bool) -> None: ...

    def set_quota_room(self, room: dict | None) -> None: ...

    def check_temperature(self, hottest: tuple[str, float] | None) -> None: ...

    def describe(self) -> dict[str, Any]: ...


class Heartbeat:
    """``beat()`` is one heartbeat (tests call it directly); ``start()`` runs it periodically."""

    def __init__(self, daemon: HeartbeatHost):
        self.daemon = daemon
        self.config = daemon.config
        self.store = daemon.store
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_sample = float("-inf")
        self.beats = 0

    def whoami(self, snapshot: dict | None = None) -> dict:
        """What the ``workers`` document says about this daemon (never its ``state``: an admin owns that)."""
        who = dict(snapshot if snapshot is not None else stats.collect(self.config.cache_dir))
        who.update(self.daemon.describe())
        return who

    def beat(self) -> dict | None:
        """One heartbeat; returns the stored worker document. MongoDB errors propagate."""
        d, name = self.daemon, self.config.name
        running = d.running_ids()
        if running:
            sent = time.monotonic()  # the renewed leases end lease_s after the server applied them
            self.store.tasks.renew_leases(name, self.config.lease_s)
            held = self.store.tasks.still_held(name, running)
            d.fence.renewed(held, sent)
            for attempt_id in running:
                if attempt_id not in held:  # cancelled, decided elsewhere, or reaped: stop it now
                    d.lost(attempt_id)
            try:  # progress and log tails of the running attempts, when they changed
                d.live.report()
            except PyMongoError:
                raise
            except Exception:  # a bug in the report must not cost the leases
                log.exception("reporting running attempts failed")
        snapshot = stats.collect(self.config.cache_dir)
        doc = self.store.workers.heartbeat(name, self.whoami(snapshot))
        if doc is None:  # the document was removed (an admin cleaned up): claim the name again
            log.warning("worker %s: its document disappeared; registering again", name)
            doc = self.store.workers.register(name, self.whoami(snapshot), stale_after_s=self.config.lease_s,
                                              holder_gone=stats.left_by_a_dead_daemon)
        state = doc.get("state")
        if state == OFFLINE and not d.stopping:
            # marked offline while we were unreachable (a long pause, a partition): we are back
            log.info("worker %s was marked offline while unreachable; back online", name)
            doc = self.store.workers.set_state(name, ONLINE)
            state = ONLINE
        d.set_admin_draining(state == DRAINING)
        d.set_quota_room(doc.get("quota_room"))  # the room left under running quotas (the leader's count)
        d.check_temperature(stats.hottest(snapshot))
        now = time.monotonic()
        if now - self._last_sample >= self.config.sample_every_s:
            self._last_sample = now
            self.store.workers.record_sample(name, stats.sample(snapshot))
        self.beats += 1
        return doc

    # ------------------------------------------------------------------ thread
    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="suanwang-heartbeat", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        period = self.config.heartbeat_s
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                self.beat()
                self.daemon.trouble.ok()
            except PyMongoError as exc:
                self.daemon.trouble.failed("heartbeat", exc)
            except Exception:  # a bug here must not stop the heartbeat: leases depend on it
                log.exception("heartbeat failed")
            next_at = max(next_at + period, time.monotonic() + period / 10)
            self._stop.wait(max(0.0, next_at - time.monotonic()))
