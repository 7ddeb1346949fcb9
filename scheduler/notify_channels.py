"""Delivery channels: e-mail over SMTP and signed JSON webhooks. Each send raises
``DeliveryFailed`` with a short reason, or returns; nothing here touches MongoDB.

A webhook is a JSON POST whose raw body is signed with HMAC-SHA256 under the
subscription's secret, in ``X-Suanwang-Signature: sha256=<hex>`` (as GitHub does); a
receiver recomputes ``hmac.new(secret, body, sha256)`` and compares in constant time.
SMS and chat gateways are webhooks.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage

import requests

from scheduler.config import default

SIGNATURE_HEADER = "X-Suanwang-Signature"
EVENT_HEADER = "X-Suanwang-Event"
DELIVERY_HEADER = "X-Suanwang-Delivery"


class DeliveryFailed(Exception):
    """One try of a delivery failed; ``permanent`` ones are not retried."""

    def __init__(self, reason: str, permanent: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


@dataclass(frozen=True)
class SmtpSettings:
    """How mail is sent: the server's ``smtp_*`` settings (``scheduler.config``, defaults there)."""

    host: str | None = default("smtp_host")
    port: int = default("smtp_port")
    user: str | None = default("smtp_user")
    password: str | None = default("smtp_password")
    #: none | starttls | ssl
    tls: str = default("smtp_tls")
    mail_from: str = default("mail_from")
    timeout_s: float = default("smtp_timeout_s")


def sign(secret: str, body: bytes) -> str:
    """The signature header's value for ``body``: ``sha256=<hex digest>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def encode(payload: dict) -> bytes:
    """The exact bytes that are signed and sent."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()


def send_webhook(url: str, secret: str, payload: dict, *, timeout_s: float = 10.0) -> None:
    body = encode(payload)
    headers = {"Content-Type": "application/json", "User-Agent": "suanwang-webhook/1",
               SIGNATURE_HEADER: sign(secret, body), EVENT_HEADER: str(payload.get("event", "")),
               DELIVERY_HEADER: str(payload.get("delivery", ""))}
    try:
        resp = requests.post(url, data=body, headers=headers, timeout=timeout_s, allow_redirects=False)
    except requests.RequestException as exc:
        raise DeliveryFailed(f"webhook {url} unreachable: {type(exc).__name__}: {str(exc)[:200]}") from None
    if not 200 <= resp.status_code < 300:
        raise DeliveryFailed(f"webhook {url} answered HTTP {resp.status_code}: {resp.text[:200]}")


def send_email(settings: SmtpSettings, to: list[str], subject: str, text: str) -> None:
    if not settings.host:
        raise DeliveryFailed("no SMTP server is configured (smtp_host)", permanent=True)
    msg = EmailMessage()
    msg["From"] = settings.mail_from
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    msg.set_content(text)
    try:
        if settings.tls == "ssl":
            smtp = smtplib.SMTP_SSL(settings.host, settings.port, timeout=settings.timeout_s,
                                    context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_s)
        with smtp:
            if settings.tls == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if settings.user:
                smtp.login(settings.user, settings.password or "")
            smtp.send_message(msg)
    except smtplib.SMTPAuthenticationError as exc:
        raise DeliveryFailed(f"SMTP login refused: {exc.smtp_code} {exc.smtp_error[:200]!r}") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryFailed(f"SMTP {settings.host}:{settings.port}: {type(exc).__name__}: {str(exc)[:200]}") from None
