"""Subscriptions: who wants to hear of which event, through which channel (use cases, no Flask).

The vocabulary of events lives here; ``scheduler.notify`` detects them and delivers.
"""
from __future__ import annotations

import re
import secrets
from typing import Any
from urllib.parse import urlparse

from fsm.fields import json_object
from fsm.errors import NotFound, ValidationError
from fsm.store import Store
from fsm.store.users import has_role
from scheduler.notify_gateways import GATEWAY_TYPES, gateway_channel, public_channel

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
    "schedule.error": "a schedule's firing could not publish its task (the schedule's last_error)",
    "credits.low": "a credit balance fell under the server's credits_low_threshold (once, until the next top-up)",
}
TASK_EVENTS = ("task.succeeded", "task.failed", "task.disputed")
CHECK_EVENTS = ("worker.offline", "worker.temperature", "worker.disk", "worker.quarantined", "queue.age",
                "schedule.error")
THRESHOLDS = {"worker.temperature": (1, 200), "worker.disk": (1, 100), "queue.age": (0.1, 7 * 24 * 60)}
SENSORS = ("any", "cpu", "gpu")
EMAIL = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$|^[^@\s,;<>]+@localhost$")
MAX_PAGE = 500


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
    json_object(body, {"event", "task_id", "function", "worker", "threshold", "sensor", "channel"}, "a subscription")
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
    if out["channel"].get("type") in GATEWAY_TYPES and not show_secret:
        out["channel"] = public_channel(out["channel"])
    return out


def _owner(user: dict, args: dict) -> str | None:
    """Whose subscriptions a listing shows: the caller's, or everyone's (None) for an admin's ``?all=1``."""
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
