"""Notifications: users subscribe to events; the leader detects them and delivers by e-mail,
signed webhook, SMS or WeChat Work robot (HTTP gateways), retrying with backoff, in threads of its own: never in the task path.

Collections:

``subscriptions`` — one user's wish to hear of one kind of event
    event          task.succeeded | task.failed | task.disputed | worker.offline |
                   worker.temperature | worker.disk | queue.age | schedule.error | credits.low
                   (see ``EVENTS``)
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
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from fsm.errors import TaskNotFound
from fsm.states import Status
from fsm.store import Store
from fsm.store.driver import OperationFailure, StoreError as PyMongoError
from fsm.store.notify import STREAM_STATE, TASK_PIPELINE  # noqa: F401  (kept importable from here)
from fsm.store.workers import OFFLINE, ONLINE
from scheduler.config import ServerConfig, default
from scheduler.leader_loop import Job, JobRunner
from scheduler.notify_channels import DeliveryFailed, SmtpSettings, send_email, send_webhook
from scheduler.notify_gateways import GATEWAY_TYPES, send_gateway, target

from scheduler.subscriptions import (CHECK_EVENTS, EVENTS, TASK_EVENTS, delivery_view, list_deliveries,  # noqa: F401
                                     list_subscriptions, subscribe, subscription_view, unsubscribe)

log = logging.getLogger("suanwang.notify")

CHANGE_STREAM_HISTORY_LOST = 286
#: Longest a sender goes without looking for due deliveries (they are normally woken when one is queued).
IDLE_LOOK_S = 10.0
#: How often the change stream's position is saved while events flow, and while none come.
TOKEN_SAVE_S, TOKEN_IDLE_SAVE_S = 1.0, 10.0
#: While nobody subscribes to task events the stream stays closed (it would read every change of
#: every task for nothing); this often the notifier looks again, and an open stream asks whether
#: anyone still listens.
QUIET_LOOK_S = 5.0
#: What the notifier reads of the task itself (one indexed lookup, only for an event someone
#: subscribed to; the change stream carries only status, reason and error: see
#: ``fsm.store.notify.TASK_PIPELINE``).
TASK_FIELDS = {"function": 1, "version": 1, "submitted_by": 1, "finished_at": 1, "reason": 1, "attempts.id": 1}


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
    credits_low_threshold: float = default("credits_low_threshold")

    @classmethod
    def from_server_config(cls, config: ServerConfig) -> "NotifyConfig":
        """The notifier's part of the server's (validated) settings."""
        smtp = SmtpSettings(host=config.smtp_host, port=config.smtp_port, user=config.smtp_user,
                            password=config.smtp_password, tls=config.smtp_tls, mail_from=config.mail_from,
                            timeout_s=config.smtp_timeout_s)
        return cls(smtp=smtp, max_attempts=config.notify_max_attempts, backoff_s=config.notify_backoff_s,
                   backoff_max_s=config.notify_backoff_max_s, webhook_timeout_s=config.notify_webhook_timeout_s,
                   check_s=config.notify_check_s, poll_s=config.notify_poll_s,
                   sending_lease_s=config.notify_sending_lease_s, senders=config.notify_senders,
                   credits_low_threshold=config.credits_low_threshold)


def ensure_indexes(store: Store) -> None:
    store.notify.ensure_indexes()


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
        self._runner: JobRunner | None = None
        # Senders look for due deliveries when this process queued one (``_queued``), when the
        # earliest retry comes due, and at the latest every ``IDLE_LOOK_S`` (monotonic times).
        self._queued = threading.Event()
        self._next_look = 0.0
        self._quiet_at = None  # the last cluster time nobody subscribed to task events (this process saw)
        self._quiet_saved = float("-inf")
        ensure_indexes(store)

    # --------------------------------------------------------------- queueing
    def _queue(self, sub: dict, event: str, key: str, payload: dict, now: datetime) -> bool:
        """Queue one delivery; False when this event was already queued for this subscription."""
        did = f"{sub['_id']}:{key}"
        channel = sub["channel"]
        payload = {"event": event, "delivery": did, "subscription": sub["_id"], "at": now.isoformat(), **payload}
        stored = self.notify.queue_delivery({
            "_id": did, "subscription_id": sub["_id"], "owner": sub["owner"], "event": event,
            "channel_type": channel["type"],
            "target": target(channel) if channel["type"] in GATEWAY_TYPES else channel.get("url") or channel.get("to"),
            "payload": payload, "status": "pending", "attempts": 0, "next_try_at": now, "last_error": None,
            "errors": [], "created_at": now, "sent_at": None})
        if stored:
            self._queued.set()
        return stored

    def on_task_change(self, change: dict) -> int:
        """A task became succeeded or failed: queue its deliveries; returns how many."""
        fields = change.get("updateDescription", {}).get("updatedFields", {})
        status = fields.get("status")
        task_id = change["documentKey"]["_id"]
        if status == Status.SUCCEEDED.value:
            events = ["task.succeeded"]
        elif status == Status.FAILED.value:
            events = ["task.failed", "task.disputed"]  # disputed: only when the reason says so (below)
        else:
            return 0
        subs = self.notify.task_subscriptions(events, task_id)
        if not subs:  # the common case: nobody listens, so the task is not read
            return 0
        task = change.get("fullDocument") or self._task(task_id)
        task = {**task, "status": status, "reason": fields.get("reason", task.get("reason")),
                "error": fields.get("error", task.get("error"))}
        key = hashlib.sha1(str(change["_id"]).encode()).hexdigest()[:20]
        now = self.store.now()
        queued = 0
        ended = fields.get("finished_at")
        for sub in subs:
            if sub.get("function") not in (None, task.get("function")):
                continue
            if ended is not None and sub.get("created_at") is not None and sub["created_at"] > ended:
                continue  # made after the task ended (an event replayed from before it): not its news
            if sub["event"] == "task.disputed" and task.get("reason") != "disputed":
                continue
            if not sub.get("sees_all") and sub["owner"] != task.get("submitted_by"):
                continue
            queued += self._queue(sub, sub["event"], key, {"task": task_payload(task)}, now)
        return queued

    def _task(self, task_id: str) -> dict:
        try:
            return self.store.tasks.get(task_id, TASK_FIELDS)
        except TaskNotFound:  # removed since (retention): the event still names it
            return {"_id": task_id}

    # ----------------------------------------------------------------- checks
    def check_once(self, now: datetime | None = None) -> int:
        """One round of the periodic checks; returns how many deliveries it queued."""
        now = now or self.store.now()
        if self.notify.release_stale_sending(now):
            self._queued.set()
        workers = self.store.workers.list()
        queued = 0
        for sub in self.notify.check_subscriptions(list(CHECK_EVENTS)):
            firing = self._firing(sub, workers, now)
            active = self.notify.alert_subjects(sub["_id"])
            for subject in set(firing) - active:
                if not self.notify.open_alert(sub["_id"], subject, now):
                    continue  # another process opened it first
                key = f"{subject}@{now:%Y%m%dT%H%M%S.%f}"
                queued += self._queue(sub, sub["event"], key, {"subject": subject, "detail": firing[subject]}, now)
            cleared = active - set(firing)
            if cleared:
                self.notify.clear_alerts(sub["_id"], sorted(cleared))
        return queued + self._credits_low(now)

    def _credits_low(self, now: datetime) -> int:
        """Accounts under the low threshold whose reminder has not gone out: one ``credits.low`` each,
        to the account's own user and to super-users and admins (again only after a top-up)."""
        low = self.store.ledger.newly_low(self.config.credits_low_threshold)
        if not low:
            return 0
        subs = self.notify.check_subscriptions(["credits.low"])
        queued = 0
        for account in low:
            kind, _, name = account["_id"].partition(":")
            detail = {"account": account["_id"], "balance": account.get("balance"),
                      "threshold": self.config.credits_low_threshold}
            key = f"{account['_id']}#{account.get('low_round', 0)}"  # one delivery per episode, even if replayed
            for sub in subs:
                if sub.get("sees_all") or (kind == "user" and sub["owner"] == name):
                    queued += self._queue(sub, "credits.low", key, {"subject": account["_id"], "detail": detail}, now)
            self.store.ledger.mark_low(account["_id"])  # after queueing: a crash in between re-queues the same key
        return queued

    def _firing(self, sub: dict, workers: list[dict], now: datetime) -> dict[str, dict]:
        """Subjects (worker names, or "queue") for which the subscription's condition holds now."""
        event, threshold = sub["event"], sub.get("threshold")
        if event == "schedule.error":  # super-users and admins hear of every schedule, others of their own
            return {f"schedule:{d['_id']}": {"schedule": d["_id"], "owner": d.get("owner"), "error": d["last_error"],
                                             "at": d.get("last_error_at")}
                    for d in self.store.schedules.failing(None if sub.get("sees_all") else sub["owner"])}
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
        elif channel["type"] in GATEWAY_TYPES:
            send_gateway(channel, doc["payload"], *describe(doc["payload"]), timeout_s=self.config.webhook_timeout_s)
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

    def _send_round(self, _stop) -> float:
        wait = self._next_look - time.monotonic()
        if wait > 0 and not self._queued.wait(min(wait, self.config.poll_s)):
            return 0  # nothing queued meanwhile: wait again (a stop is noticed within poll_s)
        self._queued.clear()  # before the look: a delivery queued after it sets it again
        self._next_look = time.monotonic() + IDLE_LOOK_S
        if self.deliver_once() is not None:
            self._queued.set()  # more may be due: every sender looks again at once
            return 0
        due = self.notify.next_retry_at()  # the earliest retry waiting for its time, if any
        if due is not None:
            self._next_look = min(self._next_look,
                                  time.monotonic() + max(0.0, (due - self.store.now()).total_seconds()))
        return 0

    def _stream_round(self, stop) -> float:
        try:
            listening, at = self.notify.task_listeners(TASK_EVENTS)
            if not listening:
                self._quiet(at)
                stop.wait(QUIET_LOOK_S)
                return 0
            self._watch(stop)
        except OperationFailure as exc:
            if exc.code != CHANGE_STREAM_HISTORY_LOST:
                raise
            log.warning("the saved change-stream position is too old; task events since are lost")
            self.notify.forget_token()
            self._quiet_at = None
        return 0  # the stream ended: open it again at once

    def _quiet(self, at) -> None:
        """Nobody listens to task events: keep the time of this look (saved every
        ``TOKEN_IDLE_SAVE_S``), so the stream opened for a new subscription starts there and
        misses none of its events, even under a new leader."""
        self._quiet_at = at
        if time.monotonic() - self._quiet_saved > TOKEN_IDLE_SAVE_S:
            self.notify.save_quiet_since(at)
            self._quiet_saved = time.monotonic()

    def _handle(self, change: dict) -> None:
        """One event; one that cannot be handled is logged and skipped, never retried forever."""
        try:
            self.on_task_change(change)
        except PyMongoError:
            raise  # MongoDB away: resume from the saved token, this event included
        except Exception:  # noqa: BLE001
            log.exception("skipped a task event it could not handle: %s", str(change.get("documentKey"))[:200])

    def _watch(self, stop: threading.Event) -> None:
        position = self.notify.stream_position()
        resumed = position.get("token")
        start_at = None if resumed else (self._quiet_at or position.get("quiet_since"))
        self._quiet_at, self._quiet_saved = None, float("-inf")
        saved_at, unsaved, looked = 0.0, False, time.monotonic()
        with self.notify.watch_finished_tasks(resumed, start_at=start_at) as stream:
            while not stop.is_set() and stream.alive:
                change = stream.try_next()
                if change is not None:
                    self._handle(change)
                token = stream.resume_token
                # While events flow the position is saved at most once a second, and at once when
                # they stop (every 10 s when idle): after a restart the events since the saved one
                # are seen again, and their deliveries (ids from the event) are not queued twice.
                unsaved = unsaved or change is not None
                elapsed = time.monotonic() - saved_at
                due = elapsed > TOKEN_SAVE_S if change is not None else (unsaved or elapsed > TOKEN_IDLE_SAVE_S)
                if token is not None and (due or resumed is None):
                    self.notify.save_token(token)
                    saved_at, resumed, unsaved = time.monotonic(), token, False
                if change is None and time.monotonic() - looked > QUIET_LOOK_S:
                    looked = time.monotonic()
                    if not self.notify.task_listeners(TASK_EVENTS)[0]:
                        return  # the last listener left: the next round closes the stream


# ------------------------------------------------------------- installing
def install(leader, config: NotifyConfig = NotifyConfig()) -> None:
    """Run a ``Notifier``'s jobs in ``leader``'s process whenever it holds the scheduler lease."""
    leader.add(*Notifier(leader.store, config).jobs())


__all__ = ["EVENTS", "NotifyConfig", "Notifier", "install", "subscribe", "unsubscribe", "list_subscriptions",
           "list_deliveries", "subscription_view", "delivery_view", "describe", "ensure_indexes"]
