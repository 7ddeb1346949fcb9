"""Small helpers for the values the task verbs write."""
from __future__ import annotations

from datetime import timezone
from typing import Any

from bson import ObjectId


def lit(value: Any) -> dict:
    """Wrap data for an update pipeline, so a string like "$x" stays a string."""
    return {"$literal": value}


def _aware(when):
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def new_id() -> str:
    return str(ObjectId())
