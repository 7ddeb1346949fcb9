"""The ``audit`` collection: an append-only trail of who changed what, for admins.

One document per action: ``{_id, at (server clock), actor, action, target, details}``.
``action`` is a dotted verb (``user.role``, ``token.create``, ``token.revoke``,
``service.deploy``, ``credits.topup``, ...); ``target`` names what it acted on (a user, a
service, a token id). Nothing here updates or deletes: the trail is only ever appended to.
Indexes: ``at`` (newest first, the page and the listing), ``target`` + ``at``,
``actor`` + ``at`` and ``action`` + ``at`` (the filters).
"""
from __future__ import annotations

from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.database import Database

from fsm.store.db import server_now


class AuditStore:
    def __init__(self, db: Database):
        self.db = db
        self.audit = db.audit

    def ensure_indexes(self) -> None:
        self.audit.create_indexes([IndexModel([("at", DESCENDING)], name="at"),
                                   IndexModel([("target", ASCENDING), ("at", DESCENDING)], name="target_at"),
                                   IndexModel([("actor", ASCENDING), ("at", DESCENDING)], name="actor_at"),
                                   IndexModel([("action", ASCENDING), ("at", DESCENDING)], name="action_at")])

    def record(self, actor: str, action: str, target: str, **details: Any) -> str:
        """Append one entry (server clock); returns its id."""
        entry = {"_id": str(ObjectId()), "at": server_now(self.db), "actor": actor, "action": action,
                 "target": target, "details": details}
        self.audit.insert_one(entry)
        return entry["_id"]

    def page(self, query: dict[str, Any], skip: int = 0, limit: int = 50) -> tuple[list[dict], int]:
        """Newest first: one page of entries matching ``query`` (equality filters) and the total."""
        docs = list(self.audit.find(query).sort([("at", DESCENDING), ("_id", DESCENDING)]).skip(skip).limit(limit))
        return docs, self.audit.count_documents(query)
