"""One task body from a Python call: ``submit("fn", *args, priority=5, x=1)`` (pure, no I/O).

Used by ``current_task().submit`` in a running task and by the SDK, so both read the same:
keywords that name a task field are task options; every other keyword goes to the function
(as does an explicit ``kwargs={...}``, for a function parameter that shares a field's name).
"""
from __future__ import annotations

from typing import Any, Iterable

#: Keywords taken as task fields (see ``fsm.store.spec.ALLOWED``).
OPTIONS = frozenset({"id", "version", "priority", "is_enabled", "redundancy", "quorum", "timeout_s",
                     "max_retries", "retry_backoff_s", "requires", "run_after", "delay_s", "depends_on"})


def task_body(function: str, args: Iterable[Any], options: dict[str, Any]) -> dict:
    body: dict[str, Any] = {"function": function, "args": list(args)}
    kwargs = dict(options.pop("kwargs", None) or {}) if "kwargs" in options else {}
    for key, value in options.items():
        if key in OPTIONS:
            if value is not None:
                body[key] = list(value) if key == "depends_on" else value
        else:
            kwargs[key] = value
    if kwargs:
        body["kwargs"] = kwargs
    return body
