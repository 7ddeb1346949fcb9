"""Schedules: cron, interval and one-off date triggers that publish a task from a template.

The ``schedules`` documents (``fsm.store.schedules``) are the whole truth: each holds its
trigger (``scheduler.schedule_triggers``), its task template, its settings and
``next_fire_at``, the next fire time, kept by the API's verbs here (computed at once on
create, change, pause and resume) and moved on by the leader after each firing.

Exactly one process fires them: the holder of the scheduler lease, through the ``schedules``
job of ``scheduler.leader_loop`` (``install``). Each round reads only the due schedules (the
``next_fire`` index), asks APScheduler 3's trigger classes which fire times to run
(``schedule_triggers.due_runs``: misfire grace, coalescing) and creates, for each, the task
``<schedule id>@<fire time, UTC>``: a firing repeated by a hand-over or a restart is refused
by MongoDB's unique ``_id``, never run twice. Task ids with ``@`` are reserved for these
(``fsm.identifiers.SCHEDULED_TASK_ID``): a publish that chooses one is refused, so no caller can
block a firing. A firing is a publish by the schedule's owner (``scheduler.service.publish``):
a ``{"service": name}`` template runs the deployed version, a priced one reserves the owner's
credits, quotas apply. A firing that cannot publish (its function gone, too little credit, a
quota, its owner removed, its id taken by a task stored before the reservation) sets the
schedule's ``last_error`` (and ``last_error_at``),
which the ``schedule.error`` alert of ``scheduler.notify`` reports; the next firing that
publishes clears it. A scheduler down across firings runs the missed
ones when it is back, within ``misfire_grace_s``: once when ``coalesce`` (the default), else
each. No APScheduler scheduler, job store or pickled state is involved.
"""
from __future__ import annotations

import logging
import secrets
import threading
import time
from datetime import datetime, timezone
from typing import Any

from fsm.fields import json_object
from fsm.errors import Conflict, NotFound, SuanwangError, ValidationError
from fsm.identifiers import SCHEDULE_ID
from fsm.store import Store
from fsm import rights
from scheduler import service
from scheduler.leader_loop import Job
from scheduler.schedule_triggers import build_trigger, due_runs, first_fire, parse_trigger, shorthand

log = logging.getLogger("suanwang.schedules")

#: The leader job's name, and how long it waits at most between two looks at the due schedules.
JOB = "schedules"
POLL_S = 5.0
#: Set when this process stores a schedule change, so the leader (when it is this process) looks
#: at once; a change made through another server is seen within ``POLL_S``.
CHANGED = threading.Event()
#: How often the leader looks for schedules stored without ``next_fire_at`` (an upgrade, a restore).
BACKFILL_S = 60.0
DEFAULT_GRACE_S = 60
MAX_GRACE_S = 7 * 86400
TOP_FIELDS = {"id", "trigger", "cron", "interval_s", "run_at", "timezone", "task", "misfire_grace_s", "coalesce",
              "paused"}
#: Task body fields a schedule's template may not set (each firing sets its own id and time).
TEMPLATE_FORBIDDEN = {"id", "run_after", "delay_s"}
MAX_PAGE = 500


def check_template(store: Store, template: Any, owner: dict) -> dict:
    """Check a task template as a publish by the schedule's ``owner`` would be checked (a
    ``{"service": name}`` body or a function known and open to them); nothing is written."""
    if not isinstance(template, dict):
        raise ValidationError("'task' must be a task body such as {\"function\": \"echo\", \"args\": [1]} "
                              "or {\"service\": \"name\", \"args\": [1]}", field="task")
    bad = TEMPLATE_FORBIDDEN & set(template)
    if bad:
        raise ValidationError(f"a schedule's task may not set {', '.join(sorted(bad))}: each firing gets its own "
                              "id and runs at once", field="task")
    service.check_publishable(store, template, owner)
    return template


# --------------------------------------------------------------- the verbs
def _owner_filter(user: dict) -> dict:
    return {} if rights.may(user, "manage_schedule_any") else {"owner": user["_id"]}


def _settings(body: dict, current: dict | None = None) -> dict:
    out = {}
    if "misfire_grace_s" in body:
        grace = body["misfire_grace_s"]
        if isinstance(grace, bool) or not isinstance(grace, int) or not 1 <= grace <= MAX_GRACE_S:
            raise ValidationError(f"'misfire_grace_s' must be an integer from 1 to {MAX_GRACE_S}",
                                  field="misfire_grace_s")
        out["misfire_grace_s"] = grace
    for flag in ("coalesce", "paused"):
        if flag in body:
            if not isinstance(body[flag], bool):
                raise ValidationError(f"'{flag}' must be true or false", field=flag)
            out[flag] = body[flag]
    return out



def _next_fire_at(doc: dict, now: datetime) -> datetime | None:
    """When a schedule should fire next, from now: None when paused or when it never fires again."""
    if doc.get("paused") or (doc["trigger"]["type"] == "date" and doc.get("last_fire_time")):
        return None
    return first_fire(doc["trigger"], now)


def create(store: Store, body: Any, user: dict) -> dict:
    """Check a schedule body and store it with its first fire time; the leader fires it from there."""
    rights.check(user, "create_schedule")
    json_object(body, TOP_FIELDS, "a schedule")
    sid = body.get("id") or secrets.token_hex(12)
    if not SCHEDULE_ID.match(sid):
        raise ValidationError(f"'id' must be {SCHEDULE_ID.rule}", field="id")
    raw = shorthand(body)
    if raw is None:
        raise ValidationError("a schedule needs a trigger: 'cron' (\"*/5 * * * *\"), 'interval_s', 'run_at', "
                              "or 'trigger' {type: cron|interval|date, ...}", field="trigger")
    if "task" not in body:
        raise ValidationError("a schedule needs 'task': the task body each firing publishes", field="task")
    now = store.now()
    trigger = parse_trigger(raw, now)
    template = check_template(store, body["task"], user)
    doc = {"_id": sid, "trigger": trigger, "task": template, "misfire_grace_s": DEFAULT_GRACE_S, "coalesce": True,
           "paused": False, **_settings(body), "owner": user["_id"], "owner_role": user.get("role"),
           "created_at": now, "updated_at": now, "rev": 1, "fired": 0, "last_fire_time": None,
           "last_task_id": None, "last_error": None}
    doc["next_fire_at"] = _next_fire_at(doc, now)
    store.schedules.insert(doc)
    CHANGED.set()
    return doc


def get(store: Store, sid: str, user: dict) -> dict:
    doc = store.schedules.get(sid)
    if doc is None or (not rights.may(user, "manage_schedule_any") and doc.get("owner") != user["_id"]):
        raise NotFound(f"no schedule with id {sid!r}")
    return doc


def list_schedules(store: Store, user: dict, args: dict | None = None) -> dict:
    args = args or {}
    query = _owner_filter(user)
    if "paused" in args:
        query["paused"] = str(args["paused"]).lower() in ("1", "true", "yes")
    if args.get("function"):
        query["task.function"] = str(args["function"])
    try:
        limit = int(args.get("limit", 100))
        skip = int(args.get("skip", 0))
    except ValueError:
        raise ValidationError("'limit' and 'skip' must be integers") from None
    if not 0 <= limit <= MAX_PAGE or skip < 0:
        raise ValidationError(f"'limit' must be from 0 to {MAX_PAGE} and 'skip' not negative")
    items, total = store.schedules.page(query, skip, limit)
    return {"items": items, "total": total, "limit": limit, "skip": skip}


def update(store: Store, sid: str, changes: Any, user: dict) -> dict:
    """Change a schedule's trigger, task or settings (the whole result is checked again)."""
    current = get(store, sid, user)
    if not isinstance(changes, dict) or not changes:
        raise ValidationError("send an object with the fields to change (trigger, cron, interval_s, run_at, "
                              "timezone, task, misfire_grace_s, coalesce, paused)")
    unknown = set(changes) - (TOP_FIELDS - {"id"})
    if unknown:
        raise ValidationError(f"these fields cannot be changed: {', '.join(sorted(unknown))}",
                              field=sorted(unknown)[0])
    now = store.now()
    fields = _settings(changes)
    raw = shorthand(changes)
    if raw is None and "timezone" in changes:
        raw = {**current["trigger"], "timezone": changes["timezone"]}
    if raw is not None:
        fields["trigger"] = parse_trigger(raw, now)
    if "task" in changes:
        owner = user if current["owner"] == user["_id"] else store.users.find(current["owner"])
        if owner is None:
            raise Conflict(f"schedule {sid!r} belongs to {current['owner']!r}, who no longer exists: its task "
                           "cannot be checked; remove the schedule and create it again")
        fields["task"] = check_template(store, changes["task"], owner)
    fields["next_fire_at"] = _next_fire_at({**current, **fields}, now)
    doc = store.schedules.update(sid, current["rev"], {**fields, "updated_at": now, "updated_by": user["_id"]})
    if doc is None:
        raise Conflict(f"schedule {sid!r} changed meanwhile; read it again and retry", ids=[sid])
    CHANGED.set()
    return doc


def set_paused(store: Store, sid: str, paused: bool, user: dict) -> dict:
    return update(store, sid, {"paused": paused}, user)


def remove(store: Store, sid: str, user: dict) -> dict:
    doc = get(store, sid, user)
    store.schedules.delete(sid)
    return doc


def view(doc: dict, now: datetime | None = None) -> dict:
    """A schedule as the API shows it: ``id`` instead of ``_id``, with ``next_run_time``."""
    out = {"id": doc["_id"], **{k: v for k, v in doc.items() if k not in ("_id", "owner_role")}}
    out["next_run_time"] = doc.get("next_fire_at")
    return out


def recent_tasks(store: Store, sid: str, limit: int = 20) -> list[dict]:
    """The newest tasks a schedule created."""
    return store.schedules.recent_tasks(sid, limit)


# ------------------------------------------------------------------ firing
def task_id(schedule_id: str, fire_time: datetime) -> str:
    """The deterministic id of the task a firing creates: ``<schedule id>@<UTC fire time>``."""
    utc = fire_time.astimezone(timezone.utc)
    return f"{schedule_id}@{utc:%Y%m%dT%H%M%S}" + (f".{utc:%f}Z" if utc.microsecond else "Z")


def fire_once(store: Store, schedule_id: str, fire_time: datetime) -> str | None:
    """Publish the task of one firing; returns its id, or None when it already exists or cannot run.

    The task is published as the schedule's owner through the one publish of ``scheduler.service``:
    a service is resolved to its deployed version, a priced function reserves the owner's
    credits, quotas and closed partitions apply. Safe to call twice for the same fire time: the
    second insert is refused by MongoDB (and what it reserved is given back).
    """
    sched = store.schedules.get(schedule_id)
    if sched is None or sched.get("paused"):
        log.info("schedule %s is gone or paused; firing at %s skipped", schedule_id, fire_time)
        return None
    tid = task_id(schedule_id, fire_time)
    scheduled_for = fire_time.astimezone(timezone.utc)
    owner = store.users.find(sched["owner"])
    if owner is None:
        return _not_published(store, schedule_id, NotFound(f"its owner {sched['owner']!r} no longer exists"))
    try:
        (doc,) = service.publish(store, {**sched["task"], "id": tid}, owner,
                                 firing={"schedule_id": schedule_id, "scheduled_for": scheduled_for})
    except Conflict as exc:
        if tid not in (exc.details.get("ids") or []):
            return _not_published(store, schedule_id, exc)
        holder = store.tasks.get(tid, {"schedule_id": 1, "submitted_by": 1})
        if holder.get("schedule_id") == schedule_id:
            log.info("schedule %s: task %s already exists (a repeated firing); not published again", schedule_id, tid)
        else:  # a task stored before '@' was reserved (fsm.identifiers.RESERVED) holds this firing's id
            message = (f"firing at {scheduled_for:%Y-%m-%d %H:%M:%S} UTC not published: task id {tid} is taken "
                       f"by a task this schedule did not create (submitted by {holder.get('submitted_by')})")
            log.warning("schedule %s: %s", schedule_id, message)
            store.schedules.record_error(schedule_id, message)
        return None
    except SuanwangError as exc:  # its function gone, too little credit, a quota, a closed partition, ...
        return _not_published(store, schedule_id, exc)
    store.schedules.record_fired(schedule_id, doc["scheduled_for"], tid)
    return tid


def _not_published(store: Store, schedule_id: str, exc: SuanwangError) -> None:
    log.warning("schedule %s cannot publish its task: %s", schedule_id, exc.message)
    store.schedules.record_error(schedule_id, exc.message)
    return None


def fire_due(store: Store, doc: dict, now: datetime) -> list[str]:
    """Run one due schedule's fire times (grace, coalescing), then move its ``next_fire_at`` on."""
    runs, following = due_runs(doc["trigger"], doc["next_fire_at"], now,
                               doc.get("misfire_grace_s", DEFAULT_GRACE_S), bool(doc.get("coalesce", True)))
    if not runs:
        log.warning("schedule %s missed its firings from %s (beyond misfire_grace_s)", doc["_id"], doc["next_fire_at"])
    fired = [tid for tid in (fire_once(store, doc["_id"], when) for when in runs) if tid]
    store.schedules.advance(doc["_id"], doc["rev"], doc["next_fire_at"], following)
    return fired


def run_due(store: Store, stop: threading.Event | None = None, now: datetime | None = None) -> float | None:
    """One round of the leader's ``schedules`` job at ``now`` (default: the server's clock);
    returns the seconds until the next schedule is due (None when none will fire)."""
    nxt = store.schedules.next_due()  # one indexed look when nothing is due (an idle server's every round)
    if nxt is None:
        return None
    now = now or store.now()
    if nxt <= now:
        for doc in store.schedules.due(now):
            if stop is not None and stop.is_set():
                return None
            fire_due(store, doc, now)
        nxt = store.schedules.next_due()
    return None if nxt is None else max(0.0, (nxt - now).total_seconds())


def backfill(store: Store) -> int:
    """Give ``next_fire_at`` to schedules stored before it existed (from their last firing)."""
    done = 0
    now = store.now()
    for doc in store.schedules.without_next_fire():
        last = doc.get("last_fire_time")
        if doc.get("paused") or (last and doc["trigger"]["type"] == "date"):
            when = None
        else:
            when = build_trigger(doc["trigger"]).get_next_fire_time(last, now) if last else first_fire(
                doc["trigger"], now)
        done += store.schedules.set_first_next_fire(doc["_id"], doc["rev"], when)
    return done


def install(leader, *, poll_s: float = POLL_S) -> Job:
    """Fire the schedules in ``leader``'s process whenever it holds the lease."""
    backfilled_at = [float("-inf")]

    def run(stop: threading.Event) -> float | None:
        if time.monotonic() - backfilled_at[0] >= BACKFILL_S:  # old documents appear only by a restore
            backfill(leader.store)
            backfilled_at[0] = time.monotonic()
        return run_due(leader.store, stop)

    job = Job(JOB, poll_s, run, wake=CHANGED)
    leader.add(job)
    return job


__all__ = ["create", "get", "list_schedules", "update", "set_paused", "remove", "view", "fire_once", "fire_due",
           "run_due", "task_id", "install", "parse_trigger", "build_trigger", "recent_tasks"]
