"""Prices in credits, and what a task reserves and is charged (pure: no I/O).

A price is ``{"per_call", "per_cpu_s", "per_gpu_s"}`` (each optional, a number >= 0): a service
has ``per_call`` (``scheduler.service_services``), a registered function version may have any
of them. At publish a task reserves the most it can cost::

    reserved = per_call + (per_cpu_s * cpus + per_gpu_s * gpus) * timeout_s

(``cpus`` from ``requires.cpus``, default 1; ``gpus`` from ``requires.gpus``). When it ends it
is charged for what the worker measured on the attempts that count, never more than it reserved::

    charged = min(reserved, per_call + per_cpu_s * cpu_s + per_gpu_s * gpu_s)

Attempts lost through the system's fault (``lost``: lease expired, fenced) and attempts that
never ran are not charged; a task none of whose attempts counts (cancelled before running,
or only lost attempts) is charged nothing. Amounts are rounded to ``DECIMALS`` places so
sums stay exact enough to compare.
"""
from __future__ import annotations

from typing import Any, Iterable

from fsm.errors import ValidationError

PRICE_FIELDS = ("per_call", "per_cpu_s", "per_gpu_s")
#: Largest price of one unit, and the most credits one movement may carry.
MAX_PRICE = 1e9
MAX_AMOUNT = 1e12
DECIMALS = 6
#: Attempt states that are not charged: the system's fault, or never ran / still running.
UNCHARGED_STATES = frozenset({"lost", "running", "released"})


def amount(value: float) -> float:
    """An amount of credits as stored (rounded, so float noise never shows in sums)."""
    return round(float(value), DECIMALS) + 0.0


def check_price(value: Any, field: str = "price") -> dict | None:
    """A clean price dict, or None for no price; 422 naming the problem otherwise."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValidationError(f"'{field}' must be an object like {{\"per_cpu_s\": 0.01, \"per_gpu_s\": 1}}",
                              field=field)
    unknown = set(value) - set(PRICE_FIELDS)
    if unknown:
        raise ValidationError(f"unknown field(s) in '{field}': {', '.join(sorted(unknown))} (allowed: "
                              f"{', '.join(PRICE_FIELDS)})", field=f"{field}.{sorted(unknown)[0]}")
    out = {}
    for name, number in value.items():
        if isinstance(number, bool) or not isinstance(number, (int, float)) or number != number \
                or not 0 <= number <= MAX_PRICE:
            raise ValidationError(f"'{field}.{name}' must be a number from 0 to {MAX_PRICE:g} (credits), got "
                                  f"{number!r}"[:200], field=f"{field}.{name}", limit=MAX_PRICE)
        out[name] = amount(number)
    return out


def is_priced(price: dict | None) -> bool:
    """Whether a price can cost anything (a zero or missing price reserves nothing)."""
    return bool(price) and any(price.get(name, 0) > 0 for name in PRICE_FIELDS)


def reservation(price: dict | None, requires: dict | None, timeout_s: float) -> float:
    """The most a task can cost: what it reserves at publish."""
    if not is_priced(price):
        return 0.0
    requires = requires or {}
    cpus = requires.get("cpus", 1)
    gpus = requires.get("gpus", 0) or 0
    per_s = price.get("per_cpu_s", 0) * cpus + price.get("per_gpu_s", 0) * gpus
    return amount(price.get("per_call", 0) + per_s * float(timeout_s or 0))


def charged_attempts(attempts: Iterable[dict]) -> list[dict]:
    """The attempts a task pays for: every one that ran to an end of its own (not lost)."""
    return [a for a in attempts or [] if a.get("state") not in UNCHARGED_STATES]


def charge(price: dict | None, attempts: Iterable[dict], reserved: float) -> float:
    """What a finished task is charged (at most ``reserved``)."""
    counted = charged_attempts(attempts)
    if not is_priced(price) or not counted:
        return 0.0
    cpu_s = sum(float(a.get("cpu_s") or 0) for a in counted)
    gpu_s = sum(float(a.get("gpu_s") or 0) for a in counted)
    cost = price.get("per_call", 0) + price.get("per_cpu_s", 0) * cpu_s + price.get("per_gpu_s", 0) * gpu_s
    return amount(min(reserved, cost))
