"""Schedule triggers: checking a trigger body, and APScheduler 3's trigger classes over it.

A stored trigger is a plain document ``{type: cron | interval | date, timezone, ...}``:
    cron: second, minute, hour, day, month, day_of_week, week, year (APScheduler fields;
          ``expr`` "m h dom mon dow" or "s m h dom mon dow" is split into them),
          start_date, end_date
    interval: weeks, days, hours, minutes, seconds, start_date (fixed when created, so
          every firing lands on the same grid), end_date
    date: run_date
``build_trigger`` turns one into a ``CronTrigger``, ``IntervalTrigger`` or ``DateTrigger``,
whose ``get_next_fire_time`` computes every fire time; ``due_runs`` decides which fire times
to run now (misfire grace, coalescing). Nothing here touches the database.
"""
from __future__ import annotations

import zoneinfo
from datetime import datetime, timedelta, timezone
from typing import Any

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from fsm.errors import ValidationError

TRIGGERS = ("cron", "interval", "date")
CRON_FIELDS = ("year", "month", "day", "week", "day_of_week", "hour", "minute", "second")
INTERVAL_FIELDS = ("weeks", "days", "hours", "minutes", "seconds")
#: Most fire times one round runs for one schedule (the rest follow in the next rounds).
MAX_CATCH_UP = 1000


def _tz(name: Any) -> zoneinfo.ZoneInfo:
    if not isinstance(name, str) or not name:
        raise ValidationError("'timezone' must be an IANA time zone name such as \"UTC\" or \"Asia/Shanghai\"",
                              field="timezone")
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"unknown time zone {name!r} (use an IANA name such as \"Europe/Paris\")",
                              field="timezone") from None


def _date(value: Any, name: str, tz: zoneinfo.ZoneInfo) -> datetime:
    if not isinstance(value, str):
        raise ValidationError(f"'{name}' must be an ISO 8601 date-time string", field=name)
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"'{name}' is not an ISO 8601 date-time: {value!r}", field=name) from None
    return when if when.tzinfo else when.replace(tzinfo=tz)


def _iso(when: datetime | None) -> str | None:
    return when.astimezone(timezone.utc).isoformat() if when else None


def parse_trigger(raw: Any, now: datetime) -> dict:
    """Check a trigger and return its stored form (dates as UTC ISO strings); raise naming the problem."""
    if not isinstance(raw, dict):
        raise ValidationError("'trigger' must be an object such as {\"type\": \"cron\", \"expr\": \"*/5 * * * *\"}",
                              field="trigger")
    kind = raw.get("type")
    if kind not in TRIGGERS:
        raise ValidationError(f"'trigger.type' must be one of {', '.join(TRIGGERS)}, got {kind!r}",
                              field="trigger.type")
    tzname = raw.get("timezone", "UTC")
    tz = _tz(tzname)
    out: dict[str, Any] = {"type": kind, "timezone": tzname}
    allowed = {"type", "timezone"} | {"cron": {"expr", "start_date", "end_date", *CRON_FIELDS},
                                      "interval": {"start_date", "end_date", *INTERVAL_FIELDS},
                                      "date": {"run_date"}}[kind]
    unknown = set(raw) - allowed
    if unknown:
        raise ValidationError(f"unknown field(s) in a {kind} trigger: {', '.join(sorted(unknown))} "
                              f"(allowed: {', '.join(sorted(allowed))})", field="trigger")
    if kind == "cron":
        out.update(_cron_fields(raw))
    elif kind == "interval":
        total = 0.0
        for name in INTERVAL_FIELDS:
            if name in raw:
                value = raw[name]
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                    raise ValidationError(f"'trigger.{name}' must be a non-negative number", field=f"trigger.{name}")
                out[name] = value
                total += value * {"weeks": 604800, "days": 86400, "hours": 3600, "minutes": 60, "seconds": 1}[name]
        if total < 1:
            raise ValidationError("an interval trigger needs at least 1 second (weeks, days, hours, minutes, "
                                  "seconds)", field="trigger")
        start = _date(raw["start_date"], "start_date", tz) if "start_date" in raw else now.replace(microsecond=0)
        out["start_date"] = _iso(start)
    else:
        if "run_date" not in raw:
            raise ValidationError("a date trigger needs 'run_date' (ISO 8601)", field="trigger.run_date")
        run_date = _date(raw["run_date"], "run_date", tz)
        if run_date <= now:
            raise ValidationError(f"'run_date' {raw['run_date']} is in the past", field="trigger.run_date")
        out["run_date"] = _iso(run_date)
    for name in ("start_date", "end_date"):
        if name in raw and name not in out:
            out[name] = _iso(_date(raw[name], name, tz))
    trigger = build_trigger(out)
    if trigger.get_next_fire_time(None, now) is None:
        raise ValidationError("this trigger never fires again (check end_date)", field="trigger")
    return out


def _cron_fields(raw: dict) -> dict:
    fields = {}
    if "expr" in raw:
        expr = raw["expr"]
        parts = expr.split() if isinstance(expr, str) else []
        if len(parts) not in (5, 6):
            raise ValidationError(f"invalid cron expression {expr!r}: give 5 fields (minute hour day month "
                                  "day_of_week) or 6 (second first)", field="trigger.expr")
        names = ("minute", "hour", "day", "month", "day_of_week")
        fields = dict(zip(("second",) + names if len(parts) == 6 else names, parts))
        overlap = set(fields) & set(raw)
        if overlap:
            raise ValidationError(f"give either 'expr' or the cron fields, not both ({', '.join(sorted(overlap))})",
                                  field="trigger")
    for name in CRON_FIELDS:
        if name in raw:
            value = raw[name]
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                raise ValidationError(f"'trigger.{name}' must be a cron field (string or integer)",
                                      field=f"trigger.{name}")
            fields[name] = str(value)
    if not fields:
        raise ValidationError("a cron trigger needs 'expr' (e.g. \"*/5 * * * *\") or cron fields",
                              field="trigger")
    try:
        CronTrigger(**fields, timezone="UTC")
    except (ValueError, TypeError) as exc:
        raise ValidationError(f"invalid cron expression: {exc}", field="trigger") from None
    return fields


def build_trigger(doc: dict):
    """The APScheduler trigger of a stored trigger document."""
    tz = zoneinfo.ZoneInfo(doc.get("timezone", "UTC"))
    dates = {k: datetime.fromisoformat(doc[k]) for k in ("start_date", "end_date") if doc.get(k)}
    if doc["type"] == "cron":
        return CronTrigger(**{k: doc[k] for k in CRON_FIELDS if k in doc}, timezone=tz, **dates)
    if doc["type"] == "interval":
        return IntervalTrigger(**{k: doc[k] for k in INTERVAL_FIELDS if k in doc}, timezone=tz, **dates)
    return DateTrigger(run_date=datetime.fromisoformat(doc["run_date"]), timezone=tz)


def shorthand(body: dict) -> dict | None:
    """``cron`` / ``interval_s`` / ``run_at`` (+ ``timezone``) instead of a ``trigger`` object."""
    given = [k for k in ("trigger", "cron", "interval_s", "run_at") if k in body]
    if len(given) > 1:
        raise ValidationError(f"give one of trigger, cron, interval_s, run_at; got {', '.join(given)}",
                              field=given[1])
    if not given:
        return None
    tz = {"timezone": body["timezone"]} if "timezone" in body else {}
    if given[0] == "trigger":
        if tz and isinstance(body["trigger"], dict):
            return {**tz, **body["trigger"]}
        return body["trigger"]
    if given[0] == "cron":
        return {"type": "cron", "expr": body["cron"], **tz}
    if given[0] == "interval_s":
        return {"type": "interval", "seconds": body["interval_s"], **tz}
    return {"type": "date", "run_date": body["run_at"], **tz}


def first_fire(trigger_doc: dict, now: datetime) -> datetime | None:
    """The first fire time at or after ``now`` (UTC), None when the trigger never fires again."""
    when = build_trigger(trigger_doc).get_next_fire_time(None, now)
    return when.astimezone(timezone.utc) if when else None


def due_runs(trigger_doc: dict, next_at: datetime, now: datetime, grace_s: float,
             coalesce: bool) -> tuple[list[datetime], datetime | None]:
    """The fire times to run now for a schedule due at ``next_at``, and its next fire time.

    Fire times more than ``grace_s`` before ``now`` are missed and skipped (APScheduler's
    misfire grace time); of the rest, ``coalesce`` keeps only the latest. The next fire time
    is the first after ``now`` (or, past ``MAX_CATCH_UP`` fire times, the first not yet run).
    """
    trigger = build_trigger(trigger_doc)
    oldest = now - timedelta(seconds=grace_s)
    when: datetime | None = next_at
    if when < oldest:  # missed beyond grace: jump to the first fire time within it
        when = trigger.get_next_fire_time(None, oldest)
        if trigger_doc["type"] == "date":
            when = None
    runs: list[datetime] = []
    while when is not None and when <= now and len(runs) < MAX_CATCH_UP:
        runs.append(when.astimezone(timezone.utc))
        when = trigger.get_next_fire_time(when, now)
    following = when.astimezone(timezone.utc) if when else None
    return (runs[-1:] if coalesce else runs), following
