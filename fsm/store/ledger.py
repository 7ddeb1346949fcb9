"""Credits: the ``accounts`` balances and the append-only ``ledger`` of every movement.

``accounts`` — one balance (``_id``: ``user:<name>`` or ``group:<name>``)
    balance        credits; never below zero: every debit is one conditional update
                   ``{_id, balance: {$gte: amount}}`` -> ``$inc: -amount``
    low_notified   the low-balance reminder went out for the current episode (reset by a top-up)
    low_round      episodes so far (the reminder's delivery key), updated_at
``ledger`` — one movement, only ever appended
    at (server clock), account, task (None for a top-up), amount (+ credit, - debit),
    balance_after, reason (topup | correction | reserve | reserve_undone | refund), by, note
    Indexes: account + at (a user's ledger page), task, reason + at (the orphan check).
``ledger_state`` — ``{_id: "orphans", at, id}``: how far the check for reservations whose task
    was never stored (the server stopped between the two writes) has read the ledger

A task with a price carries ``billing {account, reserved, charged}`` and ``settled`` (false
until its reservation is settled, exactly once: ``settle`` sets it in the same transaction
as the refund and its ledger entry). The pricing rules are ``fsm.pricing``.
"""
from __future__ import annotations

from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from fsm.errors import InsufficientCredits, ValidationError
from fsm.pricing import amount
from fsm.states import FINAL

USER, GROUP = "user:", "group:"
#: The unsettled tasks one sweep takes at most.
SWEEP_BATCH = 200


def user_account(name: str) -> str:
    return f"{USER}{name}"


def group_account(name: str) -> str:
    return f"{GROUP}{name}"


#: What a movement's update returns: the balance after it and the server's clock (the entry's ``at``).
AFTER = {"balance": 1, "updated_at": 1}


def _add(value: float) -> list[dict]:
    """The update pipeline of one movement: the balance changes and ``updated_at`` takes the server's clock
    (so the ledger entry's time needs no round trip of its own)."""
    return [{"$set": {"balance": {"$add": [{"$ifNull": ["$balance", 0]}, value]}, "updated_at": "$$NOW"}}]


class LedgerStore:
    def __init__(self, db: Database):
        self.db = db
        self.accounts = db.accounts
        self.ledger = db.ledger
        self.tasks = db.tasks

    def ensure_indexes(self) -> None:
        self.ledger.create_indexes([IndexModel([("account", ASCENDING), ("at", DESCENDING)], name="account_at"),
                                    IndexModel([("task", ASCENDING)], name="task", sparse=True),
                                    IndexModel([("reason", ASCENDING), ("at", ASCENDING), ("_id", ASCENDING)],
                                               name="reason_at")])
        # Only priced tasks carry ``settled``; the sweep reads the unsettled ones from this small index.
        self.tasks.create_indexes([IndexModel([("settled", ASCENDING)], name="unsettled",
                                              partialFilterExpression={"settled": False})])

    # ------------------------------------------------------------------ reads
    def account(self, account: str) -> dict:
        """The account's document (a balance of 0 when it never held credits)."""
        return self.accounts.find_one({"_id": account}) or {"_id": account, "balance": 0.0, "low_notified": False}

    def balances(self, accounts: list[str]) -> dict[str, float]:
        found = {d["_id"]: d["balance"] for d in self.accounts.find({"_id": {"$in": accounts}}, {"balance": 1})}
        return {a: found.get(a, 0.0) for a in accounts}

    def page(self, account: str, skip: int = 0, limit: int = 50) -> tuple[list[dict], int]:
        """The account's movements, newest first, and how many there are."""
        query = {"account": account}
        docs = list(self.ledger.find(query).sort([("at", DESCENDING), ("_id", DESCENDING)]).skip(skip).limit(limit))
        return docs, self.ledger.count_documents(query)

    def sums(self, account: str) -> float:
        """The sum of every movement of the account (equals its balance: the ledger's check)."""
        rows = list(self.ledger.aggregate([{"$match": {"account": account}},
                                           {"$group": {"_id": None, "sum": {"$sum": "$amount"}}}]))
        return amount(rows[0]["sum"]) if rows else 0.0

    # ----------------------------------------------------------------- writes
    @staticmethod
    def _entries(account: str, moves: list[tuple[str | None, float]], after: dict, reason: str,
                 by: str, note: str | None) -> list[dict]:
        """Ledger entries for ``moves`` (task, signed amount) applied in order; ``after``: the account as the
        movement's update returned it (its ``balance``, and ``updated_at`` from the server's clock)."""
        now, balance_after = after["updated_at"], after["balance"]
        balance = amount(balance_after - sum(m for _, m in moves))
        out = []
        for task, move in moves:
            balance = amount(balance + move)
            out.append({"_id": str(ObjectId()), "at": now, "account": account, "task": task, "amount": amount(move),
                        "balance_after": balance, "reason": reason, "by": by, "note": note})
        return out

    def reserve(self, account: str, tasks: list[tuple[str, float]], by: str) -> float:
        """Take ``sum(amounts)`` from the balance in one conditional update, or raise ``InsufficientCredits``
        (then nothing changed); one ledger entry per task. Returns the balance after."""
        doc = self._debit(account, tasks, None)
        try:
            self.ledger.insert_many(self._entries(account, [(t, -a) for t, a in tasks], doc, "reserve", by, None))
        except Exception:
            self.accounts.update_one({"_id": account}, {"$inc": {"balance": amount(sum(a for _, a in tasks))}})
            raise  # no movement without its entry
        return doc["balance"]

    def reserve_all(self, held: dict[str, list[tuple[str, float]]], by: str) -> None:
        """``reserve`` for several accounts at once (a bulk publish with several payers): one transaction, so
        when one account cannot pay nothing at all is written."""
        if len(held) == 1:
            (account, tasks), = held.items()
            self.reserve(account, tasks, by)
            return

        def work(session) -> None:
            for account, tasks in held.items():
                doc = self._debit(account, tasks, session)
                self.ledger.insert_many(self._entries(account, [(t, -a) for t, a in tasks], doc, "reserve", by, None),
                                        session=session)

        with self.db.client.start_session() as session:
            session.with_transaction(work, write_concern=WriteConcern("majority"))

    def _debit(self, account: str, tasks: list[tuple[str, float]], session) -> dict:
        """The conditional update of a reservation: the account after it, or ``InsufficientCredits``."""
        total = amount(sum(a for _, a in tasks))
        doc = self.accounts.find_one_and_update({"_id": account, "balance": {"$gte": total}}, _add(-total),
                                                projection=AFTER, return_document=ReturnDocument.AFTER,
                                                session=session)
        if doc is None:
            found = self.accounts.find_one({"_id": account}, {"balance": 1}, session=session) or {}
            have = amount(found.get("balance", 0.0))
            what = "this task needs" if len(tasks) == 1 else f"these {len(tasks)} tasks need"
            raise InsufficientCredits(f"account {account} holds {have:g} credits; {what} {total:g} (nothing was "
                                      "published; an admin tops up with POST /api/v1/users/<name>/credits)",
                                      account=account, balance=have, needed=total)
        return doc

    def credit(self, account: str, tasks: list[tuple[str | None, float]], reason: str, by: str,
               note: str | None = None) -> float:
        """Give credits back (a reservation undone); one ledger entry per task. Returns the balance after."""
        total = amount(sum(a for _, a in tasks))
        doc = self.accounts.find_one_and_update({"_id": account}, _add(total), projection=AFTER, upsert=True,
                                                return_document=ReturnDocument.AFTER)
        self.ledger.insert_many(self._entries(account, list(tasks), doc, reason, by, note))
        return doc["balance"]

    def top_up(self, account: str, value: float, by: str, note: str | None) -> tuple[dict, dict]:
        """Add ``value`` (negative: a correction, never below zero; 422 then); a top-up that leaves the balance
        at or above the low threshold starts a new reminder episode. Returns (account, ledger entry)."""
        value = amount(value)
        filt: dict[str, Any] = {"_id": account}
        if value < 0:
            filt["balance"] = {"$gte": -value}
        update = [{"$set": {"balance": {"$add": [{"$ifNull": ["$balance", 0]}, value]}, "updated_at": "$$NOW",
                            "low_round": {"$add": [{"$ifNull": ["$low_round", 0]},
                                                   {"$cond": [{"$eq": ["$low_notified", True]}, 1, 0]}]},
                            "low_notified": False}}]
        for _ in range(3):  # the first top-up of two at once creates the account; the other retries
            try:
                doc = self.accounts.find_one_and_update(filt, update, upsert=value >= 0,
                                                        return_document=ReturnDocument.AFTER)
                break
            except DuplicateKeyError:
                continue
        else:  # pragma: no cover - three lost races in a row
            raise ValidationError(f"account {account} kept changing; try again")
        if doc is None:
            have = amount(self.account(account)["balance"])
            raise ValidationError(f"a correction of {value:g} would take account {account} below zero (it holds "
                                  f"{have:g})", field="amount", account=account, balance=have)
        entry = self._entries(account, [(None, value)], doc, "topup" if value >= 0 else "correction",
                              by, note)[0]
        self.ledger.insert_one(entry)
        return doc, entry

    # ------------------------------------------------- orphan reservations
    def reservations_to_check(self, until, limit: int) -> list[dict]:
        """Reserve entries made before ``until`` and after the check's last position, oldest first."""
        mark = self.db.ledger_state.find_one({"_id": "orphans"})
        query: dict[str, Any] = {"reason": "reserve", "at": {"$lte": until}}
        if mark:
            query["$or"] = [{"at": {"$gt": mark["at"]}}, {"at": mark["at"], "_id": {"$gt": mark["id"]}}]
        return list(self.ledger.find(query, {"account": 1, "task": 1, "amount": 1, "at": 1})
                    .sort([("at", ASCENDING), ("_id", ASCENDING)]).limit(limit))

    def undone(self, tasks: list[str]) -> set[str]:
        """Which of these tasks had their reservation given back already."""
        return {e["task"] for e in self.ledger.find({"task": {"$in": tasks}, "reason": "reserve_undone"},
                                                     {"task": 1})}

    def checked_up_to(self, entry: dict) -> None:
        """Move the orphan check's position to ``entry`` (the last one it handled)."""
        self.db.ledger_state.update_one({"_id": "orphans"}, {"$set": {"at": entry["at"], "id": entry["_id"]}},
                                        upsert=True)

    # ------------------------------------------------------- low balances
    def newly_low(self, threshold: float) -> list[dict]:
        """Accounts under ``threshold`` whose reminder has not gone out in this episode."""
        return list(self.accounts.find({"balance": {"$lt": threshold}, "low_notified": {"$ne": True}}))

    def mark_low(self, account: str) -> bool:
        """Record that the reminder went out (True for the one caller that flipped it)."""
        return bool(self.accounts.update_one({"_id": account, "low_notified": {"$ne": True}},
                                             {"$set": {"low_notified": True}}).modified_count)

    # ------------------------------------------------------------ settlement
    def unsettled(self, limit: int = SWEEP_BATCH) -> list[dict]:
        """Priced tasks that ended and are not settled yet (the sweep's work)."""
        return list(self.tasks.find({"settled": False, "status": {"$in": [s.value for s in FINAL]}},
                                    {"billing": 1, "price": 1, "attempts": 1, "status": 1}).limit(limit))

    def task_billing(self, task_id: str) -> dict | None:
        return self.tasks.find_one({"_id": task_id, "settled": False},
                                   {"billing": 1, "price": 1, "attempts": 1, "status": 1})

    def settle(self, task: dict, charged: float, by: str) -> bool:
        """Charge a finished task ``charged`` and return the rest of its reservation, exactly once.

        One transaction: the task's ``settled`` flips false -> true (a conditional update), the
        account gets the refund and the ledger its entry. False when the task was settled already
        (or is not final): nothing changes.
        """
        billing = task["billing"]
        refund = amount(billing["reserved"] - charged)
        final = [s.value for s in FINAL]

        def work(session) -> bool:
            flipped = self.tasks.update_one({"_id": task["_id"], "settled": False, "status": {"$in": final}},
                                            {"$set": {"settled": True, "billing.charged": amount(charged)},
                                             "$currentDate": {"settled_at": True}}, session=session)
            if not flipped.modified_count:
                return False
            if refund > 0:
                doc = self.accounts.find_one_and_update({"_id": billing["account"]}, _add(refund), projection=AFTER,
                                                        upsert=True, session=session,
                                                        return_document=ReturnDocument.AFTER)
                note = f"charged {amount(charged):g} of {billing['reserved']:g} reserved"
                self.ledger.insert_one(self._entries(billing["account"], [(task["_id"], refund)], doc, "refund", by,
                                                     note)[0], session=session)
            return True

        with self.db.client.start_session() as session:
            return session.with_transaction(work, read_concern=ReadConcern("snapshot"),
                                            write_concern=WriteConcern("majority"))
