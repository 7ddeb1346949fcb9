"""The heartbeat's report of running attempts: their progress and log tails, when they changed."""
from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from worker.daemon import Daemon

log = logging.getLogger("suanwang.worker.live")


class LiveReporter:
    """``report()`` writes what changed since the last heartbeat, one update per attempt."""

    def __init__(self, daemon: "Daemon"):
        self.daemon = daemon
        self._sent: dict[str, tuple] = {}  # attempt id -> (progress, digest of the log tail) last stored

    def report(self) -> int:
        d = self.daemon
        written, running = 0, d.running_slots()
        for attempt_id, (task_id, slot) in running.items():
            child = d.executor.children[slot]
            if child.attempt != attempt_id:
                continue
            progress, logs = child.progress, child._read_logs()
            digest = hashlib.blake2b(logs.encode(errors="replace"), digest_size=8).digest()
            last = self._sent.get(attempt_id, (None, None))
            send_progress = progress if progress is not None and progress != last[0] else None
            send_logs = logs if logs and digest != last[1] else None
            if send_progress is None and send_logs is None:
                continue
            d.store.live.report(task_id, attempt_id, d.config.name, progress=send_progress, logs=send_logs)
            self._sent[attempt_id] = (progress, digest)
            written += 1
        for gone in set(self._sent) - set(running):
            del self._sent[gone]
        return written

    def last_progress(self, task_id: str, attempt_id: str, progress: dict | None) -> None:
        """The attempt ended: store its last progress if no heartbeat did (before the outcome is written)."""
        sent = self._sent.pop(attempt_id, (None, None))[0]
        if progress is None or progress == sent:
            return
        try:
            self.daemon.store.live.report(task_id, attempt_id, self.daemon.config.name, progress=progress)
        except Exception as exc:  # only a display: the outcome matters more
            log.warning("task %s: could not store its last progress: %s", task_id, exc)
