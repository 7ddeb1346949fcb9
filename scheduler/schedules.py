"""Schedules: cron, interval and one-off date triggers that publish a task from a template.

Two places hold a schedule, and only one of them is data:

``schedules`` — the definitions, plain documents (``_id``: the schedule's id)
    trigger {type: cron | interval | date, timezone, ...}   see ``parse_trigger``
        cron: second, minute, hour, day, month, day_of_week, week, year (APScheduler fields;
              ``expr`` "m h dom mon dow" or "s m h dom mon dow" is split into them),
              start_date, end_date
        interval: weeks, days, hours, minutes, seconds, start_date (fixed when created, so
              every firing lands on the same grid), end_date
        date: run_date
    task {function, version, args, kwargs, priority, requires, ...}   a task body (``fsm.store.spec``)
    misfire_grace_s, coalesce, paused, owner, owner_role, created_at, updated_at
    rev                                     bumped by every change; the job's name carries it
    fired, last_fire_time, last_task_id, last_error    written by ``fire``
``apscheduler_schedules`` — APScheduler's ``MongoDBJobStore`` of these schedules: pickled job
    state that holds only references (``fire`` and the args ``[db name, schedule id]``).
    No task data is ever read from, or written to, it.

Exactly one process runs them: the holder of the scheduler lease (``scheduler.housekeeping.Leader``).
``install(leader)`` adds a leadership hook that gives the leader's APScheduler this job store
and an executor that hands each job its scheduled fire time, then reconciles the jobs with the
documents (``sync``) at once and every ``SYNC_S`` seconds; API changes made in the leading
process reconcile at once. Each firing creates the task ``<schedule id>@<fire time, UTC>``:
a firing repeated by a hand-over or a restart is refused by MongoDB's unique ``_id``, never
run twice. A scheduler down across firings runs the missed ones when it is back, within
``misfire_grace_s``: once when ``coalesce`` (the default), else each.
"""
from __future__ import annotations

import logging
import threading
import zoneinfo
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from apscheduler.executors.base import run_job
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.mongodb import MongoDBJobStore
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError, PyMongoError

from fsm.errors import Conflict, Forbidden, NotFound, SuanwangError, ValidationError
from fsm.identifiers import SCHEDULE_ID
from fsm.store import Store, server_now
from fsm.store.db import client as mongo_client
from fsm.store.spec import validate
from fsm.store.users import has_role
from registry import catalog

log = logging.getLogger("suanwang.schedules")

COLLECTION = "schedules"
JOBS_COLLECTION = "apscheduler_schedules"
#: Alias of the job store and of the executor this module adds to the leader's APScheduler.
JOBSTORE = EXECUTOR = "schedules"
SYNC_JOB = "schedules-sync"
#: How often the leader reconciles its jobs with ``schedules`` (changes made through another process).
SYNC_S = 2.0
DEFAULT_GRACE_S = 60
MAX_GRACE_S = 7 * 86400
TRIGGERS = ("cron", "interval", "date")
CRON_FIELDS = ("year", "month", "day", "week", "day_of_week", "hour", "minute", "second")
INTERVAL_FIELDS = ("weeks", "days", "hours", "minutes", "seconds")
TOP_FIELDS = {"id", "trigger", "cron", "interval_s", "run_at", "timezone", "task", "misfire_grace_s", "coalesce",
              "paused"}
#: Task body fields a schedule's template may not set (each firing sets its own id and time).
TEMPLATE_FORBIDDEN = {"id", "run_after", "delay_s"}
MAX_PAGE = 500


# ------------------------------------------------------------------ parsing
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


def _shorthand(body: dict) -> dict | None:
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


def check_template(store: Store, template: Any, role: str) -> dict:
    """Validate a task template as a publish would (function known and allowed for ``role``)."""
    if not isinstance(template, dict):
        raise ValidationError("'task' must be a task body such as {\"function\": \"echo\", \"args\": [1]}",
                              field="task")
    bad = TEMPLATE_FORBIDDEN & set(template)
    if bad:
        raise ValidationError(f"a schedule's task may not set {', '.join(sorted(bad))}: each firing gets its own "
                              "id and runs at once", field="task")
    spec = validate(template)
    catalog.resolve_version(store.db, spec.function, spec.version, role)
    return template


# --------------------------------------------------------------- the verbs
def _coll(store: Store):
    return store.db[COLLECTION]


def _owner_filter(user: dict) -> dict:
    return {} if has_role(user, "super") else {"owner": user["_id"]}


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


def create(store: Store, body: Any, user: dict) -> dict:
    """Check a schedule body and store it; the leader picks it up (at once when it is this process)."""
    if not has_role(user, "business"):
        raise Forbidden(f"creating schedules needs the business role or above; {user['_id']} is {user.get('role')}")
    if not isinstance(body, dict):
        raise ValidationError("a schedule must be a JSON object")
    unknown = set(body) - TOP_FIELDS
    if unknown:
        raise ValidationError(f"unknown field(s): {', '.join(sorted(unknown))} (allowed: {', '.join(sorted(TOP_FIELDS))})",
                              field=sorted(unknown)[0])
    sid = body.get("id") or str(ObjectId())
    if not SCHEDULE_ID.match(sid):
        raise ValidationError(f"'id' must be {SCHEDULE_ID.rule}", field="id")
    raw = _shorthand(body)
    if raw is None:
        raise ValidationError("a schedule needs a trigger: 'cron' (\"*/5 * * * *\"), 'interval_s', 'run_at', "
                              "or 'trigger' {type: cron|interval|date, ...}", field="trigger")
    if "task" not in body:
        raise ValidationError("a schedule needs 'task': the task body each firing publishes", field="task")
    now = server_now(store.db)
    trigger = parse_trigger(raw, now)
    template = check_template(store, body["task"], user.get("role", ""))
    doc = {"_id": sid, "trigger": trigger, "task": template, "misfire_grace_s": DEFAULT_GRACE_S, "coalesce": True,
           "paused": False, **_settings(body), "owner": user["_id"], "owner_role": user.get("role"),
           "created_at": now, "updated_at": now, "rev": 1, "fired": 0, "last_fire_time": None,
           "last_task_id": None, "last_error": None}
    try:
        _coll(store).insert_one(doc)
    except DuplicateKeyError:
        raise Conflict(f"a schedule with id {sid!r} already exists") from None
    sync_now(store)
    return doc


def get(store: Store, sid: str, user: dict) -> dict:
    doc = _coll(store).find_one({"_id": sid})
    if doc is None or (not has_role(user, "super") and doc.get("owner") != user["_id"]):
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
    items = list(_coll(store).find(query).sort("_id", 1).skip(skip).limit(limit))
    return {"items": items, "total": _coll(store).count_documents(query), "limit": limit, "skip": skip}


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
    now = server_now(store.db)
    fields = _settings(changes)
    raw = _shorthand(changes)
    if raw is None and "timezone" in changes:
        raw = {**current["trigger"], "timezone": changes["timezone"]}
    if raw is not None:
        fields["trigger"] = parse_trigger(raw, now)
    if "task" in changes:
        fields["task"] = check_template(store, changes["task"], current.get("owner_role") or user.get("role", ""))
    doc = _coll(store).find_one_and_update(
        {"_id": sid, "rev": current["rev"]}, {"$set": {**fields, "updated_at": now, "updated_by": user["_id"]},
                                              "$inc": {"rev": 1}}, return_document=ReturnDocument.AFTER)
    if doc is None:
        raise Conflict(f"schedule {sid!r} changed meanwhile; read it again and retry")
    sync_now(store)
    return doc


def set_paused(store: Store, sid: str, paused: bool, user: dict) -> dict:
    return update(store, sid, {"paused": paused}, user)


def remove(store: Store, sid: str, user: dict) -> dict:
    doc = get(store, sid, user)
    _coll(store).delete_one({"_id": sid})
    sync_now(store)
    return doc


def next_fire_time(doc: dict, now: datetime) -> datetime | None:
    """When the schedule fires next (None when paused or finished), computed from its trigger."""
    if doc.get("paused"):
        return None
    trigger = build_trigger(doc["trigger"])
    if doc["trigger"]["type"] == "date" and doc.get("last_fire_time"):
        return None
    when = trigger.get_next_fire_time(None, now)
    return when.astimezone(timezone.utc) if when else None


def view(doc: dict, now: datetime | None = None) -> dict:
    """A schedule as the API shows it: ``id`` instead of ``_id``, with ``next_run_time``."""
    out = {"id": doc["_id"], **{k: v for k, v in doc.items() if k not in ("_id", "owner_role")}}
    if now is not None:
        out["next_run_time"] = next_fire_time(doc, now)
    return out


# ------------------------------------------------------------------ firing
def task_id(schedule_id: str, fire_time: datetime) -> str:
    """The deterministic id of the task a firing creates: ``<schedule id>@<UTC fire time>``."""
    utc = fire_time.astimezone(timezone.utc)
    return f"{schedule_id}@{utc:%Y%m%dT%H%M%S}" + (f".{utc:%f}Z" if utc.microsecond else "Z")


def fire_once(store: Store, schedule_id: str, fire_time: datetime) -> str | None:
    """Publish the task of one firing; returns its id, or None when it already exists or cannot run.

    Safe to call twice for the same fire time: the second insert is refused by MongoDB.
    """
    coll = _coll(store)
    sched = coll.find_one({"_id": schedule_id})
    if sched is None or sched.get("paused"):
        log.info("schedule %s is gone or paused; firing at %s skipped", schedule_id, fire_time)
        return None
    tid = task_id(schedule_id, fire_time)
    try:
        spec = validate({**sched["task"], "id": tid})
        spec.version = catalog.resolve_version(store.db, spec.function, spec.version, sched.get("owner_role") or "")
        requires = catalog.task_defaults(store.db, spec.function, spec.version).get("requires", {})
        if "requires" not in sched["task"] and requires:
            spec.requires = {**spec.requires, **requires}
    except SuanwangError as exc:
        log.warning("schedule %s cannot publish its task: %s", schedule_id, exc.message)
        coll.update_one({"_id": schedule_id}, {"$set": {"last_error": exc.message}})
        return None
    doc = store.tasks.document(spec, sched["owner"])
    doc["schedule_id"] = schedule_id
    doc["scheduled_for"] = fire_time.astimezone(timezone.utc)
    try:
        store.tasks.insert([doc])
    except Conflict:
        log.info("schedule %s: task %s already exists (a repeated firing); not published again", schedule_id, tid)
        return None
    store.wakeups.signal()
    coll.update_one({"_id": schedule_id}, {"$inc": {"fired": 1}, "$max": {"last_fire_time": doc["scheduled_for"]},
                                           "$set": {"last_task_id": tid, "last_error": None}})
    return tid


def fire(db_name: str, schedule_id: str, fire_time: datetime | None = None) -> str | None:
    """The APScheduler job: module level, with only references as arguments.

    ``fire_time`` is the scheduled run time, passed by ``FireTimeExecutor``.
    """
    runtime = _runtimes.get(db_name)
    if runtime is None:
        log.warning("schedule %s fired in a process that does not lead database %s; skipped", schedule_id, db_name)
        return None
    when = fire_time or server_now(runtime.store.db).replace(microsecond=0)
    try:
        return fire_once(runtime.store, schedule_id, when)
    except PyMongoError as exc:
        log.warning("schedule %s: MongoDB error while firing at %s: %s", schedule_id, when, str(exc)[:200])
        raise


class _WithFireTime:
    """A job seen through ``run_job`` with the scheduled run time added to its keyword arguments."""

    def __init__(self, job, run_time: datetime):
        self._job = job
        self.kwargs = {**job.kwargs, "fire_time": run_time}

    def __getattr__(self, name):
        return getattr(self._job, name)

    def __str__(self) -> str:
        return str(self._job)


class FireTimeExecutor(ThreadPoolExecutor):
    """APScheduler passes a job nothing about when it was due; this executor does (``fire_time``)."""

    def _do_submit_job(self, job, run_times):
        def run():
            events = []
            for run_time in run_times:
                events += run_job(_WithFireTime(job, run_time), job._jobstore_alias, [run_time], self._logger.name)
            return events

        def done(future):
            exc = future.exception()
            if exc is not None:
                self._run_job_error(job.id, exc, exc.__traceback__)
            else:
                self._run_job_success(job.id, future.result())

        self._pool.submit(run).add_done_callback(done)


# ------------------------------------------------------------------ syncing
@dataclass
class _Runtime:
    store: Store
    scheduler: Any
    leader: Any
    lock: threading.Lock


#: This process's running schedule job stores, by database name (set while leading).
_runtimes: dict[str, _Runtime] = {}


def _job_name(doc: dict) -> str:
    return f"{doc['_id']}#{doc['rev']}"


def sync(db_name: str) -> dict:
    """Make the leader's jobs match the ``schedules`` documents; returns counts of what changed."""
    runtime = _runtimes.get(db_name)
    if runtime is None:
        return {}
    with runtime.lock:
        sched = runtime.scheduler
        jobs = {job.id: job for job in sched.get_jobs(jobstore=JOBSTORE)}
        now = server_now(runtime.store.db)
        added = removed = 0
        seen = set()
        for doc in _coll(runtime.store).find({}):
            sid = doc["_id"]
            seen.add(sid)
            job = jobs.get(sid)
            if job is not None and job.name == _job_name(doc) and not doc.get("paused"):
                continue
            if doc.get("paused") or _date_done(doc, now):
                if job is not None:
                    _remove(sched, sid)
                    removed += 1
                continue
            trigger = build_trigger(doc["trigger"])
            if trigger.get_next_fire_time(None, now) is None:
                if job is not None:
                    _remove(sched, sid)
                    removed += 1
                continue
            sched.add_job(fire, trigger, args=[db_name, sid], id=sid, name=_job_name(doc), jobstore=JOBSTORE,
                          executor=EXECUTOR, replace_existing=True, coalesce=bool(doc.get("coalesce", True)),
                          misfire_grace_time=int(doc.get("misfire_grace_s", DEFAULT_GRACE_S)), max_instances=10)
            added += 1
        for sid in set(jobs) - seen:
            _remove(sched, sid)
            removed += 1
    if added or removed:
        log.info("schedules synced: %d (re)added, %d removed", added, removed)
    return {"added": added, "removed": removed}


def _date_done(doc: dict, now: datetime) -> bool:
    """A one-off schedule that fired, or whose time passed beyond its grace, never fires again."""
    if doc["trigger"]["type"] != "date":
        return False
    if doc.get("last_fire_time"):
        return True
    late = now - datetime.fromisoformat(doc["trigger"]["run_date"])
    return late.total_seconds() > doc.get("misfire_grace_s", DEFAULT_GRACE_S)


def _remove(sched, sid: str) -> None:
    try:
        sched.remove_job(sid, jobstore=JOBSTORE)
    except JobLookupError:
        pass


def sync_now(store: Store) -> None:
    """Reconcile at once when this process leads ``store``'s database; otherwise the leader will soon."""
    if store.db.name in _runtimes:
        try:
            sync(store.db.name)
        except Exception:  # noqa: BLE001 - the periodic sync retries; the API change is stored
            log.exception("schedules sync failed")


def sync_job(db_name: str) -> None:
    """The periodic APScheduler job that calls ``sync`` (module level: the job store keeps a reference)."""
    try:
        sync(db_name)
    except PyMongoError as exc:
        log.warning("schedules sync skipped: MongoDB error %s", str(exc)[:200])


def start(leader, scheduler, *, sync_s: float = SYNC_S) -> None:
    """Leadership hook: add the schedules' executor and job store, reconcile, keep reconciling."""
    store = leader.store
    db_name = store.db.name
    scheduler.add_executor(FireTimeExecutor(max_workers=4), alias=EXECUTOR)
    client = mongo_client(leader.uri, serverSelectionTimeoutMS=int(leader.lease_s * 1000))
    _runtimes[db_name] = _Runtime(store, scheduler, leader, threading.Lock())
    # The executor exists before the job store, so no stored job is looked up without it.
    scheduler.add_jobstore(MongoDBJobStore(database=db_name, collection=JOBS_COLLECTION, client=client),
                           alias=JOBSTORE)
    sync(db_name)
    scheduler.add_job(sync_job, "interval", seconds=sync_s, args=[db_name], id=SYNC_JOB, replace_existing=True,
                      coalesce=True, max_instances=1, misfire_grace_time=max(1, int(sync_s * 5)))


def stop(leader) -> None:
    """Leadership-lost hook (the scheduler, with its job store and executor, is already shut down)."""
    db_name = leader.store.db.name
    runtime = _runtimes.get(db_name)
    if runtime is not None and runtime.leader is leader:
        del _runtimes[db_name]


def install(leader, *, sync_s: float = SYNC_S) -> None:
    """Run the schedules in ``leader``'s APScheduler whenever it leads."""
    leader.on_lead.append(lambda scheduler: start(leader, scheduler, sync_s=sync_s))
    leader.on_lose.append(lambda: stop(leader))


def recent_tasks(store: Store, sid: str, limit: int = 20) -> list[dict]:
    """The newest tasks a schedule created."""
    return list(store.db.tasks.find({"schedule_id": sid}, {"status": 1, "scheduled_for": 1, "created_at": 1,
                                                          "finished_at": 1}).sort("scheduled_for", -1).limit(limit))


__all__ = ["create", "get", "list_schedules", "update", "set_paused", "remove", "view", "fire", "fire_once",
           "task_id", "sync", "install", "start", "stop", "parse_trigger", "build_trigger", "FireTimeExecutor",
           "next_fire_time", "recent_tasks"]
