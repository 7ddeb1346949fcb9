"""Credits (use cases, no Flask): pricing at publish, reservation, settlement, top-ups, the ledger.

    publish        a priced task reserves its most possible cost from the payer's balance before it
                   is stored (``reserved``); 402 ``insufficient_credits`` and nothing written when the
                   balance cannot cover it. Free tasks skip all of this (no database round trip).
    payer          the caller's account (``user:<name>``), or ``billing_group``'s (``group:<name>``)
                   when the caller is a member (403 otherwise)
    settlement     when a priced task ends it is charged what its attempts used (``fsm.pricing``)
                   and the rest is returned, exactly once: promptly after a cancel, and by the
                   leader's sweep (``install``) for everything else; the sweep also gives back a
                   reservation whose task was never stored (a server stopped between the writes)
    top-up         admin: ``POST /users/<name>/credits`` or ``/groups/<name>/credits``; audited
                   as ``credits.topup``; a negative amount corrects, never below zero
    ledger         the user themself, or admin

The rules of pricing are in ``fsm.pricing``; the balances and the ledger in ``fsm.store.ledger``.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Iterator

from fsm.fields import json_object
from fsm import pricing, rights
from fsm.errors import Conflict, Forbidden, ValidationError
from fsm.states import FINAL
from fsm.store import Store
from fsm.store.ledger import SWEEP_BATCH, group_account, user_account
from scheduler.paging import int_arg

log = logging.getLogger("suanwang.credits")

SWEEP_JOB = "credits-settle"
MAX_NOTE = 500
LEDGER_PAGE, LEDGER_MAX_PAGE = 50, 500
#: Who settles, as the ledger names it.
SETTLER = "settlement"
#: How long after a reservation its task must be stored (else the reservation is given back).
ORPHAN_GRACE_S = 120.0


# ------------------------------------------------------------------- publish
def stamp_prices(docs: list[dict], prices: dict[int, dict]) -> None:
    """Record the function versions' prices on the task documents; a service call keeps its service's price."""
    for index, price in prices.items():
        docs[index].setdefault("price", price)


def payer(body: Any, user: dict) -> str:
    """The account a task is paid from: the caller's, or its ``billing_group``'s (a member only: 403)."""
    group = body.get("billing_group") if isinstance(body, dict) else None
    if group is None:
        return user_account(user["_id"])
    if group not in (user.get("groups") or []):
        raise Forbidden(f"you are not a member of group {group!r}, so its credits cannot pay for this task",
                        field="billing_group")
    return group_account(group)


def reserve(store: Store, docs: list[dict], bodies: list, user: dict) -> dict[str, list[tuple[str, float]]]:
    """Reserve every priced task's most possible cost; returns ``{account: [(task id, amount)]}``.

    Each account is debited by one conditional update (never below zero); when one cannot pay,
    ``InsufficientCredits`` (402) is raised and nothing is written (several payers: one transaction).
    """
    held: dict[str, list[tuple[str, float]]] = {}
    for doc, body in zip(docs, bodies):
        if not pricing.is_priced(doc.get("price")):
            continue
        reserved = pricing.reservation(doc["price"], doc.get("requires"), doc.get("timeout_s"))
        account = payer(body, user)
        doc["billing"] = {"account": account, "reserved": reserved, "charged": None}
        doc["settled"] = False
        held.setdefault(account, []).append((doc["_id"], reserved))
    if held:
        store.ledger.reserve_all(held, user["_id"])
    return held


@contextmanager
def reserved(store: Store, docs: list[dict], bodies: list, user: dict) -> Iterator[None]:
    """Reserve before the tasks are stored; what the insert then fails to store is given back.

    ``with credits.reserved(store, docs, bodies, user): store.tasks.insert(docs)``
    """
    held = reserve(store, docs, bodies, user)
    if not held:
        yield
        return
    try:
        yield
    except Exception as exc:
        ids = [task for tasks in held.values() for task, _ in tasks]
        missing = set(exc.details.get("ids") or []) if isinstance(exc, Conflict) else \
            set(ids) - set(store.reads.taken_ids(ids, limit=len(ids)))
        for account, tasks in held.items():
            back = [(task, value) for task, value in tasks if task in missing]
            if back:
                store.ledger.credit(account, back, "reserve_undone", user["_id"], "the task was not stored")
        raise


# ---------------------------------------------------------------- settlement
def settle(store: Store, task: dict) -> bool:
    """Settle one ended priced task (a document with ``billing``, ``price``, ``attempts``); True when this
    call did it (False: settled already)."""
    reserved_ = task["billing"]["reserved"]
    charged = pricing.charge(task.get("price"), task.get("attempts") or [], reserved_)
    return store.ledger.settle(task, charged, SETTLER)


def settle_now(store: Store, task_id: str) -> bool:
    """Settle a task right after it ended (a cancel); a failure is left to the sweep."""
    try:
        task = store.ledger.task_billing(task_id)
        return bool(task and task["status"] in {s.value for s in FINAL} and settle(store, task))
    except Exception as exc:  # noqa: BLE001 - the leader's sweep settles it later
        log.warning("task %s: settling its credits failed (%s); the sweep will retry", task_id, exc)
        return False


def settle_due(store: Store) -> int:
    """One sweep: settle every ended, unsettled priced task (a batch at most); returns how many."""
    settled = 0
    for task in store.ledger.unsettled():
        settled += settle(store, task)
    return settled


def return_orphans(store: Store, grace_s: float = ORPHAN_GRACE_S, batch: int = SWEEP_BATCH) -> int:
    """Give back reservations whose task was never stored (the server stopped between the reservation and
    the insert, so no compensation ran); returns how many. Reads the ledger once, ``grace_s`` behind."""
    entries = store.ledger.reservations_to_check(store.now() - timedelta(seconds=grace_s), batch)
    if not entries:
        return 0
    ids = [e["task"] for e in entries]
    missing = set(ids) - set(store.reads.taken_ids(ids, limit=len(ids))) - store.ledger.undone(ids)
    by_account: dict[str, list[tuple[str, float]]] = {}
    for entry in entries:
        if entry["task"] in missing:
            by_account.setdefault(entry["account"], []).append((entry["task"], -entry["amount"]))
    for account, tasks in by_account.items():
        store.ledger.credit(account, tasks, "reserve_undone", SETTLER, "the task was never stored")
    store.ledger.checked_up_to(entries[-1])
    return sum(len(t) for t in by_account.values())


def install(leader, interval_s: float) -> None:
    """Run the settlement sweep (and the orphan check) on ``leader`` (``scheduler.leader_loop``)."""
    from scheduler.leader_loop import Job

    def run(_stop) -> float | None:
        settled = settle_due(leader.store)
        return_orphans(leader.store)
        return 0 if settled >= SWEEP_BATCH else None  # a full batch: more are waiting

    leader.add(Job(SWEEP_JOB, interval_s, run))


# -------------------------------------------------------------------- top-up
def _amount(body: Any) -> tuple[float, str | None]:
    json_object(body, {"amount", "note"}, example='{"amount": 100, "note": "invoice 42"}')
    value = body.get("amount")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value \
            or not 0 < abs(value) <= pricing.MAX_AMOUNT:
        raise ValidationError(f"'amount' must be a non-zero number of credits up to {pricing.MAX_AMOUNT:g} (negative: "
                              f"a correction), got {value!r}"[:200], field="amount", limit=pricing.MAX_AMOUNT)
    if pricing.amount(value) == 0:
        raise ValidationError(f"'amount' is too small: credits have {pricing.DECIMALS} decimals", field="amount")
    note = body.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > MAX_NOTE or not note.isprintable()):
        raise ValidationError(f"'note' must be a printable string of at most {MAX_NOTE} characters", field="note")
    return value, note


def top_up(store: Store, kind: str, name: str, body: Any, user: dict) -> dict:
    """Add credits to a user's (``kind`` "user") or a group's account (admin); audited as ``credits.topup``."""
    rights.check(user, "manage_credits")
    value, note = _amount(body)
    account = _account(store, kind, name)
    doc, entry = store.ledger.top_up(account, value, user["_id"], note)
    store.audit.record(user["_id"], "credits.topup", account, amount=entry["amount"], balance=doc["balance"],
                       note=note)
    return {**account_view(doc), "entry": entry_view(entry)}


def _account(store: Store, kind: str, name: str) -> str:
    """The account of an existing user or group (404 otherwise)."""
    if kind == "user":
        store.users.details(name)
        return user_account(name)
    store.groups.get(name)
    return group_account(name)


# --------------------------------------------------------------------- reads
def account_view(doc: dict) -> dict:
    """An account as the API shows it (``credits`` of a user or a group)."""
    return {"account": doc["_id"], "balance": pricing.amount(doc.get("balance", 0.0)),
            "low_notified": bool(doc.get("low_notified"))}


def credits_of(store: Store, kind: str, name: str) -> dict:
    """The ``credits`` of a user or group view (the caller was checked by the view's use case)."""
    return account_view(store.ledger.account(user_account(name) if kind == "user" else group_account(name)))


def entry_view(doc: dict) -> dict:
    return {"id": doc["_id"], **{k: v for k, v in doc.items() if k != "_id"}}


def ledger(store: Store, name: str, user: dict, args: dict) -> dict:
    """One page of a user's ledger, newest first: the user themself, or admin (``limit``, ``skip``)."""
    if user["_id"] != name:
        rights.check(user, "manage_credits")
    unknown = set(args) - {"limit", "skip"}
    if unknown:
        raise ValidationError(f"unknown query parameter(s): {', '.join(sorted(unknown))} (paging: limit, skip)",
                              field=sorted(unknown)[0])
    limit = int_arg(args, "limit", LEDGER_PAGE, 1, LEDGER_MAX_PAGE)
    skip = int_arg(args, "skip", 0, 0, 10 ** 9)
    store.users.details(name)  # 404 for an unknown user
    docs, total = store.ledger.page(user_account(name), skip, limit)
    return {"items": [entry_view(d) for d in docs], "total": total, "limit": limit, "skip": skip,
            "credits": credits_of(store, "user", name)}

