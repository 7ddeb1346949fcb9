"""Validation of a published task: every bad field is named, nothing is guessed.

The fields are described once, in ``FIELDS`` (type, bounds, grammar, description): the
checks read their bounds from it and ``json_schema()`` turns it into the OpenAPI task body.
``validate(body)`` turns one JSON body into the fields of a new task document, or raises
``ValidationError`` / ``PayloadTooLarge`` naming the problem. It does not know which
functions exist: the service layer asks the registry before publishing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import bson

from fsm.fields import json_object
from fsm.errors import PayloadTooLarge, ValidationError
from fsm.identifiers import FUNCTION_NAME, GROUP_NAME, SERVICE_NAME, TAG, TASK_ID, Grammar
from fsm.references import RESULT, references

#: Largest args + kwargs of one task, encoded as BSON.
MAX_PAYLOAD_BYTES = 1 << 20
MAX_REDUNDANCY = 16
MAX_RETRIES = 100
MAX_TIMEOUT_S = 7 * 86400
MAX_DELAY_S = 365 * 86400
#: Most dependencies one task may wait for.
MAX_DEPENDS_ON = 1000
PRIORITY_RANGE = (-1_000_000, 1_000_000)


@dataclass(frozen=True)
class Field:
    """One field of a task body, described once: the validator takes its bounds from here and
    ``json_schema()`` (the OpenAPI task body) is generated from it, so the two cannot differ.

    ``kind`` is a JSON Schema type (``date-time``: a string in that format); ``minimum`` and
    ``maximum`` bound numbers, ``max_length`` strings, ``grammar`` names an ``fsm.identifiers``
    grammar; ``schema`` adds JSON Schema keywords the validator checks by hand (items, ...).
    """

    kind: str
    description: str = ""
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None
    grammar: Grammar | None = None
    schema: dict = field(default_factory=dict)

    def json_schema(self) -> dict:
        out: dict[str, Any] = {"type": "string", "format": "date-time"} if self.kind == "date-time" else {
            "type": self.kind}
        if self.description:
            out["description"] = self.description
        for key, value in (("minimum", self.minimum), ("maximum", self.maximum), ("maxLength", self.max_length)):
            if value is not None:
                out[key] = value
        if self.grammar is not None:
            out["pattern"] = self.grammar.posix
        if self.max_length is not None:
            out["minLength"] = 1
        return {**out, **self.schema}


#: What a task's ``requires`` may name.
REQUIRES_FIELDS: dict[str, Field] = {
    "gpus": Field("integer", "GPUs a worker must have", 0, 64),
    "mem_gb": Field("number", "memory (GB) a worker must have", 0, 1 << 20),
    "cpus": Field("number", "cores the task takes from the worker's free capacity (default 1)", 0, 4096),
    "gpu_mem_gb": Field("number", "memory (GB) on one GPU; with gpus 0 the GPU is shared with other such tasks, "
                                  "with gpus >= 1 each whole GPU must have that much", 0, 4096),
    "tags": Field("array", "tags a worker must have", schema={"items": {"type": "string", "pattern": TAG.posix}}),
}
#: Every field of a task body, in the order the documentation shows them. A new field is one
#: entry here (plus its check in ``validate``); the OpenAPI document follows by itself.
FIELDS: dict[str, Field] = {
    "id": Field("string", "optional idempotency id; a duplicate is refused (409)", grammar=TASK_ID),
    "function": Field("string", "a function name such as \"echo\" or \"module:function\"", grammar=FUNCTION_NAME,
                      schema={"examples": ["echo"]}),
    "service": Field("string", "call a service by name instead of naming a function: the task runs the version "
                               "deployed at that moment (not with function or version)", grammar=SERVICE_NAME),
    "version": Field("string", "default: the newest non-deprecated version", max_length=100),
    "args": Field("array", f"positional arguments (args and kwargs at most {MAX_PAYLOAD_BYTES} bytes as BSON)"),
    "kwargs": Field("object", "keyword arguments (keys are Python identifiers)"),
    "priority": Field("integer", "higher runs first", *PRIORITY_RANGE),
    "is_enabled": Field("boolean", "a disabled task is not claimed until enabled"),
    "redundancy": Field("integer", "run on this many distinct workers", 1, MAX_REDUNDANCY),
    "quorum": Field("integer", "results that must agree (at most redundancy; default: a majority)", 1,
                    MAX_REDUNDANCY),
    "timeout_s": Field("number", "seconds before an attempt is killed", 0.001, MAX_TIMEOUT_S),
    "max_retries": Field("integer", "retries after a failed attempt", 0, MAX_RETRIES),
    "retry_backoff_s": Field("number", "wait before a retry, doubled each time", 0, 3600),
    "requires": Field("object", "what a worker must have", schema={
        "additionalProperties": False, "properties": {k: f.json_schema() for k, f in REQUIRES_FIELDS.items()}}),
    "run_after": Field("date-time", "not before this time (ISO 8601; not with delay_s)"),
    "delay_s": Field("number", "not before this many seconds from now (not with run_after)", 0, MAX_DELAY_S),
    "distinct_hosts": Field("boolean", "never run two attempts of this task on one machine (stricter than "
                                       "distinct workers)"),
    "depends_on": Field("array", "task ids (of this request too) that must succeed first", schema={
        "items": {"type": "string", "pattern": TASK_ID.posix}, "maxItems": MAX_DEPENDS_ON, "uniqueItems": True}),
    "billing_group": Field("string", "pay a priced task from this group's credits (the caller must be a member); "
                                     "default: the caller's own account", grammar=GROUP_NAME),
}
REQUIRED = ("function",)
ALLOWED = set(FIELDS)
REQUIRES_ALLOWED = set(REQUIRES_FIELDS)


def json_schema() -> dict:
    """The JSON Schema of one task body (the OpenAPI document's ``Task``), from ``FIELDS``."""
    return {"type": "object", "additionalProperties": False, "required": list(REQUIRED),
            "properties": {name: f.json_schema() for name, f in FIELDS.items()}}


def _bounded(body: dict, name: str, default, fields: dict[str, Field] = FIELDS):
    """An integer or number field of ``fields``, checked against its described bounds."""
    spec = fields[name]
    check = _int if spec.kind == "integer" else _number
    return check(body, name, default, spec.minimum, spec.maximum)


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
    if not isinstance(tags, list) or not all(TAG.match(t) for t in tags):
        raise ValidationError("'requires.tags' must be a list of tag names (letters, digits, . _ -)",
                              field="requires.tags")
    out = {"gpus": _bounded(value, "gpus", 0, REQUIRES_FIELDS), "mem_gb": _bounded(value, "mem_gb", 0, REQUIRES_FIELDS),
           "tags": sorted(set(tags))}
    for name in ("cpus", "gpu_mem_gb"):  # stored only when asked for: a task without takes one core, no GPU
        if name in value:
            out[name] = _bounded(value, name, 0, REQUIRES_FIELDS)
    return out


def _run_after(body: dict) -> datetime | None:
    if "run_after" in body and "delay_s" in body:
        raise ValidationError("give either 'run_after' or 'delay_s', not both", field="run_after")
    if "delay_s" in body:
        from datetime import timedelta

        return datetime.now(timezone.utc) + timedelta(seconds=_bounded(body, "delay_s", 0))
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
    #: never run two attempts of this task on one machine (stricter than distinct workers)
    distinct_hosts: bool = False
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
    bad = next((v for v in value if not isinstance(v, str) or not TASK_ID.match(v)), None)
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
    json_object(body, ALLOWED, "a task")
    if "service" in body:
        raise ValidationError("give either 'service' or 'function' (and 'version'), not both", field="service")
    function = body.get("function")
    if not FUNCTION_NAME.match(function):
        raise ValidationError("'function' is required: a function name such as \"echo\" or \"module:function\"",
                              field="function")
    version = body.get("version")
    if version is not None and (not isinstance(version, str) or not 0 < len(version) <= FIELDS["version"].max_length):
        raise ValidationError(f"'version' must be a string of 1-{FIELDS['version'].max_length} characters",
                              field="version")
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
    redundancy = _bounded(body, "redundancy", defaults.redundancy)
    quorum = _bounded(body, "quorum", redundancy // 2 + 1 if redundancy > 1 else 1)
    if quorum > redundancy:
        raise ValidationError(f"'quorum' ({quorum}) cannot exceed 'redundancy' ({redundancy})", field="quorum")
    distinct_hosts = body.get("distinct_hosts", False)
    if not isinstance(distinct_hosts, bool):
        raise ValidationError("'distinct_hosts' must be true or false", field="distinct_hosts")
    if "billing_group" in body and not GROUP_NAME.match(body["billing_group"]):
        raise ValidationError(f"'billing_group' must be a group name: {GROUP_NAME.rule}", field="billing_group")
    task_id = body.get("id")
    if task_id is not None and not TASK_ID.match(task_id):
        raise ValidationError(f"'id' must be {TASK_ID.rule}", field="id")
    return TaskSpec(
        function=function, version=version, args=args, kwargs=kwargs,
        priority=_bounded(body, "priority", defaults.priority),
        is_enabled=is_enabled, redundancy=redundancy, quorum=quorum,
        timeout_s=_bounded(body, "timeout_s", defaults.timeout_s),
        max_retries=_bounded(body, "max_retries", defaults.max_retries),
        retry_backoff_s=_bounded(body, "retry_backoff_s", defaults.retry_backoff_s),
        requires=_requires(body.get("requires")), run_after=_run_after(body), id=task_id,
        distinct_hosts=distinct_hosts,
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
