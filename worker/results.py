"""``{"__result__": "<task id>"}`` in a task's arguments becomes that dependency's result.

Done by the daemon before the attempt is handed to the executor child (the child never
talks to MongoDB), with one read for every reference of the task. A large result (stored
by the data feature as ``result_ref`` instead of ``result``) arrives as a ``pathlib.Path``
from ``worker.datacache.fetch_result``; a worker without that feature says so clearly.
"""
from __future__ import annotations

import importlib
from typing import Any

from fsm.errors import SuanwangError
from fsm.references import RESULT, references, substitute
from fsm.store import Store


class ResultUnavailable(SuanwangError):
    """A referenced result cannot be handed to the task."""

    code, http_status = "result_unavailable", 409


def resolve(store: Store, args: list, kwargs: dict, cache_dir: str | None = None) -> tuple[list, dict]:
    """``args`` and ``kwargs`` with every ``__result__`` reference replaced by its task's result."""
    wanted = {ident for marker, ident in references([args, kwargs]) if marker == RESULT}
    if not wanted:
        return args, kwargs
    docs = store.tasks.flow.results(wanted)
    values: dict[str, Any] = {}
    for ident in wanted:
        doc = docs.get(ident)
        if doc is None:
            raise ResultUnavailable(f"{{\"__result__\": \"{ident}\"}}: no such task")
        if doc["status"] != "succeeded":
            raise ResultUnavailable(f"{{\"__result__\": \"{ident}\"}}: that task is {doc['status']}, not succeeded")
        values[ident] = large_result(store, ident, doc["result_ref"], cache_dir) if doc.get("result_ref") \
            else doc.get("result")
    resolvers = {RESULT: values.__getitem__}
    return substitute(args, resolvers), substitute(kwargs, resolvers)


def large_result(store: Store, task_id: str, ref: Any, cache_dir: str | None):
    """A result stored in GridFS, as a local file (the data feature's cache)."""
    try:
        fetch = importlib.import_module("worker.datacache").fetch_result
    except (ImportError, AttributeError):
        raise ResultUnavailable(f"task {task_id}'s result is stored as a large result (result_ref), and this "
                                "worker cannot fetch it: worker.datacache.fetch_result is missing "
                                "(upgrade the worker to a version with large-data support)") from None
    return fetch(store, ref, cache_dir)
