"""Running one claimed attempt: resolve the function, fetch its data and dependency results,
hand it to the slot's child, and answer what the running task asks (child tasks).

Part of the worker daemon (``worker.daemon.Daemon`` mixes it in).
"""
from __future__ import annotations

import contextlib
import logging

from fsm.errors import LeaseLost, SuanwangError
from fsm.states import AttemptState
from fsm.store import Claim
from worker import largedata, upstream
from worker.executor import Outcome, RunSpec

log = logging.getLogger("suanwang.worker")

A = AttemptState


class AttemptRunner:
    """The daemon's running of attempts (uses ``resolver``, ``executor``, ``datacache``, ``store``, ``live``)."""

    def _execute(self, slot: int, claim: Claim) -> Outcome:
        task = claim.task
        try:
            spec = self.resolver.prepare(task["function"], task.get("version"))
        except SuanwangError as exc:  # FunctionNotFound, RegistryError: the message is for the user
            return Outcome(A.FAILED, error=exc.message)
        except Exception as exc:
            log.exception("task %s: resolving %s failed", claim.task_id, task["function"])
            return Outcome(A.FAILED, error=f"cannot prepare {task['function']}: {type(exc).__name__}: {exc}")
        if claim.attempt_id in self._doomed:
            return Outcome(A.CANCELLED, error="stopped before it started")
        if claim.attempt_id in self._fenced:  # claimed ahead, and its lease could not be renewed
            return Outcome(A.LOST, error="its lease could not be renewed before it started")
        with contextlib.ExitStack() as held:
            try:  # {"__data__": id} arguments become local paths, held while the attempt runs
                args, kwargs = held.enter_context(largedata.arguments(self.datacache, self.store, task))
            except Exception as exc:  # noqa: BLE001 - an unknown id is permanent, the rest retried
                log.warning("task %s: %s", claim.task_id, exc)
                return largedata.fetch_failed(exc)
            try:  # {"__result__": id} arguments become their dependencies' results
                args, kwargs = upstream.resolve(self.store, args, kwargs,
                                                lambda data_id: self.datacache.fetch(self.store, data_id))
            except SuanwangError as exc:
                return Outcome(A.FAILED, error=exc.message)
            if claim.attempt_id in self._doomed:  # cancelled while its data was fetched
                return Outcome(A.CANCELLED, error="stopped before it started")
            outcome = self.executor.run(slot, RunSpec(claim.attempt_id, spec.entrypoint, spec.path, args, kwargs,
                                                      float(task.get("timeout_s") or 3600.0), self._meta(claim)))
            self.live.last_progress(claim.task_id, claim.attempt_id, self.executor.children[slot].progress)
            return outcome

    # ------------------------------------------------ what a running task asks
    def _meta(self, claim: Claim) -> dict:
        """What ``current_task()`` tells the task about itself."""
        number = next((a.get("number") for a in claim.task.get("attempts", []) if a.get("id") == claim.attempt_id),
                      None)
        gpus = sorted(self.capacity.held.get(claim.attempt_id, (0, {}))[1])
        return {"task_id": claim.task_id, "attempt": number, "worker": self.config.name, "gpus": gpus}

    def publish_child(self, attempt_id: str, body) -> str | list[str]:
        """``current_task().submit`` / ``submit_many``: publish child tasks as the parent task's
        submitter, with that user's rights; returns the id (or the ids of a list)."""
        from scheduler import service  # the application layer (no Flask): only daemons that use it load it
        from scheduler.config import DEFAULT_PRIORITY_CAPS

        with self._lock:
            task_id = self._running.get(attempt_id, (None, None))[0]
        if task_id is None or attempt_id in self._doomed:
            raise LeaseLost(f"attempt {attempt_id} no longer runs here; the child task was not published")
        if not isinstance(body, (dict, list)):
            raise SuanwangError("a child task is a task body (an object), or a list of them")
        user = self._submitters.get(task_id)
        if user is None:  # read once per attempt: a fan-out of 1,000 children needs it 1,000 times
            user = self._submitters[task_id] = self.store.tasks.flow.submitter(task_id)
        if user is None:
            raise SuanwangError(f"task {task_id} has no recorded submitter role (published by an older server); "
                                "no child task can be published")
        # The server's priority caps are its own setting; children get the default ones.
        docs = service.publish(self.store, body, user, priority_caps=DEFAULT_PRIORITY_CAPS, parent=task_id)
        return [d["_id"] for d in docs] if isinstance(body, list) else docs[0]["_id"]
