"""Notifications: users subscribe to events; the leader detects them and delivers by e-mail,
signed webhook, SMS or WeChat Work robot (HTTP gateways), retrying with backoff, in threads of its own: never in the task path.

Collections:

``subscriptions`` — one user's wish to hear of one kind of event
    event          task.succeeded | task.failed | task.disputed | worker.offline |
                   worker.temperature | worker.disk | queue.age            (see ``EVENTS``)
    task_id, function, worker      scope: each null means "any" (global when all are null)
    threshold      °C (worker.temperature), percent (worker.disk), minutes (queue.age)
    sensor         cpu | gpu | any (worker.temperature)
    channel        {type: email, to: [addresses]} | {type: webhook, url, secret} |
                   {type: sms | wechat, url, headers, body, ...} (``scheduler.notify_gateways``)
    owner, sees_all (super and admin hear of every task; others of their own), created_at
``deliveries`` — one message for one subscription (``_id``: subscription id + event key, so
    an event seen twice, e.g. replayed after a restart, is queued once)
    subscription_id, owner, event, channel_type, target, payload,
    status (pending | sending | sent | failed), attempts, next_try_at, lease_until,
    last_error, errors [{at, error}] (the last ten), created_at, sent_at
``alerts`` — conditions now firing (``_id``: subscription id + subject such as a worker's
    name): a condition notifies once when it starts and again only after it has cleared
``notify_state`` — ``{_id: "tasks_stream", token}``: the resume token of the change stream
    on ``tasks``, so a restarted (or new) leader loses no task event

``Notifier`` has three leader jobs (``scheduler.leader_loop``): the change stream on ``tasks``
(``on_task_change``), the periodic checks over ``workers`` and ``tasks`` (``check_once``) and
the senders (``deliver_once``). Each is one iteration per method, testable by itself.
``install(leader, config)`` adds them to the leader, which runs them while it holds the lease.
"""
from __future__ import annotations

import hashlib
import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlparse

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.errors import DuplicateKeyError, OperationFailure

from fsm.errors import NotFound, ValidationError
from fsm.states import Status
from fsm.store import Store, server_now
from fsm.store.users import has_role
from fsm.store.workers import OFFLINE, ONLINE
from scheduler.config import ServerConfig, default
from scheduler.leader_loop import Job, JobRunner
from scheduler.notify_channels import DeliveryFailed, SmtpSettings, send_email, send_webhook
from scheduler.notify_gateways import GATEWAY_TYPES, gateway_channel, public_channel, send_gateway, target

log = logging.getLogger("suanwang.notify")

#: Event types and what they mean.
EVENTS = {
    "task.succeeded": "a task succeeded",
    "task.failed": "a task failed (errors, retries exhausted, disputes)",
    "task.disputed": "a redundant task failed because its results disagreed",
    "worker.offline": "a worker stopped heartbeating",
    "worker.temperature": "a worker's CPU or GPU is hotter than threshold °C",
    "worker.disk": "a worker's disk is fuller than threshold percent",
    "worker.quarantined": "a worker keeps failing a function that others run, and stopped taking it for a while",
    "queue.age": "the oldest queued task has waited longer than threshold minutes",
}
TASK_EVENTS = ("task.succeeded", "task.failed", "task.disputed")
CHECK_EVENTS = ("worker.offline", "worker.temperature", "worker.disk", "worker.quarantined", "queue.age")
THRESHOLDS = {"worker.temperature": (1, 200), "worker.disk": (1, 100), "queue.age": (0.1, 7 * 24 * 60)}
SENSORS = ("any", "cpu", "gpu")
EMAIL = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$|^[^@\s,;<>]+@localhost$")
STREAM_STATE = "tasks_stream"
CHANGE_STREAM_HISTORY_LOST = 286
#: Change-stream filter: a task became succeeded or failed. Only the fields the notifier needs
#: travel (never the full document, nor a large updated field such as a result or the attempts),
#: so no event can grow past MongoDB's 16 MB limit and stall the stream.
WATCHED_FIELDS = ("status", "reason", "error")
TASK_PIPELINE = [{"$match": {"operationType": "update", "updateDescription.updatedFields.status": {
    "$in": [Status.SUCCEEDED.value, Status.FAILED.value]}}},
    {"$project": {"operationType": 1, "documentKey": 1, "clusterTime": 1,
                  **{f"updateDescription.updatedFields.{name}": 1 for name in WATCHED_FIELDS}}}]
#: What the notifier reads of the task itself (one indexed lookup per event).
TASK_FIELDS = {"function": 1, "version": 1, "submitted_by": 1, "finished_at": 1, "reason": 1, "attempts.id": 1}
MAX_PAGE = 500


@dataclass(frozen=True)
class NotifyConfig:
    """How the leader delivers: the server's ``notify_*`` and ``smtp_*`` settings, whose meaning
    and defaults are defined once in ``scheduler.config.ServerConfig``."""

    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    max_attempts: int = default("notify_max_attempts")
    backoff_s: float = default("notify_backoff_s")
    backoff_max_s: float = default("notify_backoff_max_s")
    webhook_timeout_s: float = default("notify_webhook_timeout_s")
    check_s: float = default("notify_check_s")
    poll_s: float = default("notify_poll_s")
    sending_lease_s: float = default("notify_sending_lease_s")
    senders: int = default("notify_senders")

    @classmethod
    def from_server_config(cls, config: ServerConfig) -> "NotifyConfig":
        """The notifier's part of the server's (validated) settings."""
        smtp = SmtpSettings(host=config.smtp_host, port=config.smtp_port, user=config.smtp_user,
                            password=config.smtp_password, tls=config.smtp_tls, mail_from=config.mail_from,
                            timeout_s=config.smtp_timeout_s)
        return cls(smtp=smtp, max_attempts=config.notify_max_attempts, backoff_s=config.notify_backoff_s,
                   backoff_max_s=config.notify_backoff_max_s, webhook_timeout_s=config.notify_webhook_timeout_s,
                   check_s=config.notify_check_s, poll_s=config.notify_poll_s,
                   sending_lease_s=config.notify_sending_lease_s, senders=config.notify_senders)


def ensure_indexes(store: Store) -> None:
    db = store.db
    db.subscriptions.create_indexes([IndexModel([("event", ASCENDING)], name="event"),
                                     IndexModel([("owner", ASCENDING)], name="owner")])
    db.deliveries.create_indexes([IndexModel([("status", ASCENDING), ("next_try_at", ASCENDING)], name="due"),
                                  IndexModel([("owner", ASCENDING), ("created_at", DESCENDING)], name="owner_created"),
                                  IndexModel([("subscription_id", ASCENDING), ("created_at", DESCENDING)],
                                             name="subscription_created")])
    db.alerts.create_indexes([IndexModel([("subscription_id", ASCENDING)], name="subscription")])


# ------------------------------------------------------------ subscriptions
def _channel(raw: Any) -> dict:
    if isinstance(raw, dict) and raw.get("type") in GATEWAY_TYPES:
        return gateway_channel(raw)
    if not isinstance(raw, dict) or raw.get("type") not in ("email", "webhook"):
        raise ValidationError("'channel' must be {\"type\": \"email\", \"to\": \"a@b.org\"}, "
                              "{\"type\": \"webhook\", \"url\": \"https://...\"}, "
                              "{\"type\": \"sms\", \"url\": \"https://gateway...\", \"to\": [\"+86...\"]} or "
                              "{\"type\": \"wechat\", \"url\": \"https://qyapi.weixin.qq.com/...\"}", field="channel")
    if raw["type"] == "email":
        unknown = set(raw) - {"type", "to"}
        to = raw.get("to")
        to = [to] if isinstance(to, str) else to
        if not isinstance(to, list) or not to or not all(isinstance(a, str) and EMAIL.match(a) for a in to):
            raise ValidationError("'channel.to' must be an e-mail address or a list of them", field="channel.to")
        if unknown:
            raise ValidationError(f"unknown field(s) in an e-mail channel: {', '.join(sorted(unknown))}",
                                  field="channel")
        return {"type": "email", "to": to}
    unknown = set(raw) - {"type", "url", "secret"}
    if unknown:
        raise ValidationError(f"unknown field(s) in a webhook channel: {', '.join(sorted(unknown))}", field="channel")
    url = raw.get("url")
    parsed = urlparse(url) if isinstance(url, str) else None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValidationError(f"a webhook URL must start with http:// or https:// and name a host, got {url!r}",
                              field="channel.url")
    secret = raw.get("secret") or secrets.token_urlsafe(32)
    if not isinstance(secret, str) or len(secret) < 16:
        raise ValidationError("'channel.secret' must be a string of at least 16 characters", field="channel.secret")
    return {"type": "webhook", "url": url, "secret": secret}


def subscribe(store: Store, body: Any, user: dict) -> dict:
    """Check and store a subscription; the answer (only this one) shows a webhook's secret."""
    if not isinstance(body, dict):
        raise ValidationError("a subscription must be a JSON object")
    allowed = {"event", "task_id", "function", "worker", "threshold", "sensor", "channel"}
    unknown = set(body) - allowed
    if unknown:
        raise ValidationError(f"unknown field(s): {', '.join(sorted(unknown))} (allowed: {', '.join(sorted(allowed))})",
                              field=sorted(unknown)[0])
    event = body.get("event")
    if event not in EVENTS:
        raise ValidationError(f"'event' must be one of {', '.join(EVENTS)}, got {event!r}", field="event")
    scopes = {"task_id": TASK_EVENTS, "function": TASK_EVENTS + ("queue.age",),
              "worker": ("worker.offline", "worker.temperature", "worker.disk")}
    doc: dict[str, Any] = {"_id": str(ObjectId()), "event": event}
    for name, events in scopes.items():
        value = body.get(name)
        if value is not None and (event not in events or not isinstance(value, str) or not value):
            raise ValidationError(f"'{name}' must be a non-empty string and applies only to {', '.join(events)}",
                                  field=name)
        doc[name] = value
    if event in THRESHOLDS:
        lo, hi = THRESHOLDS[event]
        value = body.get("threshold")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
            raise ValidationError(f"{event} needs 'threshold' from {lo} to {hi}", field="threshold")
        doc["threshold"] = value
    elif "threshold" in body:
        raise ValidationError(f"{event} takes no threshold", field="threshold")
    if "sensor" in body and (event != "worker.temperature" or body["sensor"] not in SENSORS):
        raise ValidationError(f"'sensor' ({', '.join(SENSORS)}) applies only to worker.temperature", field="sensor")
    if event == "worker.temperature":
        doc["sensor"] = body.get("sensor", "any")
    doc["channel"] = _channel(body.get("channel"))
    doc.update(owner=user["_id"], sees_all=has_role(user, "super"), created_at=server_now(store.db))
    store.db.subscriptions.insert_one(doc)
    return doc


def subscription_view(doc: dict, *, show_secret: bool = False) -> dict:
    out = {"id": doc["_id"], **{k: v for k, v in doc.items() if k not in ("_id", "sees_all")}}
    if out["channel"].get("type") == "webhook" and not show_secret:
        out["channel"] = {k: v for k, v in out["channel"].items() if k != "secret"}
    if out["channel"].get("type") in GATEWAY_TYPES and not show_secret:
        out["channel"] = public_channel(out["channel"])
    return out


def _mine(user: dict, args: dict) -> dict:
    if has_role(user, "admin") and str(args.get("all", "")).lower() in ("1", "true", "yes"):
        return {}
    return {"owner": user["_id"]}


def _page_args(args: dict) -> tuple[int, int]:
    try:
        limit, skip = int(args.get("limit", 100)), int(args.get("skip", 0))
    except ValueError:
        raise ValidationError("'limit' and 'skip' must be integers") from None
    if not 0 <= limit <= MAX_PAGE or skip < 0:
        raise ValidationError(f"'limit' must be from 0 to {MAX_PAGE} and 'skip' not negative")
    return limit, skip


def list_subscriptions(store: Store, user: dict, args: dict | None = None) -> dict:
    """The caller's subscriptions (an admin's ``?all=1``: everyone's)."""
    args = args or {}
    query = _mine(user, args)
    if args.get("event"):
        query["event"] = args["event"]
    limit, skip = _page_args(args)
    items = list(store.db.subscriptions.find(query).sort("created_at", -1).skip(skip).limit(limit))
    return {"items": items, "total": store.db.subscriptions.count_documents(query), "limit": limit, "skip": skip}


def unsubscribe(store: Store, sid: str, user: dict) -> dict:
    doc = store.db.subscriptions.find_one({"_id": sid})
    if doc is None or (doc["owner"] != user["_id"] and not has_role(user, "admin")):
        raise NotFound(f"no subscription with id {sid!r}")
    store.db.subscriptions.delete_one({"_id": sid})
    store.db.alerts.delete_many({"subscription_id": sid})
    return doc


def list_deliveries(store: Store, user: dict, args: dict | None = None) -> dict:
    """Deliveries of the caller's subscriptions, newest first (?status=, ?subscription_id=)."""
    args = args or {}
    query = _mine(user, args)
    for name in ("status", "subscription_id", "event"):
        if args.get(name):
            query[name] = str(args[name])
    limit, skip = _page_args(args)
    items = list(store.db.deliveries.find(query).sort("created_at", -1).skip(skip).limit(limit))
    return {"items": items, "total": store.db.deliveries.count_documents(query), "limit": limit, "skip": skip}


def delivery_view(doc: dict) -> dict:
    return {"id": doc["_id"], **{k: v for k, v in doc.items() if k not in ("_id", "lease_until")}}


# ---------------------------------------------------------------- messages
def task_payload(task: dict) -> dict:
    error = task.get("error")
    return {"id": task["_id"], "function": task.get("function"), "version": task.get("version"),
            "status": task.get("status"), "reason": task.get("reason"),
            "error": error[:4000] if isinstance(error, str) else error, "submitted_by": task.get("submitted_by"),
            "finished_at": task.get("finished_at"), "attempts": len(task.get("attempts") or [])}


def describe(payload: dict) -> tuple[str, str]:
    """Subject and plain text of an e-mail for ``payload``."""
    event = payload["event"]
    lines = [f"Suanwang event {event}: {EVENTS.get(event, '')}", f"at {payload.get('at')}", ""]
    if "task" in payload:
        task = payload["task"]
        subject = f"[suanwang] task {task['id']} ({task.get('function')}) {event.split('.', 1)[1]}"
        if task.get("error"):
            subject += f": {str(task['error']).splitlines()[0][:80] if str(task['error']) else ''}"
        lines += [f"task: {task['id']}", f"function: {task.get('function')} {task.get('version') or ''}",
                  f"status: {task.get('status')}" + (f" ({task['reason']})" if task.get("reason") else ""),
                  f"submitted by: {task.get('submitted_by')}"]
        if task.get("error"):
            lines += ["", "error:", str(task["error"])]
    else:
        detail = payload.get("detail", {})
        subject = f"[suanwang] {event}: {payload.get('subject')}"
        lines += [f"{k}: {v}" for k, v in detail.items()]
    return subject, "\n".join(lines) + "\n"


# ------------------------------------------------------------------ engine
class Notifier:
    """Detects events and delivers them; ``start()`` runs its loops in daemon threads."""

    def __init__(self, store: Store, config: NotifyConfig = NotifyConfig()):
        self.store = store
        self.db = store.db
        self.config = config
        self._runner: JobRunner | None = None
        ensure_indexes(store)

    # --------------------------------------------------------------- queueing
    def _queue(self, sub: dict, event: str, key: str, payload: dict, now: datetime) -> bool:
        """Queue one delivery; False when this event was already queued for this subscription."""
        did = f"{sub['_id']}:{key}"
        channel = sub["channel"]
        payload = {"event": event, "delivery": did, "subscription": sub["_id"], "at": now.isoformat(), **payload}
        try:
            self.db.deliveries.insert_one({
                "_id": did, "subscription_id": sub["_id"], "owner": sub["owner"], "event": event,
                "channel_type": channel["type"],
                "target": target(channel) if channel["type"] in GATEWAY_TYPES else channel.get("url") or channel.get("to"),
                "payload": payload, "status": "pending", "attempts": 0, "next_try_at": now, "last_error": None,
                "errors": [], "created_at": now, "sent_at": None})
        except DuplicateKeyError:
            return False
        return True

    def on_task_change(self, change: dict) -> int:
        """A task became succeeded or failed: queue its deliveries; returns how many."""
        fields = change.get("updateDescription", {}).get("updatedFields", {})
        status = fields.get("status")
        task_id = change["documentKey"]["_id"]
        task = change.get("fullDocument") or self.db.tasks.find_one({"_id": task_id}, TASK_FIELDS) or {"_id": task_id}
        task = {**task, "status": status, "reason": fields.get("reason", task.get("reason")),
                "error": fields.get("error", task.get("error"))}
        if status == Status.SUCCEEDED.value:
            events = ["task.succeeded"]
        elif status == Status.FAILED.value:
            events = ["task.failed"] + (["task.disputed"] if task.get("reason") == "disputed" else [])
        else:
            return 0
        key = hashlib.sha1(str(change["_id"]).encode()).hexdigest()[:20]
        now = server_now(self.db)
        query = {"event": {"$in": events}, "$and": [{"task_id": {"$in": [None, task["_id"]]}},
                                                    {"function": {"$in": [None, task.get("function")]}}]}
        queued = 0
        for sub in self.db.subscriptions.find(query):
            if not sub.get("sees_all") and sub["owner"] != task.get("submitted_by"):
                continue
            queued += self._queue(sub, sub["event"], key, {"task": task_payload(task)}, now)
        return queued

    # ----------------------------------------------------------------- checks
    def check_once(self, now: datetime | None = None) -> int:
        """One round of the periodic checks; returns how many deliveries it queued."""
        now = now or server_now(self.db)
        self.db.deliveries.update_many({"status": "sending", "lease_until": {"$lt": now}},
                                       {"$set": {"status": "pending"}})
        workers = list(self.db.workers.find({}, {"host": 1, "state": 1, "last_seen": 1, "temps": 1, "gpus": 1,
                                                 "disk": 1, "quarantined": 1}))
        queued = 0
        for sub in self.db.subscriptions.find({"event": {"$in": list(CHECK_EVENTS)}}):
            firing = self._firing(sub, workers, now)
            active = {a["subject"] for a in self.db.alerts.find({"subscription_id": sub["_id"]}, {"subject": 1})}
            for subject in set(firing) - active:
                try:
                    self.db.alerts.insert_one({"_id": f"{sub['_id']}:{subject}", "subscription_id": sub["_id"],
                                               "subject": subject, "since": now})
                except DuplicateKeyError:
                    continue
                key = f"{subject}@{now:%Y%m%dT%H%M%S.%f}"
                queued += self._queue(sub, sub["event"], key, {"subject": subject, "detail": firing[subject]}, now)
            cleared = active - set(firing)
            if cleared:
                self.db.alerts.delete_many({"subscription_id": sub["_id"], "subject": {"$in": sorted(cleared)}})
        return queued

    def _firing(self, sub: dict, workers: list[dict], now: datetime) -> dict[str, dict]:
        """Subjects (worker names, or "queue") for which the subscription's condition holds now."""
        event, threshold = sub["event"], sub.get("threshold")
        if event == "queue.age":
            query = {"status": Status.QUEUED.value, "is_enabled": True,
                     "created_at": {"$lt": now - timedelta(minutes=threshold)}}
            if sub.get("function"):
                query["function"] = sub["function"]
            if not sub.get("sees_all"):
                query["submitted_by"] = sub["owner"]
            oldest = self.db.tasks.find_one(query, {"created_at": 1, "function": 1}, sort=[("created_at", 1)])
            if oldest is None:
                return {}
            age = (now - oldest["created_at"]).total_seconds()
            subject = f"queue:{sub['function']}" if sub.get("function") else "queue"
            return {subject: {"oldest_task": oldest["_id"], "function": oldest.get("function"),
                              "age_min": round(age / 60, 1), "threshold_min": threshold}}
        out = {}
        for w in workers:
            if sub.get("worker") and w["_id"] != sub["worker"]:
                continue
            detail = {"worker": w["_id"], "host": w.get("host"), "state": w.get("state"),
                      "last_seen": w.get("last_seen")}
            if event == "worker.offline":
                if w.get("state") == OFFLINE:
                    out[w["_id"]] = detail
                continue
            if w.get("state") != ONLINE:
                continue
            if event == "worker.quarantined":
                for q in w.get("quarantined") or []:
                    out[f"{w['_id']}:{q['function']}"] = {**detail, "function": q["function"], "until": q.get("until"),
                                                          "reason": q.get("reason")}
            elif event == "worker.disk":
                percent = (w.get("disk") or {}).get("percent")
                if isinstance(percent, (int, float)) and percent >= threshold:
                    out[w["_id"]] = {**detail, "disk_percent": percent, "threshold": threshold}
            elif event == "worker.temperature":
                readings = []
                if sub.get("sensor") in ("any", "cpu"):
                    readings += [("cpu " + k, v) for k, v in (w.get("temps") or {}).items()]
                if sub.get("sensor") in ("any", "gpu"):
                    readings += [(f"gpu {g.get('index')}", g.get("temp")) for g in w.get("gpus") or []]
                hot = [(name, v) for name, v in readings if isinstance(v, (int, float)) and v >= threshold]
                if hot:
                    name, value = max(hot, key=lambda item: item[1])
                    out[w["_id"]] = {**detail, "sensor": name, "celsius": value, "threshold": threshold}
        return out

    # ------------------------------------------------------------- deliveries
    def deliver_once(self, now: datetime | None = None) -> dict | None:
        """Claim one due delivery and try it once; returns it as stored afterwards, or None."""
        now = now or server_now(self.db)
        doc = self.db.deliveries.find_one_and_update(
            {"status": "pending", "next_try_at": {"$lte": now}},
            {"$set": {"status": "sending", "lease_until": now + timedelta(seconds=self.config.sending_lease_s)},
             "$inc": {"attempts": 1}}, sort=[("next_try_at", 1)], return_document=ReturnDocument.AFTER)
        if doc is None:
            return None
        try:
            self._send(doc)
        except DeliveryFailed as exc:
            return self._failed(doc, exc)
        except Exception as exc:  # noqa: BLE001 - a broken channel must never stop the sender
            log.exception("delivery %s raised", doc["_id"])
            return self._failed(doc, DeliveryFailed(f"{type(exc).__name__}: {str(exc)[:200]}"))
        return self.db.deliveries.find_one_and_update(
            {"_id": doc["_id"]}, {"$set": {"status": "sent", "sent_at": server_now(self.db), "last_error": None},
                                  "$unset": {"lease_until": ""}}, return_document=ReturnDocument.AFTER)

    def _send(self, doc: dict) -> None:
        sub = self.db.subscriptions.find_one({"_id": doc["subscription_id"]})
        if sub is None:
            raise DeliveryFailed("the subscription was removed", permanent=True)
        channel = sub["channel"]
        if channel["type"] == "webhook":
            send_webhook(channel["url"], channel["secret"], doc["payload"], timeout_s=self.config.webhook_timeout_s)
        elif channel["type"] in GATEWAY_TYPES:
            send_gateway(channel, doc["payload"], *describe(doc["payload"]), timeout_s=self.config.webhook_timeout_s)
        else:
            subject, text = describe(doc["payload"])
            send_email(self.config.smtp, channel["to"], subject, text)

    def _failed(self, doc: dict, exc: DeliveryFailed) -> dict:
        now = server_now(self.db)
        final = exc.permanent or doc["attempts"] >= self.config.max_attempts
        delay = min(self.config.backoff_s * 2 ** (doc["attempts"] - 1), self.config.backoff_max_s)
        log.warning("delivery %s (%s) try %d failed%s: %s", doc["_id"], doc["event"], doc["attempts"],
                    "; giving up" if final else f"; next try in {delay:g}s", exc.reason)
        return self.db.deliveries.find_one_and_update(
            {"_id": doc["_id"]},
            {"$set": {"status": "failed" if final else "pending", "last_error": exc.reason,
                      "next_try_at": now if final else now + timedelta(seconds=delay)},
             "$unset": {"lease_until": ""},
             "$push": {"errors": {"$each": [{"at": now, "error": exc.reason}], "$slice": -10}}},
            return_document=ReturnDocument.AFTER)

    # ------------------------------------------------------------------ loops
    def jobs(self) -> list[Job]:
        """The leader jobs (``scheduler.leader_loop``): the task change stream, the checks, the senders."""
        return [Job("notify-stream", 1.0, self._stream_round),
                Job("notify-checks", self.config.check_s, self._check_round),
                Job("notify-send", self.config.poll_s, self._send_round, threads=self.config.senders)]

    def start(self) -> "Notifier":
        """Run the jobs in this process outside any leader (tests, tools); ``stop()`` ends them."""
        self._runner = JobRunner(self.jobs()).start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.stop(timeout)

    def _check_round(self, _stop) -> None:
        self.check_once()

    def _send_round(self, _stop) -> float | None:
        return 0 if self.deliver_once() is not None else None  # more may be due: look again at once

    def _stream_round(self, stop) -> float:
        try:
            self._watch(stop)
        except OperationFailure as exc:
            if exc.code != CHANGE_STREAM_HISTORY_LOST:
                raise
            log.warning("the saved change-stream position is too old; task events since are lost")
            self.db.notify_state.delete_one({"_id": STREAM_STATE})
        return 0  # the stream ended: open it again at once

    def _handle(self, change: dict) -> None:
        """One event; one that cannot be handled is logged and skipped, never retried forever."""
        try:
            self.on_task_change(change)
        except PyMongoError:
            raise  # MongoDB away: resume from the saved token, this event included
        except Exception:  # noqa: BLE001
            log.exception("skipped a task event it could not handle: %s", str(change.get("documentKey"))[:200])

    def _watch(self, stop: threading.Event) -> None:
        state = self.db.notify_state.find_one({"_id": STREAM_STATE})
        resume = {"resume_after": state["token"]} if state and state.get("token") else {}
        saved_at = 0.0
        with self.db.tasks.watch(TASK_PIPELINE, max_await_time_ms=500, **resume) as stream:
            while not stop.is_set() and stream.alive:
                change = stream.try_next()
                if change is not None:
                    self._handle(change)
                token = stream.resume_token
                idle_save = change is None and time.monotonic() - saved_at > 10
                if token is not None and (change is not None or idle_save or not resume):
                    self.db.notify_state.update_one({"_id": STREAM_STATE}, {"$set": {"token": token}}, upsert=True)
                    saved_at = time.monotonic()
                    resume = {"resume_after": token}


# ------------------------------------------------------------- installing
def install(leader, config: NotifyConfig = NotifyConfig()) -> None:
    """Run a ``Notifier``'s jobs in ``leader``'s process whenever it holds the scheduler lease."""
    leader.add(*Notifier(leader.store, config).jobs())


__all__ = ["EVENTS", "NotifyConfig", "Notifier", "install", "subscribe", "unsubscribe", "list_subscriptions",
           "list_deliveries", "subscription_view", "delivery_view", "describe", "ensure_indexes"]
