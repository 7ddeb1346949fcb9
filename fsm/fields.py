"""The first check of every JSON request body: an object, with no field the verb does not know."""
from __future__ import annotations

from typing import Any, Iterable

from fsm.errors import ValidationError


def json_object(body: Any, allowed: Iterable[str], what: str = "the body", example: str | None = None) -> dict:
    """``body`` itself when it is an object whose fields are all in ``allowed``; else a 422 naming
    the first unknown field and listing the allowed ones."""
    if not isinstance(body, dict):
        like = f" like {example}" if example else ""
        raise ValidationError(f"{what} must be a JSON object{like}, got {type(body).__name__}")
    allowed = set(allowed)
    unknown = sorted(set(body) - allowed, key=str)
    if unknown:
        raise ValidationError(f"unknown field(s): {', '.join(map(str, unknown))} (allowed: {', '.join(sorted(allowed))})",
                              field=str(unknown[0]))
    return body
