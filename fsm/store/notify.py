"""Notifications' collections (layout in ``scheduler.notify``): ``subscriptions``, ``deliveries``,
``alerts`` and ``notify_state`` (the resume token of the change stream on ``tasks``)."""
from __future__ import annotations

import time
from contextlib import AbstractContextManager
from datetime import datetime, timedelta

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from fsm.states import Status

STREAM_STATE = "tasks_stream"
#: A delivery's ``status``: waiting for its next try, being sent, done, given up.
DELIVERY_STATES = ("pending", "sending", "sent", "failed")
#: Change-stream filter: a task became succeeded or failed. Only the fields the notifier needs
#: travel (never the full document, nor a large updated field such as a result or the attempts),
#: so no event can grow past MongoDB's 16 MB limit and stall the stream.
WATCHED_FIELDS = ("status", "reason", "error", "finished_at")
TASK_PIPELINE = [{"$match": {"operationType": "update", "updateDescription.updatedFields.status": {
    "$in": [Status.SUCCEEDED.value, Status.FAILED.value]}}},
    {"$project": {"operationType": 1, "documentKey": 1, "clusterTime": 1,
                  **{f"updateDescription.updatedFields.{name}": 1 for name in WATCHED_FIELDS}}}]


#: How long "nobody subscribes to these task events" is believed without asking again.
NONE_KEPT_S = 1.0


class NotifyStore:
    def __init__(self, db: Database):
        self.db = db
        self.subscriptions = db.subscriptions
        self.deliveries = db.deliveries
        self.alerts = db.alerts
        self.state = db.notify_state
        # events nobody (or somebody) subscribes to, believed until these monotonic times
        self._none_until: dict[tuple[str, ...], float] = {}
        self._some_until: dict[tuple[str, ...], float] = {}

    def ensure_indexes(self) -> None:
        self.subscriptions.create_indexes([IndexModel([("event", ASCENDING)], name="event"),
                                           IndexModel([("owner", ASCENDING)], name="owner")])
        self.deliveries.create_indexes([
            IndexModel([("status", ASCENDING), ("next_try_at", ASCENDING)], name="due"),
            IndexModel([("owner", ASCENDING), ("created_at", DESCENDING)], name="owner_created"),
            IndexModel([("subscription_id", ASCENDING), ("created_at", DESCENDING)], name="subscription_created")])
        self.alerts.create_indexes([IndexModel([("subscription_id", ASCENDING)], name="subscription")])

    @staticmethod
    def new_id() -> str:
        return str(ObjectId())

    # ---------------------------------------------------------- subscriptions
    def add_subscription(self, doc: dict) -> dict:
        self.subscriptions.insert_one(doc)
        self._none_until.clear()
        return doc

    def subscription(self, sid: str) -> dict | None:
        return self.subscriptions.find_one({"_id": sid})

    def remove_subscription(self, sid: str) -> None:
        """The subscription and its open alerts."""
        self.subscriptions.delete_one({"_id": sid})
        self.alerts.delete_many({"subscription_id": sid})

    def subscriptions_page(self, *, owner: str | None, event: str | None, skip: int, limit: int) -> tuple[list, int]:
        """Newest first; ``owner`` None: everyone's."""
        query = {k: v for k, v in (("owner", owner), ("event", event)) if v}
        items = list(self.subscriptions.find(query).sort("created_at", -1).skip(skip).limit(limit))
        return items, self.subscriptions.count_documents(query)

    def task_subscriptions(self, events: list[str], task_id: str) -> list[dict]:
        """Subscriptions to ``events`` scoped to this task or to any task (the caller checks a
        subscription's ``function`` against the task's).

        Asked once per finished task: when nobody subscribes to ``events`` at all, that answer is
        kept for ``NONE_KEPT_S`` (a subscription made through this process ends it at once, one
        made through another server counts from at most that long later).
        """
        key, now = tuple(sorted(events)), time.monotonic()
        if now < self._none_until.get(key, 0.0):
            return []
        subs = list(self.subscriptions.find({"event": {"$in": events}, "task_id": {"$in": [None, task_id]}}))
        if not subs and now >= self._some_until.get(key, 0.0):
            if self.subscriptions.find_one({"event": {"$in": events}}, {"_id": 1}) is None:
                self._none_until[key] = now + NONE_KEPT_S
            else:
                self._some_until[key] = now + NONE_KEPT_S
        return subs

    def check_subscriptions(self, events: list[str]) -> list[dict]:
        return list(self.subscriptions.find({"event": {"$in": events}}))

    # ------------------------------------------------------------ deliveries
    def deliveries_page(self, *, owner: str | None, filters: dict[str, str], skip: int, limit: int) -> tuple[list, int]:
        """Newest first; ``filters``: equality on status, subscription_id, event."""
        query = {**({"owner": owner} if owner else {}), **filters}
        items = list(self.deliveries.find(query).sort("created_at", -1).skip(skip).limit(limit))
        return items, self.deliveries.count_documents(query)

    def queue_delivery(self, doc: dict) -> bool:
        """Store a new delivery; False when one with its ``_id`` (subscription + event key) exists."""
        try:
            self.deliveries.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    def release_stale_sending(self, now: datetime) -> int:
        """Deliveries whose sender died mid-send become pending again; returns how many."""
        return self.deliveries.update_many({"status": "sending", "lease_until": {"$lt": now}},
                                           {"$set": {"status": "pending"}}).modified_count

    def next_retry_at(self) -> datetime | None:
        """When the earliest pending delivery is next due (None when none is pending)."""
        doc = self.deliveries.find_one({"status": "pending"}, {"next_try_at": 1}, sort=[("next_try_at", 1)])
        return doc and doc["next_try_at"]

    def claim_delivery(self, now: datetime, lease_s: float) -> dict | None:
        """Take the most overdue pending delivery for one try."""
        return self.deliveries.find_one_and_update(
            {"status": "pending", "next_try_at": {"$lte": now}},
            {"$set": {"status": "sending", "lease_until": now + timedelta(seconds=lease_s)}, "$inc": {"attempts": 1}},
            sort=[("next_try_at", 1)], return_document=ReturnDocument.AFTER)

    def mark_sent(self, did: str, now: datetime) -> dict | None:
        return self.deliveries.find_one_and_update(
            {"_id": did}, {"$set": {"status": "sent", "sent_at": now, "last_error": None},
                           "$unset": {"lease_until": ""}}, return_document=ReturnDocument.AFTER)

    def mark_failed(self, did: str, *, final: bool, reason: str, now: datetime, next_try_at: datetime) -> dict | None:
        """One failed try: pending again (at ``next_try_at``) or, when ``final``, failed; keeps the last ten errors."""
        return self.deliveries.find_one_and_update(
            {"_id": did},
            {"$set": {"status": "failed" if final else "pending", "last_error": reason, "next_try_at": next_try_at},
             "$unset": {"lease_until": ""},
             "$push": {"errors": {"$each": [{"at": now, "error": reason}], "$slice": -10}}},
            return_document=ReturnDocument.AFTER)

    # ---------------------------------------------------------------- alerts
    def alert_subjects(self, sid: str) -> set[str]:
        return {a["subject"] for a in self.alerts.find({"subscription_id": sid}, {"subject": 1})}

    def open_alert(self, sid: str, subject: str, now: datetime) -> bool:
        """Record that a condition started firing; False when another process recorded it first."""
        try:
            self.alerts.insert_one({"_id": f"{sid}:{subject}", "subscription_id": sid, "subject": subject, "since": now})
        except DuplicateKeyError:
            return False
        return True

    def clear_alerts(self, sid: str, subjects: list[str]) -> None:
        self.alerts.delete_many({"subscription_id": sid, "subject": {"$in": subjects}})

    # ---------------------------------------------------------- task stream
    def stream_position(self) -> dict:
        """Where the task stream goes on: ``{"token": resume token}``, or ``{"quiet_since": cluster
        time}`` while it is closed because nobody subscribes to task events (empty: from now)."""
        state = self.state.find_one({"_id": STREAM_STATE}) or {}
        return {k: state[k] for k in ("token", "quiet_since") if state.get(k) is not None}

    def resume_token(self):
        return self.stream_position().get("token")

    def save_token(self, token) -> None:
        self.state.update_one({"_id": STREAM_STATE}, {"$set": {"token": token}, "$unset": {"quiet_since": ""}},
                              upsert=True)

    def save_quiet_since(self, at) -> None:
        self.state.update_one({"_id": STREAM_STATE}, {"$set": {"quiet_since": at}, "$unset": {"token": ""}},
                              upsert=True)

    def forget_token(self) -> None:
        self.state.delete_one({"_id": STREAM_STATE})

    def task_listeners(self, events) -> tuple[bool, object]:
        """Does anyone subscribe to ``events``, and the cluster time that answer holds at (a
        subscription made later is stored after it, so a stream started there sees its events)."""
        with self.db.client.start_session() as session:
            found = self.subscriptions.find_one({"event": {"$in": list(events)}}, {"_id": 1}, session=session)
            at = session.operation_time
        if found is not None:  # (made through another server, perhaps): believe it at once
            self._none_until.clear()
        return found is not None, at

    def watch_finished_tasks(self, resume_after=None, max_await_ms: int = 2000,
                             start_at=None) -> AbstractContextManager:
        """A change stream of tasks becoming succeeded or failed (status, reason and error only),
        after ``resume_after`` (a token) or from ``start_at`` (a cluster time), else from now."""
        resume = {"resume_after": resume_after} if resume_after else {}
        if start_at is not None and not resume_after:
            resume = {"start_at_operation_time": start_at}
        return self.db.tasks.watch(TASK_PIPELINE, max_await_time_ms=max_await_ms, **resume)
