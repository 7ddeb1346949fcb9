"""``{"__result__": "<task id>"}`` in a task's arguments becomes that dependency's result.

Done by the daemon before the attempt is handed to the executor child (the child never
talks to MongoDB), with one read for every reference of the task. A large result (stored
in GridFS as ``result_ref`` instead of ``result``) arrives as a ``pathlib.Path`` to a read-only
copy in the worker's data cache, like a ``{"__data__": id}`` argument.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from fsm.errors import SuanwangError
from fsm.references import RESULT, references, substitute
from fsm.store import Store


class ResultUnavailable(SuanwangError):
    """A referenced result cannot be handed to the task."""

    code, http_status = "result_unavailable", 409


def resolve(store: Store, args: list, kwargs: dict, fetch: Callable[[str], Path]) -> tuple[list, dict]:
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
        values[ident] = fetch(doc["result_ref"]["id"]) if doc.get("result_ref") else doc.get("result")
    resolvers = {RESULT: values.__getitem__}
    return substitute(args, resolvers), substitute(kwargs, resolvers)
