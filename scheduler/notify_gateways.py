"""SMS and WeChat Work group-robot channels, each through a configurable HTTP gateway.

A channel is checked when the subscription is made (``gateway_channel``) and sent by the
notifier's senders (``send_gateway``), which retry and record it like a webhook:

    {"type": "sms", "url": "https://sms.example.org/send", "to": ["+8613800000000"],
     "headers": {"Authorization": "Bearer ..."}, "body": {"phone": "{to}", "text": "{text}"}}
    {"type": "wechat", "url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...",
     "mentioned_mobile_list": ["13800000000"]}

``body`` is a JSON template: every string in it may name the event's fields in braces
(``FIELDS``; ``{{`` and ``}}`` are literal braces); it is sent as JSON. SMS sends one request
per number in ``to`` (``{to}`` is that number); its default body is ``{"to": "{to}", "text":
"{text}"}``. WeChat's default body is the group robot's ``{"msgtype": "text", "text":
{"content": "{message}"}}``; its answer must say ``"errcode": 0``. Header values and the
robot's ``key`` are secrets: views show them masked.
"""
from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlparse, urlunparse

import requests

from fsm.errors import ValidationError
from scheduler.notify_channels import DeliveryFailed

GATEWAY_TYPES = ("sms", "wechat")
#: What a body template may name.
FIELDS = {
    "event": "the event type, e.g. task.failed",
    "at": "when it was seen (ISO 8601, UTC)",
    "delivery": "the delivery id (the same on every retry: a receiver can drop duplicates)",
    "subject": "one line: what happened",
    "text": "one short line for an SMS (the subject without the [suanwang] prefix)",
    "message": "the whole plain-text message, as in the e-mail",
    "task_id": "the task's id (task events)", "function": "the task's function", "version": "its version",
    "status": "the task's status", "reason": "why it failed (e.g. disputed)", "error": "the task's error",
    "submitted_by": "who published the task", "worker": "the worker's name (worker events)",
    "to": "the SMS recipient of this request (sms only)",
}
SMS_BODY = {"to": "{to}", "text": "{text}"}
WECHAT_BODY = {"msgtype": "text", "text": {"content": "{message}"}}
PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")
PHONE = re.compile(r"^\+?[0-9]{5,16}$")
HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")
FORBIDDEN_HEADERS = {"host", "content-length", "transfer-encoding", "connection"}
MAX_BODY_BYTES, MAX_HEADERS, MAX_RECIPIENTS, MAX_DEPTH = 8192, 20, 20, 8
#: The group robot refuses a text message longer than this (UTF-8 bytes).
ROBOT_TEXT_BYTES = 2048
ERROR_TEXT = 4000


# ------------------------------------------------------------------ checking
def gateway_channel(raw: dict) -> dict:
    """The stored form of an ``sms`` or ``wechat`` channel; ``ValidationError`` naming the problem."""
    kind = raw["type"]
    allowed = {"type", "url", "headers", "body"} | ({"to"} if kind == "sms" else {"mentioned_mobile_list"})
    unknown = set(raw) - allowed
    if unknown:
        raise ValidationError(f"unknown field(s) in an {kind} channel: {', '.join(sorted(unknown))} "
                              f"(allowed: {', '.join(sorted(allowed))})", field="channel")
    channel: dict[str, Any] = {"type": kind, "url": _url(raw.get("url"), kind), "headers": _headers(raw.get("headers"))}
    if kind == "sms":
        channel["to"] = _phones(raw.get("to"), "channel.to", required=True)
    elif raw.get("mentioned_mobile_list") is not None:
        channel["mentioned_mobile_list"] = _phones(raw["mentioned_mobile_list"], "channel.mentioned_mobile_list",
                                                   allow_all=True)
    body = raw.get("body")
    if body is not None:
        if not isinstance(body, (dict, list)):
            raise ValidationError("'channel.body' must be a JSON object (or array) template", field="channel.body")
        _check_template(body, kind, 0)
        if len(json.dumps(body).encode()) > MAX_BODY_BYTES:
            raise ValidationError(f"'channel.body' is larger than {MAX_BODY_BYTES} bytes", field="channel.body")
        channel["body"] = body
    return channel


def _url(url: Any, kind: str) -> str:
    parsed = urlparse(url) if isinstance(url, str) else None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.hostname or any(c in url for c in " \r\n"):
        raise ValidationError(f"an {kind} gateway URL must start with http:// or https:// and name a host, "
                              f"got {url!r}", field="channel.url")
    return url


def _headers(headers: Any) -> dict[str, str]:
    if headers is None:
        return {}
    if not isinstance(headers, dict) or len(headers) > MAX_HEADERS:
        raise ValidationError(f"'channel.headers' must be an object of at most {MAX_HEADERS} name: value strings",
                              field="channel.headers")
    for name, value in headers.items():
        if not HEADER_NAME.match(name) or name.lower() in FORBIDDEN_HEADERS:
            raise ValidationError(f"'channel.headers' may not set {name!r}", field="channel.headers")
        if not isinstance(value, str) or len(value) > 4096 or any(c in value for c in "\r\n\0"):
            raise ValidationError(f"header {name!r} must be one line of text", field="channel.headers")
    return dict(headers)


def _phones(value: Any, field: str, required: bool = False, allow_all: bool = False) -> list[str]:
    value = [value] if isinstance(value, str) else value
    ok = isinstance(value, list) and (value or not required) and len(value) <= MAX_RECIPIENTS and all(
        isinstance(p, str) and (PHONE.match(p) or (allow_all and p == "@all")) for p in value)
    if not ok:
        raise ValidationError(f"'{field}' must be a phone number like +8613800000000 or a list of at most "
                              f"{MAX_RECIPIENTS}" + (" (or \"@all\")" if allow_all else ""), field=field)
    return list(value)


def _check_template(node: Any, kind: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ValidationError(f"'channel.body' is nested deeper than {MAX_DEPTH}", field="channel.body")
    if isinstance(node, dict):
        for key, value in node.items():
            _check_template(value, kind, depth + 1)
    elif isinstance(node, list):
        for value in node:
            _check_template(value, kind, depth + 1)
    elif isinstance(node, str):
        for match in PLACEHOLDER.finditer(node):
            name = match.group(1)
            if name is not None and (name not in FIELDS or (name == "to" and kind != "sms")):
                known = ", ".join(f for f in FIELDS if f != "to" or kind == "sms")
                raise ValidationError(f"unknown placeholder {{{name}}} in 'channel.body' (known: {known}; "
                                      "write {{ and }} for literal braces)", field="channel.body")


# ------------------------------------------------------------------ views
def public_channel(channel: dict) -> dict:
    """The channel without its secrets (header values, the robot's key), for listings."""
    out = dict(channel)
    if out.get("headers"):
        out["headers"] = {name: "***" for name in out["headers"]}
    out["url"] = mask_url(out["url"])
    return out


def mask_url(url: str) -> str:
    parts = urlparse(url)
    if not parts.query:
        return url
    query = [(k, "***" if k.lower() in ("key", "token", "secret", "access_token", "password") else v)
             for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunparse(parts._replace(query=urlencode(query, safe="*")))


def target(channel: dict) -> Any:
    """What a delivery record names as its target."""
    return channel.get("to") if channel["type"] == "sms" else mask_url(channel["url"])


# ------------------------------------------------------------------ sending
def fields_of(payload: dict, subject: str, message: str) -> dict[str, str]:
    task = payload.get("task") or {}
    detail = payload.get("detail") or {}
    values = {"event": payload.get("event"), "at": payload.get("at"), "delivery": payload.get("delivery"),
              "subject": subject, "text": subject.removeprefix("[suanwang] "), "message": message,
              "task_id": task.get("id"), "function": task.get("function"), "version": task.get("version"),
              "status": task.get("status"), "reason": task.get("reason"),
              "error": str(task["error"])[:ERROR_TEXT] if task.get("error") is not None else None,
              "submitted_by": task.get("submitted_by"),
              "worker": detail.get("worker") or (payload.get("subject") if "task" not in payload else None)}
    return {k: "" if v is None else str(v) for k, v in values.items()}


def render(template: Any, values: dict[str, str]) -> Any:
    """The template with every ``{field}`` replaced (only strings change; the shape stays)."""
    if isinstance(template, dict):
        return {key: render(value, values) for key, value in template.items()}
    if isinstance(template, list):
        return [render(value, values) for value in template]
    if isinstance(template, str):
        return PLACEHOLDER.sub(lambda m: {"{{": "{", "}}": "}"}.get(m.group(0)) or values.get(m.group(1), ""),
                               template)
    return template


def requests_for(channel: dict, payload: dict, subject: str, message: str) -> list[dict]:
    """The JSON bodies this delivery sends (SMS: one per recipient)."""
    values = fields_of(payload, subject, message)
    if channel["type"] == "sms":
        return [render(channel.get("body") or SMS_BODY, {**values, "to": to}) for to in channel["to"]]
    if "body" in channel:
        return [render(channel["body"], values)]
    body = render(WECHAT_BODY, {**values, "message": _cut_utf8(values["message"], ROBOT_TEXT_BYTES)})
    if channel.get("mentioned_mobile_list"):
        body["text"]["mentioned_mobile_list"] = channel["mentioned_mobile_list"]
    return [body]


def _cut_utf8(text: str, limit: int) -> str:
    """At most ``limit`` bytes of UTF-8, cut on a character boundary (with an ellipsis when cut)."""
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[:limit - 3].decode(errors="ignore") + "…"


def send_gateway(channel: dict, payload: dict, subject: str, message: str, *, timeout_s: float = 10.0) -> None:
    """POST the rendered bodies; ``DeliveryFailed`` (retried) unless every one was accepted."""
    headers = {"User-Agent": "suanwang-notify/1", **channel.get("headers", {}),
               "Content-Type": "application/json; charset=utf-8"}
    where = f"{channel['type']} gateway {mask_url(channel['url'])}"
    for body in requests_for(channel, payload, subject, message):
        data = json.dumps(body, ensure_ascii=False).encode()
        try:
            resp = requests.post(channel["url"], data=data, headers=headers, timeout=timeout_s, allow_redirects=False)
        except requests.RequestException as exc:
            raise DeliveryFailed(f"{where} unreachable: {type(exc).__name__}: {str(exc)[:200]}") from None
        if not 200 <= resp.status_code < 300:
            raise DeliveryFailed(f"{where} answered HTTP {resp.status_code}: {resp.text[:200]}")
        if channel["type"] == "wechat":
            _check_robot_answer(resp, where)


def _check_robot_answer(resp: requests.Response, where: str) -> None:
    """The robot answers HTTP 200 with ``{"errcode": 0, "errmsg": "ok"}``; anything else failed."""
    try:
        answer = resp.json()
    except ValueError:
        raise DeliveryFailed(f"{where} answered HTTP {resp.status_code} without JSON: {resp.text[:200]}") from None
    if not isinstance(answer, dict) or answer.get("errcode") != 0:
        raise DeliveryFailed(f"{where} refused the message: {json.dumps(answer, ensure_ascii=False)[:200]}")
