"""References inside a task's arguments (pure; used by the server at publish and the worker at run).

A task's ``args`` and ``kwargs`` are JSON data. A one-key object whose key is a marker
(``{"__data__": "<id>"}``, ``{"__result__": "<task id>"}``) stands for a value that the worker
fetches before handing the arguments to the executor child: the child itself never talks to
MongoDB. ``references`` finds them (the server checks them at publish), ``substitute`` swaps
each for what its resolver returns.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

#: Marker keys, each naming what the string beside it refers to.
DATA = "__data__"
RESULT = "__result__"
MARKERS = (DATA, RESULT)

Resolver = Callable[[str], Any]


def marker_of(value: Any) -> tuple[str, str] | None:
    """``(marker, id)`` when ``value`` is a reference object, else None."""
    if isinstance(value, dict) and len(value) == 1:
        (key, ref), = value.items()
        if key in MARKERS and isinstance(ref, str):
            return key, ref
    return None


def references(value: Any) -> Iterator[tuple[str, str]]:
    """Every ``(marker, id)`` anywhere inside ``value`` (lists and objects, any depth)."""
    stack = [value]
    while stack:
        item = stack.pop()
        ref = marker_of(item)
        if ref is not None:
            yield ref
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def substitute(value: Any, resolvers: dict[str, Resolver]) -> Any:
    """A copy of ``value`` with each reference replaced by ``resolvers[marker](id)``.

    Markers without a resolver are left as they are.
    """
    ref = marker_of(value)
    if ref is not None:
        marker, ident = ref
        return resolvers[marker](ident) if marker in resolvers else value
    if isinstance(value, dict):
        return {key: substitute(item, resolvers) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute(item, resolvers) for item in value]
    return value
