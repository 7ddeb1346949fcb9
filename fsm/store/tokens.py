"""API tokens, kept in each ``users`` document's ``tokens`` list.

An entry: ``{id, hash, label, created_at, expires_at, revoked_at, revoked_by}``.
Only the SHA-256 of the secret is stored (``hash``, served by the users' ``token`` index).
``id`` is the first ``ID_LEN`` hex digits of the hash, so the entries written before tokens
had ids (``{hash, label, created_at}``) have one too: it is computed on read, nothing is
migrated. ``expires_at`` null (or absent) means never. A revoked or expired token stays in
the list, so its use is answered "revoked at ..." or "expired at ..." rather than "unknown";
entries that ended more than ``KEEP_ENDED`` ago are dropped when a new token is created.
When a token was last used is kept apart, in ``token_uses`` (``{_id: token id, user, at}``),
written at most once per ``LAST_USED_EVERY`` per token (not per call), so a request never
rewrites the users document. Every time is the MongoDB server's clock (``$$NOW``).
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from pymongo.database import Database

from fsm.errors import Conflict, NotFound, TokenExpired, TokenRevoked, Unauthorized

ID_LEN = 16
#: At most this many token entries per user (revoked and expired ones included).
MAX_TOKENS = 100
KEEP_ENDED = timedelta(days=30)
LAST_USED_EVERY = timedelta(minutes=1)
#: What a listing shows of an entry (never the hash).
PUBLIC = ("id", "label", "created_at", "expires_at", "revoked_at", "revoked_by")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_id(entry: dict) -> str:
    """The entry's id: stored, or (an entry older than ids) the head of its hash."""
    return entry.get("id") or entry["hash"][:ID_LEN]


def public(entry: dict) -> dict:
    """An entry as the API lists it: no hash; ``revoked`` true or false."""
    view = {key: entry.get(key) for key in PUBLIC}
    view["id"] = token_id(entry)
    view["revoked"] = entry.get("revoked_at") is not None
    return view


def new_entry(label: str, now: datetime, expires_at: datetime | None = None,
              secret: str | None = None) -> tuple[str, dict]:
    """A secret (fresh unless given) and its entry."""
    secret = secret or secrets.token_urlsafe(32)
    digest = token_hash(secret)
    return secret, {"id": digest[:ID_LEN], "hash": digest, "label": label, "created_at": now,
                    "expires_at": expires_at, "revoked_at": None}


class TokenStore:
    def __init__(self, db: Database):
        self.db = db
        self.users = db.users
        self.uses = db.token_uses

    def create(self, name: str, label: str, expires_in_s: int | None, now: datetime) -> tuple[str, dict]:
        """A new token for user ``name``; returns the secret (shown once) and its public entry."""
        expires_at = now + timedelta(seconds=expires_in_s) if expires_in_s else None
        secret, entry = new_entry(label, now, expires_at)
        ended = now - KEEP_ENDED
        self.users.update_one({"_id": name}, {"$pull": {"tokens": {"$or": [{"revoked_at": {"$lt": ended}},
                                                                          {"expires_at": {"$lt": ended}}]}}})
        done = self.users.update_one({"_id": name, f"tokens.{MAX_TOKENS - 1}": {"$exists": False}},
                                     {"$push": {"tokens": entry}})
        if not done.matched_count:
            self._user(name)  # 404 when the user does not exist
            raise Conflict(f"user {name!r} already holds {MAX_TOKENS} tokens; revoke some first", limit=MAX_TOKENS)
        return secret, public(entry)

    def list(self, name: str) -> list[dict]:
        """The user's tokens, oldest first, without secrets (404 for an unknown user)."""
        entries = [public(e) for e in self._user(name).get("tokens") or []]
        used = {u["_id"]: u["at"] for u in self.uses.find({"_id": {"$in": [e["id"] for e in entries]}})}
        return [{**e, "last_used_at": used.get(e["id"])} for e in entries]

    def revoke(self, name: str, tid: str, by: str, now: datetime) -> dict:
        """Revoke token ``tid`` of ``name`` at once (404 when it has none such); revoking twice keeps the first."""
        entry = next((e for e in self._user(name).get("tokens") or [] if token_id(e) == tid), None)
        if entry is None:
            raise NotFound(f"user {name!r} has no token with id {tid!r}")
        if entry.get("revoked_at") is None:
            self.users.update_one({"_id": name, "tokens": {"$elemMatch": {"hash": entry["hash"], "revoked_at": None}}},
                                  {"$set": {"tokens.$.revoked_at": now, "tokens.$.revoked_by": by}})
            entry = {**entry, "revoked_at": now, "revoked_by": by}
        return public(entry)

    def authenticate(self, secret: str) -> dict:
        """The user holding ``secret`` (no password hash, no tokens); else 401 naming why (unknown, revoked,
        expired)."""
        digest = token_hash(secret)
        found = list(self.users.aggregate([
            {"$match": {"tokens.hash": digest}},
            {"$set": {"token": {"$first": {"$filter": {"input": "$tokens",
                                                       "cond": {"$eq": ["$$this.hash", digest]}}}},
                      "now": "$$NOW"}},
            {"$project": {"password_hash": 0, "tokens": 0}},
            {"$lookup": {"from": "token_uses", "pipeline": [{"$match": {"_id": digest[:ID_LEN]}}], "as": "use"}}]))
        if not found:
            raise Unauthorized("the token is not valid")
        user = found[0]
        entry, now, use = user.pop("token"), user.pop("now"), user.pop("use")
        tid = token_id(entry)
        if entry.get("revoked_at") is not None:
            raise TokenRevoked(f"token {tid} was revoked at {entry['revoked_at']:%Y-%m-%d %H:%M:%S} UTC"
                               f" by {entry.get('revoked_by') or 'an admin'}")
        if entry.get("expires_at") is not None and entry["expires_at"] <= now:
            raise TokenExpired(f"token {tid} expired at {entry['expires_at']:%Y-%m-%d %H:%M:%S} UTC; "
                               "create a new one (suanwang token create)")
        if not use or now - use[0]["at"] >= LAST_USED_EVERY:
            self.uses.update_one({"_id": tid}, {"$set": {"user": user["_id"], "at": now}}, upsert=True)
        return user

    def _user(self, name: str) -> dict:
        doc = self.users.find_one({"_id": name}, {"tokens": 1})
        if doc is None:
            raise NotFound(f"no user named {name!r}")
        return doc
