"""The ``users`` collection: people and API clients, their roles, passwords and tokens.

Passwords are hashed with scrypt (standard library); tokens are random and only their
SHA-256 is stored, so a database dump reveals no credential. The token entries (ids,
expiry, revocation) are ``fsm.store.tokens``; the pages' sessions ``fsm.store.sessions``.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timezone

from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from fsm.errors import Conflict, NotFound, Unauthorized, ValidationError
from fsm.identifiers import USER_NAME
from fsm.store.tokens import TokenStore, new_entry, token_hash  # noqa: F401  (token_hash: kept importable here)

ROLES = ("admin", "super", "business", "general")
#: What each role may do; a role has its own rights and those of the roles after it.
RANK = {"admin": 3, "super": 2, "business": 1, "general": 0}
SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1}


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **SCRYPT)
    return f"scrypt${SCRYPT['n']}${SCRYPT['r']}${SCRYPT['p']}${salt.hex()}${digest.hex()}"


def check_password(stored: str | None, password: str) -> bool:
    try:
        algo, n, r, p, salt, digest = (stored or "").split("$")
    except ValueError:
        return False
    if algo != "scrypt":
        return False
    got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), dklen=32, n=int(n), r=int(r), p=int(p))
    return hmac.compare_digest(got.hex(), digest)


_DUMMY_HASH = hash_password("not-a-real-password")


def has_role(user: dict, role: str) -> bool:
    """True when the user's role is ``role`` or above it."""
    return RANK.get(user.get("role"), -1) >= RANK[role]


class UserStore:
    def __init__(self, db: Database):
        self.db = db
        self.users = db.users
        self.tokens = TokenStore(db)

    def add(self, name: str, role: str, password: str | None = None, groups: list[str] | None = None) -> str:
        """Create a user and return a fresh API token (shown once, stored only as a hash)."""
        if not USER_NAME.match(name):
            raise ValidationError(f"user name must be {USER_NAME.rule}", field="name")
        if role not in ROLES:
            raise ValidationError(f"role must be one of {', '.join(ROLES)}, got {role!r}", field="role")
        if password is not None and len(password) < 8:
            raise ValidationError("password must be at least 8 characters", field="password")
        token, entry = new_entry("default", _now())
        doc = {"_id": name, "role": role, "groups": groups or [],
               "password_hash": hash_password(password) if password else None,
               "tokens": [entry],
               "created_at": _now()}
        try:
            self.users.insert_one(doc)
        except DuplicateKeyError:
            raise Conflict(f"a user named {name!r} already exists") from None
        return token

    def ensure_admin(self, name: str = "admin", token: str | None = None) -> str | None:
        """Create the admin on first start; with ``token``, make sure that token works for it."""
        given = token is not None
        token, entry = new_entry("admin.token", _now(), secret=token)
        existing = self.users.find_one({"_id": name})
        if existing is None:
            try:
                self.users.insert_one({"_id": name, "role": "admin", "groups": [], "password_hash": None,
                                       "tokens": [entry], "created_at": _now()})
            except DuplicateKeyError:
                return token if given else None  # another server created it first
            return token
        if not given:
            return None  # the admin exists and no token was asked for: add none nobody would see
        if not any(t["hash"] == entry["hash"] for t in existing.get("tokens", [])):
            self.users.update_one({"_id": name}, {"$push": {"tokens": entry}})
        return token

    def set_password(self, name: str, password: str) -> None:
        if len(password) < 8:
            raise ValidationError("password must be at least 8 characters", field="password")
        if not self.users.update_one({"_id": name}, {"$set": {"password_hash": hash_password(password)}}).matched_count:
            raise NotFound(f"no user named {name!r}")

    def change(self, name: str, *, role: str | None = None, groups: list[str] | None = None,
               password: str | None = None) -> dict:
        """Set any of role, groups and password in one write; returns the user as it was before (404)."""
        fields: dict = {}
        if role is not None:
            if role not in ROLES:
                raise ValidationError(f"role must be one of {', '.join(ROLES)}, got {role!r}", field="role")
            fields["role"] = role
        if groups is not None:
            fields["groups"] = groups
        if password is not None:
            if len(password) < 8:
                raise ValidationError("password must be at least 8 characters", field="password")
            fields["password_hash"] = hash_password(password)
        before = self.users.find_one_and_update({"_id": name}, {"$set": fields},
                                                {"password_hash": 0, "tokens": 0}) if fields else self.find(name)
        if before is None:
            raise NotFound(f"no user named {name!r}")
        return before

    def by_token(self, token: str) -> dict:
        """The token's user; 401 when the token is unknown, revoked or expired (``TokenStore.authenticate``)."""
        return self.tokens.authenticate(token)

    def by_password(self, name: str, password: str) -> dict:
        user = self.users.find_one({"_id": name})
        # An unknown name costs the same scrypt as a wrong password: timing reveals no user names.
        stored = (user or {}).get("password_hash") or _DUMMY_HASH
        if not check_password(stored, password) or user is None or not user.get("password_hash"):
            raise Unauthorized("wrong user name or password")
        user.pop("password_hash", None)
        user.pop("tokens", None)
        return user

    def list(self) -> list[dict]:
        return list(self.users.find({}, {"password_hash": 0, "tokens": 0}).sort("_id", 1))

    def members(self, group: str) -> list[str]:
        """The names of the users in ``group``."""
        return sorted(d["_id"] for d in self.users.find({"groups": group}, {"_id": 1}))

    def find(self, name: str) -> dict | None:
        """The user without secrets, or None."""
        return self.users.find_one({"_id": name}, {"password_hash": 0, "tokens": 0})

    def details(self, name: str) -> dict:
        """The user without secrets, with ``has_password``; 404 when there is none."""
        found = list(self.users.aggregate([{"$match": {"_id": name}},
                                           {"$set": {"has_password": {"$toBool": "$password_hash"}}},
                                           {"$project": {"password_hash": 0, "tokens": 0}}]))
        if not found:
            raise NotFound(f"no user named {name!r}")
        return found[0]

    def exists(self, name: str) -> bool:
        return self.users.count_documents({"_id": name}, limit=1) == 1

    def listing(self) -> list[dict]:
        """Every user for the users page: role, groups, created_at and ``has_password`` (no secrets)."""
        return list(self.users.find({}, {"role": 1, "groups": 1, "created_at": 1,
                                         "has_password": {"$toBool": "$password_hash"}}).sort("_id", 1))

    def remove(self, name: str) -> None:
        """Remove the user, its tokens and its open sessions (a new user of that name inherits none)."""
        if not self.users.delete_one({"_id": name}).deleted_count:
            raise NotFound(f"no user named {name!r}")
        self.db.sessions.delete_many({"user": name})
        self.db.token_uses.delete_many({"user": name})


def _now() -> datetime:
    return datetime.now(timezone.utc)
