"""Validation of a published task: every bad field is named, nothing is guessed.

``validate(body)`` turns one JSON body into the fields of a new task document, or raises
``ValidationError`` / ``PayloadTooLarge`` naming the problem. It does not know which
functions exist: the service layer asks the registry before publishing.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import bson

from fsm.errors import PayloadTooLarge, ValidationError
from fsm.references import RESULT, references

#: Largest args + kwargs of one task, encoded as BSON.
MAX_PAYLOAD_BYTES = 1 << 20
MAX_REDUNDANCY = 16
MAX_RETRIES = 100
MAX_TIMEOUT_S = 7 * 86400
#: Most dependencies one task may wait for.
MAX_DEPENDS_ON = 1000
PRIORITY_RANGE = (-1_000_000, 1_000_000)
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,199}$")
TAG_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

ALLOWED = {"id", "function", "version", "args", "kwargs", "priority", "is_enabled", "redundancy", "quorum",
           "timeout_s", "max_retries", "retry_backoff_s", "requires", "run_after", "delay_s",
           "depends_on"}
REQUIRES_ALLOWED = {"gpus", "mem_gb", "tags"}


@dataclass(frozen=True)
class Defaults:
    """Values a task gets for the fields its body leaves out."""

    priority: int = 0
    redundancy: int = 1
    timeout_s: float = 3600.0
    max_retries: int = 3
    retry_backoff_s: float = 1.0


def _int(body: dict, name: str, default: int, lo: int, hi: int) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"'{name}' must be an integer, got {type(value).__name__}", field=name)
    if not lo <= value <= hi:
        raise ValidationError(f"'{name}' must be between {lo} and {hi}, got {value}", field=name)
    return value


def _number(body: dict, name: str, default: float, lo: float, hi: float) -> float:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ValidationError(f"'{name}' must be a number, got {type(value).__name__}", field=name)
    if not lo <= value <= hi:
        raise ValidationError(f"'{name}' must be between {lo} and {hi}, got {value}", field=name)
    return float(value)


def _requires(value: Any) -> dict:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ValidationError("'requires' must be an object like {\"gpus\": 0, \"mem_gb\": 0, \"tags\": []}",
                              field="requires")
    unknown = set(value) - REQUIRES_ALLOWED
    if unknown:
        raise ValidationError(f"unknown field(s) in 'requires': {', '.join(sorted(unknown))}", field="requires")
    tags = value.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) and TAG_PATTERN.match(t) for t in tags):
        raise ValidationError("'requires.tags' must be a list of tag names (letters, digits, . _ -)",
                              field="requires.tags")
    return {"gpus": _int(value, "gpus", 0, 0, 64), "mem_gb": _number(value, "mem_gb", 0, 0, 1 << 20),
            "tags": sorted(set(tags))}


def _run_after(body: dict) -> datetime | None:
    if "run_after" in body and "delay_s" in body:
        raise ValidationError("give either 'run_after' or 'delay_s', not both", field="run_after")
    if "delay_s" in body:
        from datetime import timedelta

        return datetime.now(timezone.utc) + timedelta(seconds=_number(body, "delay_s", 0, 0, 365 * 86400))
    value = body.get("run_after")
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError("'run_after' must be an ISO 8601 date-time string", field="run_after")
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"'run_after' is not an ISO 8601 date-time: {value!r}", field="run_after") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


@dataclass
class TaskSpec:
    """A validated task body, ready to become a document."""

    function: str
    version: str | None
    args: list
    kwargs: dict
    priority: int
    is_enabled: bool
    redundancy: int
    quorum: int
    timeout_s: float
    max_retries: int
    retry_backoff_s: float
    requires: dict
    run_after: datetime | None = None
    id: str | None = None
    extra: dict = field(default_factory=dict)
    depends_on: list[str] = field(default_factory=list)


def _depends_on(body: dict) -> list[str]:
    """A list of distinct task ids (at most MAX_DEPENDS_ON); existence is checked by the service."""
    value = body.get("depends_on", [])
    if not isinstance(value, list):
        raise ValidationError(f"'depends_on' must be a list of task ids, got {type(value).__name__}",
                              field="depends_on")
    if len(value) > MAX_DEPENDS_ON:
        raise ValidationError(f"'depends_on' holds at most {MAX_DEPENDS_ON} task ids, got {len(value)}",
                              field="depends_on")
    bad = next((v for v in value if not isinstance(v, str) or not ID_PATTERN.match(v)), None)
    if bad is not None:
        raise ValidationError(f"'depends_on' must hold task ids; {bad!r} is not one", field="depends_on")
    if len(set(value)) != len(value):
        raise ValidationError("'depends_on' names a task twice", field="depends_on")
    if value and ("run_after" in body or "delay_s" in body):
        raise ValidationError("a task with 'depends_on' starts when its dependencies succeed; it cannot also "
                              "have 'run_after' or 'delay_s'", field="depends_on")
    if value and body.get("id") in value:
        raise ValidationError(f"task {body['id']!r} cannot depend on itself", field="depends_on")
    return list(value)


def validate(body: Any, defaults: Defaults = Defaults()) -> TaskSpec:
    """Check one task body; raise naming the first problem found."""
    if not isinstance(body, dict):
        raise ValidationError(f"a task must be a JSON object, got {type(body).__name__}")
    unknown = set(body) - ALLOWED
    if unknown:
        raise ValidationError(f"unknown field(s): {', '.join(sorted(unknown))} "
                              f"(allowed: {', '.join(sorted(ALLOWED))})", field=sorted(unknown)[0])
    function = body.get("function")
    if not isinstance(function, str) or not NAME_PATTERN.match(function):
        raise ValidationError("'function' is required: a function name such as \"echo\" or \"module:function\"",
                              field="function")
    version = body.get("version")
    if version is not None and (not isinstance(version, str) or not 0 < len(version) <= 100):
        raise ValidationError("'version' must be a non-empty string", field="version")
    args = body.get("args", [])
    if not isinstance(args, list):
        raise ValidationError(f"'args' must be a list, got {type(args).__name__}", field="args")
    kwargs = body.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise ValidationError(f"'kwargs' must be an object, got {type(kwargs).__name__}", field="kwargs")
    bad_keys = [k for k in kwargs if not k.isidentifier()]
    if bad_keys:
        raise ValidationError(f"'kwargs' keys must be Python identifiers: {bad_keys[0]!r}", field="kwargs")
    try:
        size = len(bson.encode({"a": args, "k": kwargs}))
    except (bson.errors.InvalidDocument, OverflowError) as exc:
        raise ValidationError(f"'args'/'kwargs' must be plain JSON data: {exc}", field="args") from None
    if size > MAX_PAYLOAD_BYTES:
        raise PayloadTooLarge(f"args and kwargs take {size} bytes; the limit is {MAX_PAYLOAD_BYTES} bytes "
                              "(store large data elsewhere and pass a reference)", field="args")
    is_enabled = body.get("is_enabled", True)
    if not isinstance(is_enabled, bool):
        raise ValidationError("'is_enabled' must be true or false", field="is_enabled")
    redundancy = _int(body, "redundancy", defaults.redundancy, 1, MAX_REDUNDANCY)
    quorum = _int(body, "quorum", redundancy // 2 + 1 if redundancy > 1 else 1, 1, MAX_REDUNDANCY)
    if quorum > redundancy:
        raise ValidationError(f"'quorum' ({quorum}) cannot exceed 'redundancy' ({redundancy})", field="quorum")
    task_id = body.get("id")
    if task_id is not None and (not isinstance(task_id, str) or not ID_PATTERN.match(task_id)):
        raise ValidationError("'id' must be 1-128 characters: letters, digits and . _ : @ -", field="id")
    return TaskSpec(
        function=function, version=version, args=args, kwargs=kwargs,
        priority=_int(body, "priority", defaults.priority, *PRIORITY_RANGE),
        is_enabled=is_enabled, redundancy=redundancy, quorum=quorum,
        timeout_s=_number(body, "timeout_s", defaults.timeout_s, 0.001, MAX_TIMEOUT_S),
        max_retries=_int(body, "max_retries", defaults.max_retries, 0, MAX_RETRIES),
        retry_backoff_s=_number(body, "retry_backoff_s", defaults.retry_backoff_s, 0, 3600),
        requires=_requires(body.get("requires")), run_after=_run_after(body), id=task_id,
        depends_on=_result_refs_listed(args, kwargs, _depends_on(body)),
    )


def _result_refs_listed(args: list, kwargs: dict, depends_on: list[str]) -> list[str]:
    """Every ``{"__result__": id}`` must name a dependency: only then is the result there at run time."""
    missing = sorted({ident for marker, ident in references([args, kwargs])
                      if marker == RESULT and ident not in depends_on})
    if missing:
        raise ValidationError(f"{{\"__result__\": ...}} names task(s) not in 'depends_on': {', '.join(missing[:10])}",
                              field="depends_on")
    return depends_on
