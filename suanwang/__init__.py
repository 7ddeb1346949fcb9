"""Suanwang (算网): the command line, the only layer above everything else.

Task code may ``from suanwang import Permanent`` (cheap: it imports only ``fsm.errors``)
and raise it to fail a task at once, without retries.

Also the names a Python program uses, imported lazily so that a task importing
``current_task`` inside an executor child loads neither HTTP client::

    from suanwang import current_task      # inside a running task (worker.context)
    from suanwang import Client, AsyncClient, TaskFailed   # the SDK (suanwang.sdk)
"""
from __future__ import annotations

import importlib

from fsm.errors import Permanent

_LAZY = {"current_task": "worker.context", "Client": "suanwang.sdk", "AsyncClient": "suanwang.sdk",
         "TaskFailed": "suanwang.sdk", "TaskHandle": "suanwang.sdk"}

__all__ = sorted([*_LAZY, "Permanent"])


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'suanwang' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
