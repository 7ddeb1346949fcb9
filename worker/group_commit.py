"""Group commit: the successes that slots hand over while a write is in flight share the next one.

Every attempt end is written majority-acknowledged and journaled, so one write per outcome waits
for one journal flush. A single thread takes whatever successes of run-once tasks are waiting
and records them with one bulk write (``TaskStore.finish_successes``), one read back and one
counters increment. Everything else (failures, large results, redundant tasks, a write that
matched nothing or failed) goes the one-by-one way (``Recorder._record``), which decides each
from the stored task and retries until the store accepts or refuses it.
"""
from __future__ import annotations

import logging
import threading
from concurrent.futures import Future

from fsm.states import AttemptState
from fsm.store import Claim, Success
from fsm.store.driver import StoreError as PyMongoError
from worker.executor import Outcome

log = logging.getLogger("suanwang.worker")

#: Most outcomes in one write.
MAX_GROUP = 64


def groupable(claim: Claim, outcome: Outcome) -> bool:
    """A small success of a task run once: its write needs no read of the task."""
    return (outcome.state == AttemptState.SUCCEEDED and outcome.result_bytes is None and outcome.result_path is None
            and (claim.task.get("redundancy") or 1) == 1)


class GroupCommit:
    """The daemon's group-commit thread (``daemon``: ``store``, ``config``, ``_record``, ``_recorded``)."""

    def __init__(self, daemon):
        self.daemon = daemon
        self._items: list[tuple[Claim, Outcome, Future]] = []
        self._cv = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None

    def submit(self, claim: Claim, outcome: Outcome) -> Future:
        done: Future = Future()
        with self._cv:
            closed = self._closed
            if not closed and self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="suanwang-group-commit", daemon=True)
                self._thread.start()
            if not closed:
                self._items.append((claim, outcome, done))
                self._cv.notify()
        if closed:  # the daemon is closing: written here and now
            self._write([(claim, outcome, done)])
        return done

    def close(self) -> None:
        """Write what is waiting, then stop."""
        with self._cv:
            self._closed = True
            self._cv.notify()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _loop(self) -> None:
        while True:
            with self._cv:
                self._cv.wait_for(lambda: self._items or self._closed)
                if not self._items:
                    return
                group, self._items = self._items[:MAX_GROUP], self._items[MAX_GROUP:]
            try:
                self._write(group)
            except BaseException as exc:  # never strand a slot waiting on its outcome
                log.exception("group commit failed")
                for _claim, _outcome, done in group:
                    if not done.done():
                        done.set_exception(exc)

    def _write(self, group: list[tuple[Claim, Outcome, Future]]) -> None:
        daemon = self.daemon
        fenced = daemon.fenced_ids()
        ends = {claim.attempt_id: Success(claim.task_id, claim.attempt_id, outcome.result, outcome.logs or None,
                                          usage={"cpu_s": outcome.cpu_s, "gpu_s": outcome.gpu_s})
                for claim, outcome, _ in group if claim.attempt_id not in fenced}
        left = set(ends)
        if ends:
            try:
                left = {end.attempt_id for end in daemon.store.tasks.finish_successes(list(ends.values()),
                                                                                       daemon.config.name)}
                daemon.trouble.ok()
            except PyMongoError as exc:  # one by one, each retried until stored or refused
                daemon.trouble.failed("recording outcomes", exc)
        for claim, outcome, done in group:
            try:
                if claim.attempt_id in left or claim.attempt_id not in ends:
                    daemon._record(claim, outcome, leave=True)
                else:
                    daemon._recorded(claim, outcome, leave=True)
            finally:
                done.set_result(None)
