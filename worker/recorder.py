"""Recording how attempts ended: the outcome is written until the store accepts or refuses it.

Part of the worker daemon (``worker.daemon.Daemon`` mixes it in): it retries while MongoDB is
away, turns an outcome the store cannot hold into a failure that says why, reports an attempt
this worker fenced itself as lost, and frees what the attempt held.
"""
from __future__ import annotations

import logging
import os
import shutil

from fsm.errors import Conflict, InvalidTransition, LeaseLost
from fsm.states import AttemptState
from fsm.store import Claim
from fsm.store.driver import UNSTORABLE, StoreError as PyMongoError
from worker import largedata
from worker.executor import Outcome
from worker.trouble import transient

log = logging.getLogger("suanwang.worker")

A = AttemptState
#: Backoff after a MongoDB error: from, to.
RETRY_START_S, RETRY_MAX_S = 0.2, 5.0


class Recorder:
    """The daemon's recording of outcomes (uses ``store``, ``config``, ``trouble``, ``health``, ``fence``)."""

    def _record(self, claim: Claim, outcome: Outcome, leave: bool) -> None:
        stored = False
        try:
            self._finish(claim, outcome)
            stored = True
        except Exception:
            log.exception("task %s: recording attempt %s failed; its lease will expire", claim.task_id,
                          claim.attempt_id)
        finally:
            self._recorded(claim, outcome, leave, judge=stored)

    def _recorded(self, claim: Claim, outcome: Outcome, leave: bool, judge: bool = True) -> None:
        """The outcome is stored (or given up): judge the machine by it and free what the attempt held."""
        try:
            if judge:
                self.health.note(claim.task["function"], outcome.state, outcome.seconds)
        finally:
            self._release(claim)
            if outcome.workdir:
                try:
                    os.rmdir(outcome.workdir)  # most attempts leave it empty: one system call
                except OSError:
                    shutil.rmtree(outcome.workdir, ignore_errors=True)
            self.done += 1
            if leave:
                self._leave(recorded=True)

    def _finish(self, claim: Claim, outcome: Outcome) -> None:
        """Write the outcome, retrying while MongoDB is away, until it is stored or refused."""
        task_id, attempt_id = claim.task_id, claim.attempt_id
        usage = {"cpu_s": outcome.cpu_s, "gpu_s": outcome.gpu_s}  # measured by the executor, kept for billing
        outcome = self._fenced_outcome(attempt_id, outcome)
        if outcome.state == A.CANCELLED:
            if not self._aborting.is_set():
                log.info("task %s: attempt %s stopped (cancelled, or its lease was lost)", task_id, attempt_id)
                return  # the store already says how it ended
            outcome = Outcome(A.LOST, error=f"worker {self.config.name} stopped before the attempt finished "
                                            f"(drain timeout {self.config.drain_timeout_s:g} s)", logs=outcome.logs)
        outcome = largedata.store_result(self.store, claim.task, attempt_id, outcome, self._aborting)
        delay, permanent = RETRY_START_S, 0
        while True:
            try:
                self.store.tasks.finish_attempt(
                    task_id, attempt_id, outcome.state, result=outcome.result, error=outcome.error,
                    traceback=outcome.traceback, logs=outcome.logs or None, worker=self.config.name,
                    result_ref=outcome.result_ref, permanent=outcome.permanent,
                    usage=usage)
                self.trouble.ok()
                if outcome.state != A.SUCCEEDED:
                    log.info("task %s (%s): attempt %s %s: %s", task_id, claim.task.get("function"), attempt_id,
                             outcome.state.value, outcome.error)
                return
            except (LeaseLost, InvalidTransition) as exc:
                log.info("task %s: %s", task_id, exc)
                largedata.drop_result(self.store, outcome)
                return
            except Conflict as exc:
                log.warning("task %s: %s; its lease will expire and it will be retried", task_id, exc)
                return
            except UNSTORABLE as exc:
                outcome = self._unstorable(outcome, exc)
                if outcome is None:
                    log.error("task %s: attempt %s cannot be recorded (%s); its lease will expire", task_id,
                              attempt_id, exc)
                    return
            except PyMongoError as exc:
                if not transient(exc):
                    permanent += 1
                    outcome = self._unstorable(outcome, exc) if permanent <= 2 else None
                    if outcome is None:
                        log.error("task %s: attempt %s cannot be recorded (%s); its lease will expire", task_id,
                                  attempt_id, exc)
                        return
                    continue
                self.trouble.failed(f"recording task {task_id}", exc)
                if self._aborting.is_set():
                    log.error("task %s: giving up recording attempt %s (stopping); its lease will expire",
                              task_id, attempt_id)
                    return
                self._aborting.wait(delay)
                delay = min(delay * 2, RETRY_MAX_S)

    @staticmethod
    def _unstorable(outcome: Outcome, exc: Exception) -> Outcome | None:
        """The store refused the outcome's data: record a failure that says why, once."""
        if outcome.state == A.SUCCEEDED:
            return Outcome(A.FAILED, error=f"the result cannot be stored: {type(exc).__name__}: {str(exc)[:300]}",
                           logs=(outcome.logs or "")[-2000:], permanent=True)
        if outcome.traceback or outcome.logs:  # drop the bulky parts and try once more
            return Outcome(outcome.state, error=(outcome.error or "")[:2000], permanent=outcome.permanent)
        return None

    # ------------------------------------------------------- self-fencing
    def _fence_expired(self, attempt_id: str, silent_s: float) -> None:
        """The fence's deadline passed without a renewal: kill the attempt before its lease ends on
        the server (another worker may get it then); it is recorded as lost once MongoDB answers."""
        with self._lock:
            if attempt_id not in self._running:
                return
            self._fenced[attempt_id] = (f"worker {self.config.name} could not renew its lease for {silent_s:.1f} s "
                                        f"(lease {self.config.lease_s:g} s); killed by its own deadline")
        if self.executor.kill(attempt_id, "lease could not be renewed"):
            log.warning("attempt %s: no lease renewal for %.1f s; killed before its lease ends (self-fencing)",
                        attempt_id, silent_s)

    def fenced_ids(self) -> set[str]:
        with self._lock:
            return set(self._fenced)

    def _fenced_outcome(self, attempt_id: str, outcome: Outcome) -> Outcome:
        """An attempt this worker fenced is reported as lost (retried at once), whatever it returned."""
        with self._lock:
            why = self._fenced.pop(attempt_id, None)
        if why is None:
            return outcome
        return Outcome(A.LOST, error=why, logs=outcome.logs)
