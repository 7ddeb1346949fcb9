"""Inside a running task: ``current_task()`` (re-exported as ``suanwang.current_task``).

This module runs in the executor's child process. It imports only the standard library
and ``fsm.bodies``, so ``from suanwang import current_task`` stays cheap. The child talks
to its daemon over the attempt's pipe: ``progress`` is sent and forgotten (the daemon keeps
the latest and stores it with the next heartbeat); ``submit`` waits for the daemon's answer
(the daemon publishes through ``scheduler.service.publish`` as the task's submitter, with
``parent`` set). ``logger`` writes to the child's stderr, whose tail the heartbeat stores.
"""
from __future__ import annotations

import inspect
import logging
import math
import os
import threading
from typing import Any

from fsm.bodies import task_body

#: Message kinds the child sends while an attempt runs (the daemon's ``worker.requests``).
PROGRESS, SUBMIT = "progress", "submit"
MAX_MESSAGE = 1000


class NotInTask(RuntimeError):
    """``current_task()`` was called outside a task run by a Suanwang worker."""


class SubmitFailed(RuntimeError):
    """The server refused a child task; the message says why (as the API would)."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{message} ({code})")
        self.code, self.message = code, message


class TaskContext:
    """What a running task knows about itself, and how it talks to the system."""

    def __init__(self, conn, lock: threading.Lock, attempt_id: str, meta: dict):
        self._conn, self._lock = conn, lock
        self.attempt_id = attempt_id
        #: The task's id.
        self.id: str | None = meta.get("task_id")
        #: The attempt's number (1 for the first try, 2 for the first retry, ...).
        self.attempt: int | None = meta.get("attempt")
        #: The name of the worker running it.
        self.worker: str | None = meta.get("worker")
        self._logger: logging.Logger | None = None

    def progress(self, fraction: float, message: str | None = None) -> None:
        """Say how far the task has got (0.0 to 1.0); shown within a heartbeat on the task."""
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not math.isfinite(fraction):
            raise ValueError(f"progress fraction must be a number from 0 to 1, got {fraction!r}")
        if message is not None and not isinstance(message, str):
            raise ValueError(f"progress message must be a string, got {type(message).__name__}")
        payload = {"fraction": min(1.0, max(0.0, float(fraction))),
                   "message": None if message is None else message[:MAX_MESSAGE]}
        with self._lock:
            self._conn.send({"request": PROGRESS, "attempt_id": self.attempt_id, **payload})

    def submit(self, function: str, *args: Any, **options: Any) -> str:
        """Publish a child task (its ``parent`` is this task) and return its id.

        ``options`` are task fields (``priority``, ``depends_on``, ``requires``, ``id``, ...);
        any other keyword is passed to the function (as is ``kwargs={...}``).
        """
        return self._ask(task_body(function, args, options))

    def submit_many(self, bodies: list[dict]) -> list[str]:
        """Publish task bodies (``{"function", "args", ...}``, as the API takes them) as children in
        one request, all or none; ids chosen in ``id`` may be named by ``depends_on`` of the others."""
        if not isinstance(bodies, list) or not bodies:
            raise ValueError("submit_many takes a non-empty list of task bodies")
        return self._ask(bodies)

    def _ask(self, body):
        with self._lock:
            self._conn.send({"request": SUBMIT, "attempt_id": self.attempt_id, "body": body})
            answer = self._conn.recv()
        if answer[0] == "ok":
            return answer[1]
        raise SubmitFailed(answer[1], answer[2])

    @property
    def logger(self) -> logging.Logger:
        """A logger whose lines reach the task's log tail with every heartbeat."""
        if self._logger is None:
            self._logger = task_logger()
        return self._logger


_current: TaskContext | None = None


def current_task() -> TaskContext:
    """The task running in this process; raises ``NotInTask`` elsewhere."""
    if _current is None:
        raise NotInTask("current_task() works only inside a task run by a Suanwang worker")
    return _current


def task_logger() -> logging.Logger:
    logger = logging.getLogger("suanwang.task")
    if not logger.handlers:
        handler = logging.StreamHandler()  # the child's stderr: the slot's log file
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


def begin(conn, lock: threading.Lock, attempt_id: str, meta: dict) -> None:
    global _current
    _current = TaskContext(conn, lock, attempt_id, meta)
    if "gpus" in meta:  # only the GPUs this attempt was given (none: it sees none)
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in meta["gpus"])


def end() -> None:
    global _current
    _current = None


def call(func, args: list, kwargs: dict) -> Any:
    """Call the entrypoint; an ``async def`` one is awaited on a fresh event loop."""
    result = func(*args, **kwargs)
    if inspect.isawaitable(result):
        import asyncio

        async def wait():
            return await result

        result = asyncio.run(wait())
    return result
