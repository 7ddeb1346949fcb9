"""Query-string integers of the listings (limit, skip): one parser, one message (no Flask here)."""
from __future__ import annotations

from fsm.errors import ValidationError


def int_arg(args: dict, name: str, default: int, lo: int, hi: int) -> int:
    """``args[name]`` as an integer from ``lo`` to ``hi`` (``default`` when absent); 422 naming it otherwise."""
    raw = args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ValidationError(f"{name} must be an integer, got {raw!r}", field=name) from None
    if not lo <= value <= hi:
        raise ValidationError(f"{name} must be between {lo} and {hi}, got {value}", field=name)
    return value
