"""Notifications: users subscribe to events; the leader detects them and delivers by e-mail
or signed webhook, retrying with backoff, in threads of its own: never in the task path.

Collections:

``subscriptions`` — one user's wish to hear of one kind of event
    event          task.succeeded | task.failed | task.disputed | worker.offline |
                   worker.temperature | worker.disk | queue.age            (see ``EVENTS``)
    task_id, function, worker      scope: each null means "any" (global when all are null)
    threshold      °C (worker.temperature), percent (worker.disk), minutes (queue.age)
    sensor         cpu | gpu | any (worker.temperature)
    channel        {type: email, to: [addresses]} | {type: webhook, url, secret}
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

``Notifier`` runs three loops while its process leads: the change stream on ``tasks``
(``on_task_change``), the periodic checks over ``workers`` and ``tasks`` (``check_once``) and
the senders (``deliver_once``). Each is one iteration per method, testable by itself.
``install(leader, config)`` starts it whenever the leader gains the lease and stops it when
the lease is lost.
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

from fsm.errors import NotFound, ValidationError
from fsm.states import Status
from fsm.store import Store
from fsm.store.driver import OperationFailure, StoreError as PyMongoError
from fsm.store.notify import STREAM_STATE, TASK_PIPELINE  # noqa: F401  (kept importable from here)
from fsm.store.users import has_role
from fsm.store.workers import OFFLINE, ONLINE
from scheduler.notify_channels import DeliveryFailed, SmtpSettings, TLS_MODES, send_email, send_webhook

log = logging.getLogger("suanwang.notify")

#: Event types and what they mean.
EVENTS = {
    "task.succeeded": "a task succeeded",
    "task.failed": "a task failed (errors, retries exhausted, disputes)",
    "task.disputed": "a redundant task failed because its results disagreed",
    "worker.offline": "a worker stopped heartbeating",
    "worker.temperature": "a worker's CPU or GPU is hotter than threshold °C",
    "worker.disk": "a worker's disk is fuller than threshold percent",
    "queue.age": "the oldest queued task has waited longer than threshold minutes",
}
TASK_EVENTS = ("task.succeeded", "task.failed", "task.disputed")
CHECK_EVENTS = ("worker.offline", "worker.temperature", "worker.disk", "queue.age")
THRESHOLDS = {"worker.temperature": (1, 200), "worker.disk": (1, 100), "queue.age": (0.1, 7 * 24 * 60)}
SENSORS = ("any", "cpu", "gpu")
EMAIL = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$|^[^@\s,;<>]+@localhost$")
CHANGE_STREAM_HISTORY_LOST = 286
MAX_PAGE = 500


@dataclass(frozen=True)
class NotifyConfig:
    """How the leader delivers; ``from_server_config`` reads it from the server's settings."""

    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    #: Tries of one delivery before it is recorded as failed.
    max_attempts: int = 5
    #: Wait before the second try; doubled for each later one, up to ``backoff_max_s``.
    backoff_s: float = 5.0
    backoff_max_s: float = 600.0
    webhook_timeout_s: float = 10.0
    #: Period of the worker, temperature, disk and queue-age checks.
    check_s: float = 30.0
    #: How long an idle sender waits before looking for due deliveries again.
    poll_s: float = 1.0
    #: A delivery being sent by a process that died is retried after this long.
    sending_lease_s: float = 120.0
    senders: int = 2

    @classmethod
    def from_server_config(cls, config: Any) -> "NotifyConfig":
        """Reads ``smtp_host``, ``smtp_port``, ``smtp_user``, ``smtp_password``, ``smtp_tls``,
        ``mail_from`` and ``notify_*`` settings when the server's config has them."""
        get = lambda name, default: getattr(config, name, None) or default  # noqa: E731
        smtp = SmtpSettings(host=get("smtp_host", None), port=int(get("smtp_port", 25)), user=get("smtp_user", None),
                            password=get("smtp_password", None), tls=get("smtp_tls", "none"),
                            mail_from=get("mail_from", "suanwang@localhost"))
        if smtp.tls not in TLS_MODES:
            raise ValidationError(f"smtp_tls must be one of {', '.join(TLS_MODES)}, got {smtp.tls!r}")
        return cls(smtp=smtp, max_attempts=int(get("notify_max_attempts", 5)),
                   backoff_s=float(get("notify_backoff_s", 5.0)), check_s=float(get("notify_check_s", 30.0)))


def ensure_indexes(store: Store) -> None:
    store.notify.ensure_indexes()


# ------------------------------------------------------------ subscriptions
def _channel(raw: Any) -> dict:
    if not isinstance(raw, dict) or raw.get("type") not in ("email", "webhook"):
        raise ValidationError("'channel' must be {\"type\": \"email\", \"to\": \"a@b.org\"} or "
                              "{\"type\": \"webhook\", \"url\": \"https://...\"}", field="channel")
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
    doc: dict[str, Any] = {"_id": store.notify.new_id(), "event": event}
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
    doc.update(owner=user["_id"], sees_all=has_role(user, "super"), created_at=store.now())
    return store.notify.add_subscription(doc)


def subscription_view(doc: dict, *, show_secret: bool = False) -> dict:
    out = {"id": doc["_id"], **{k: v for k, v in doc.items() if k not in ("_id", "sees_all")}}
    if out["channel"].get("type") == "webhook" and not show_secret:
        out["channel"] = {k: v for k, v in out["channel"].items() if k != "secret"}
    return out


def _owner(user: dict, args: dict) -> str | None:
    """Whose items a listing shows: the caller's, or (an admin's ``?all=1``) everyone's (None)."""
    if has_role(user, "admin") and str(args.get("all", "")).lower() in ("1", "true", "yes"):
        return None
    return user["_id"]


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
    limit, skip = _page_args(args)
    items, total = store.notify.subscriptions_page(owner=_owner(user, args), event=args.get("event"), skip=skip,
                                                   limit=limit)
    return {"items": items, "total": total, "limit": limit, "skip": skip}


def unsubscribe(store: Store, sid: str, user: dict) -> dict:
    doc = store.notify.subscription(sid)
    if doc is None or (doc["owner"] != user["_id"] and not has_role(user, "admin")):
        raise NotFound(f"no subscription with id {sid!r}")
    store.notify.remove_subscription(sid)
    return doc


def list_deliveries(store: Store, user: dict, args: dict | None = None) -> dict:
    """Deliveries of the caller's subscriptions, newest first (?status=, ?subscription_id=)."""
    args = args or {}
    filters = {name: str(args[name]) for name in ("status", "subscription_id", "event") if args.get(name)}
    limit, skip = _page_args(args)
    items, total = store.notify.deliveries_page(owner=_owner(user, args), filters=filters, skip=skip, limit=limit)
    return {"items": items, "total": total, "limit": limit, "skip": skip}


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
        self.notify = store.notify
        self.config = config
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        ensure_indexes(store)

    # --------------------------------------------------------------- queueing
    def _queue(self, sub: dict, event: str, key: str, payload: dict, now: datetime) -> bool:
        """Queue one delivery; False when this event was already queued for this subscription."""
        did = f"{sub['_id']}:{key}"
        channel = sub["channel"]
        payload = {"event": event, "delivery": did, "subscription": sub["_id"], "at": now.isoformat(), **payload}
        return self.notify.queue_delivery({
            "_id": did, "subscription_id": sub["_id"], "owner": sub["owner"], "event": event,
            "channel_type": channel["type"], "target": channel.get("url") or channel.get("to"),
            "payload": payload, "status": "pending", "attempts": 0, "next_try_at": now, "last_error": None,
            "errors": [], "created_at": now, "sent_at": None})

    def on_task_change(self, change: dict) -> int:
        """A task became succeeded or failed: queue its deliveries; returns how many."""
        fields = change.get("updateDescription", {}).get("updatedFields", {})
        status = fields.get("status")
        task = change.get("fullDocument") or {"_id": change["documentKey"]["_id"]}
        task = {**task, "status": status, "reason": fields.get("reason", task.get("reason")),
                "error": fields.get("error", task.get("error"))}
        if status == Status.SUCCEEDED.value:
            events = ["task.succeeded"]
        elif status == Status.FAILED.value:
            events = ["task.failed"] + (["task.disputed"] if task.get("reason") == "disputed" else [])
        else:
            return 0
        key = hashlib.sha1(str(change["_id"]).encode()).hexdigest()[:20]
        now = self.store.now()
        queued = 0
        for sub in self.notify.task_subscriptions(events, task["_id"], task.get("function")):
            if not sub.get("sees_all") and sub["owner"] != task.get("submitted_by"):
                continue
            queued += self._queue(sub, sub["event"], key, {"task": task_payload(task)}, now)
        return queued

    # ----------------------------------------------------------------- checks
    def check_once(self, now: datetime | None = None) -> int:
        """One round of the periodic checks; returns how many deliveries it queued."""
        now = now or self.store.now()
        self.notify.release_stale_sending(now)
        workers = self.store.workers.list()
        queued = 0
        for sub in self.notify.check_subscriptions(list(CHECK_EVENTS)):
            firing = self._firing(sub, workers, now)
            active = self.notify.alert_subjects(sub["_id"])
            for subject in set(firing) - active:
                if not self.notify.open_alert(sub["_id"], subject, now):
                    continue
                key = f"{subject}@{now:%Y%m%dT%H%M%S.%f}"
                queued += self._queue(sub, sub["event"], key, {"subject": subject, "detail": firing[subject]}, now)
            cleared = active - set(firing)
            if cleared:
                self.notify.clear_alerts(sub["_id"], sorted(cleared))
        return queued

    def _firing(self, sub: dict, workers: list[dict], now: datetime) -> dict[str, dict]:
        """Subjects (worker names, or "queue") for which the subscription's condition holds now."""
        event, threshold = sub["event"], sub.get("threshold")
        if event == "queue.age":
            # The one definition of queue age (oldest queued, enabled task), as /stats and /metrics use.
            oldest = self.store.reads.oldest_queued(function=sub.get("function"),
                                                    submitted_by=None if sub.get("sees_all") else sub["owner"])
            if oldest is None or oldest["created_at"] >= now - timedelta(minutes=threshold):
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
            if event == "worker.disk":
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
        now = now or self.store.now()
        doc = self.notify.claim_delivery(now, self.config.sending_lease_s)
        if doc is None:
            return None
        try:
            self._send(doc)
        except DeliveryFailed as exc:
            return self._failed(doc, exc)
        except Exception as exc:  # noqa: BLE001 - a broken channel must never stop the sender
            log.exception("delivery %s raised", doc["_id"])
            return self._failed(doc, DeliveryFailed(f"{type(exc).__name__}: {str(exc)[:200]}"))
        return self.notify.mark_sent(doc["_id"], self.store.now())

    def _send(self, doc: dict) -> None:
        sub = self.notify.subscription(doc["subscription_id"])
        if sub is None:
            raise DeliveryFailed("the subscription was removed", permanent=True)
        channel = sub["channel"]
        if channel["type"] == "webhook":
            send_webhook(channel["url"], channel["secret"], doc["payload"], timeout_s=self.config.webhook_timeout_s)
        else:
            subject, text = describe(doc["payload"])
            send_email(self.config.smtp, channel["to"], subject, text)

    def _failed(self, doc: dict, exc: DeliveryFailed) -> dict:
        now = self.store.now()
        final = exc.permanent or doc["attempts"] >= self.config.max_attempts
        delay = min(self.config.backoff_s * 2 ** (doc["attempts"] - 1), self.config.backoff_max_s)
        log.warning("delivery %s (%s) try %d failed%s: %s", doc["_id"], doc["event"], doc["attempts"],
                    "; giving up" if final else f"; next try in {delay:g}s", exc.reason)
        return self.notify.mark_failed(doc["_id"], final=final, reason=exc.reason, now=now,
                                       next_try_at=now if final else now + timedelta(seconds=delay))

    # ------------------------------------------------------------------ loops
    def start(self) -> "Notifier":
        self._stop.clear()
        loops = [("stream", self._stream_loop), ("checks", self._check_loop)]
        loops += [(f"sender{i}", self._send_loop) for i in range(self.config.senders)]
        for name, target in loops:
            thread = threading.Thread(target=target, name=f"suanwang-notify-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []

    def _check_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.check_once()
            except PyMongoError as exc:
                log.warning("notification checks skipped: MongoDB error %s", str(exc)[:200])
            except Exception:  # noqa: BLE001
                log.exception("notification checks failed")
            self._stop.wait(self.config.check_s)

    def _send_loop(self) -> None:
        while not self._stop.is_set():
            try:
                if self.deliver_once() is None:
                    self._stop.wait(self.config.poll_s)
            except PyMongoError as exc:
                log.warning("sender paused: MongoDB error %s", str(exc)[:200])
                self._stop.wait(1.0)
            except Exception:  # noqa: BLE001
                log.exception("sender failed")
                self._stop.wait(1.0)

    def _stream_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._watch()
            except OperationFailure as exc:
                if exc.code == CHANGE_STREAM_HISTORY_LOST:
                    log.warning("the saved change-stream position is too old; task events since are lost")
                    self.notify.forget_token()
                else:
                    log.warning("task change stream failed: %s", str(exc)[:200])
                    self._stop.wait(1.0)
            except PyMongoError as exc:
                log.warning("task change stream interrupted: %s", str(exc)[:200])
                self._stop.wait(1.0)
            except Exception:  # noqa: BLE001
                log.exception("task change stream failed")
                self._stop.wait(1.0)

    def _watch(self) -> None:
        resumed = self.notify.resume_token()
        saved_at = 0.0
        with self.notify.watch_finished_tasks(resumed) as stream:
            while not self._stop.is_set() and stream.alive:
                change = stream.try_next()
                if change is not None:
                    self.on_task_change(change)
                token = stream.resume_token
                idle_save = change is None and time.monotonic() - saved_at > 10
                if token is not None and (change is not None or idle_save or not resumed):
                    self.notify.save_token(token)
                    saved_at = time.monotonic()
                    resumed = token


# ------------------------------------------------------------- installing
_notifiers: dict[int, Notifier] = {}


def install(leader, config: NotifyConfig = NotifyConfig()) -> None:
    """Run a ``Notifier`` in ``leader``'s process whenever it holds the scheduler lease."""

    def gained(_scheduler) -> None:
        old = _notifiers.pop(id(leader), None)
        if old is not None:
            old.stop()
        _notifiers[id(leader)] = Notifier(leader.store, config).start()

    def lost() -> None:
        notifier = _notifiers.pop(id(leader), None)
        if notifier is not None:
            notifier.stop()

    leader.on_lead.append(gained)
    leader.on_lose.append(lost)


__all__ = ["EVENTS", "NotifyConfig", "Notifier", "install", "subscribe", "unsubscribe", "list_subscriptions",
           "list_deliveries", "subscription_view", "delivery_view", "describe", "ensure_indexes"]
