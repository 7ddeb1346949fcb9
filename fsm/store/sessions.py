"""``sessions``: the pages' logins, kept on the server so that logout, a password change or an
admin's revocation ends them (a copied cookie stops working at once).

One document per login: ``_id`` (the SHA-256 of the random session id that the signed cookie
carries: a database dump reveals no live session), ``user``, ``created_at`` and
``expires_at`` (the MongoDB server's clock). Indexes: ``expiry`` (TTL: MongoDB deletes a
session once it has expired; the lookup also refuses an expired one before that) and ``user``
(ending all of a user's sessions).
"""
from __future__ import annotations

import hashlib
import secrets

from pymongo import ASCENDING, IndexModel
from pymongo.database import Database


def _key(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


class SessionStore:
    def __init__(self, db: Database):
        self.sessions = db.sessions

    def ensure_indexes(self) -> None:
        self.sessions.create_indexes([IndexModel([("expires_at", ASCENDING)], name="expiry", expireAfterSeconds=0),
                                      IndexModel([("user", ASCENDING)], name="user")])

    def create(self, user: str, lifetime_s: int) -> str:
        """Start a session for ``user``, valid ``lifetime_s`` seconds; returns its id (for the cookie)."""
        sid = secrets.token_urlsafe(32)
        self.sessions.update_one({"_id": _key(sid)}, [{"$set": {
            "user": user, "created_at": "$$NOW",
            "expires_at": {"$dateAdd": {"startDate": "$$NOW", "unit": "second", "amount": int(lifetime_s)}}}}],
            upsert=True)
        return sid

    def user_of(self, sid: str) -> str | None:
        """The user of a live session; None when it ended, expired or never existed."""
        doc = self.sessions.find_one({"_id": _key(sid), "$expr": {"$gt": ["$expires_at", "$$NOW"]}}, {"user": 1})
        return doc and doc["user"]

    def end(self, sid: str) -> bool:
        """End one session (logout)."""
        return self.sessions.delete_one({"_id": _key(sid)}).deleted_count == 1

    def end_all(self, user: str) -> int:
        """End every session of ``user``; returns how many there were."""
        return self.sessions.delete_many({"user": user}).deleted_count

    def count(self, user: str) -> int:
        """How many sessions ``user`` has open (expired ones not yet removed included)."""
        return self.sessions.count_documents({"user": user})
