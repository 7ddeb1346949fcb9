"""The daemon's side of what a running task asks for (``worker.context`` is the child's side).

While an attempt runs, its child may send, over the attempt's pipe:

``{"request": "progress", "fraction", "message"}``
    kept on the slot (``Child.progress``); the heartbeat stores it on the task.
``{"request": "submit", "body"}``
    a child task (or a list of them): published by ``submit`` (the daemon's ``publish_child``, which calls
    ``scheduler.service.publish`` as the parent task's submitter, with ``parent`` set);
    answered ``("ok", id or [ids])`` or ``("error", code, message)``.

This module is imported by the executor's children too (through ``worker.executor``), so it
imports nothing heavy at module level.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

log = logging.getLogger("suanwang.worker.requests")

#: ``publish_child(attempt_id, body or [bodies]) -> task id or [ids]``; raises ``SuanwangError`` to refuse.
Publisher = Callable[[str, Any], Any]


class ChildRequests:
    """Answers one slot's requests; ``submit`` is refused when no publisher is given (bare executors)."""

    def __init__(self, publish_child: Publisher | None = None):
        self.publish_child = publish_child

    def handle(self, child, attempt_id: str, message: dict, conn) -> None:
        kind = message.get("request")
        if message.get("attempt_id") != attempt_id:
            log.warning("slot %d: a request for attempt %s arrived during %s; ignored", child.index,
                        message.get("attempt_id"), attempt_id)
            if kind == "submit":
                conn.send(("error", "invalid", "the request does not belong to the running attempt"))
            return
        if kind == "progress":
            child.progress = {"fraction": message.get("fraction"), "message": message.get("message")}
        elif kind == "submit":
            conn.send(self._submit(attempt_id, message.get("body")))
        else:
            log.warning("slot %d: unknown request %r from the task; ignored", child.index, kind)

    def _submit(self, attempt_id: str, body) -> tuple:
        if self.publish_child is None:
            return ("error", "unavailable", "this executor has no daemon to publish child tasks through")
        from fsm.errors import SuanwangError

        try:
            return ("ok", self.publish_child(attempt_id, body))
        except SuanwangError as exc:
            return ("error", exc.code, exc.message)
        except Exception as exc:  # the store is away, or a bug: the task sees why, the daemon logs it
            log.exception("attempt %s: publishing a child task failed", attempt_id)
            return ("error", "unavailable", f"could not publish the child task: {type(exc).__name__}: {exc}")
