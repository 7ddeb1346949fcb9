"""Who may connect to MongoDB, and what each may do: the users and roles of Suanwang.

Three users, all defined in the ``admin`` database (``authSource=admin``):

``admin``            ``root``: the operator's, for backups, upgrades and this module itself
``suanwang-server``  ``readWrite`` on Suanwang's database (change streams included),
                     ``suanwangSchema`` (``collMod``: collection validators) and
                     ``clusterMonitor`` (read-only ``serverStatus`` and replica-set status)
``suanwang-worker``  the custom role ``suanwangWorker``: only what a worker daemon does

A worker's credentials travel to every machine that runs one, so its role lists single
actions on single collections; it has nothing at all on ``users``, ``settings``,
``subscriptions``, ``schedules`` or credits, and only reads ``functions`` and ``repos``.
``ensure_users`` creates or updates all of it (idempotent: an existing role is redefined, an
existing user gets the stored password and roles again).
"""
from __future__ import annotations

import base64
import json
import logging
import os
import re
import secrets
from pathlib import Path
from urllib.parse import quote_plus

from pymongo import MongoClient
from pymongo.database import Database
from pymongo.errors import OperationFailure

from fsm.errors import EmbeddedMongoError
from fsm.store.db import DEFAULT_DB
from fsm.store.schema import ensure_indexes

log = logging.getLogger("suanwang.store.access")

ADMIN_USER, SERVER_USER, WORKER_USER = "admin", "suanwang-server", "suanwang-worker"
WORKER_ROLE = "suanwangWorker"
#: ``collMod`` on Suanwang's database, which ``readWrite`` lacks: the server sets collection validators.
SCHEMA_ROLE = "suanwangSchema"
#: GridFS bucket of large data (``fsm.store.data``): its ``.files`` and ``.chunks`` collections.
DATA_BUCKET = "data"
CREDENTIALS_FILE = "credentials.json"
KEYFILE = "keyfile"
UNAUTHORIZED, AUTH_FAILED, USER_EXISTS = 13, 18, 51003
ROLE_EXISTS = 51002

#: collection -> actions: every read and write on the worker's path, and nothing else.
WORKER_ACTIONS: dict[str, list[str]] = {
    # claim (find_one_and_update), lease renewal, still-held check, attempt end, progress reports;
    # insert: child tasks a running task publishes (``current_task().submit``)
    "tasks": ["find", "insert", "update"],
    # the counters the one task writer keeps as attempts end (``fsm.store.counters``)
    "task_counters": ["find", "insert", "update"],
    # register (upsert), heartbeat, drain/offline state
    "workers": ["find", "insert", "update"],
    "worker_samples": ["find", "insert"],
    # its outcomes per function (quarantines, slower-machine deferral) and its peers' figures
    "machine_stats": ["find", "insert", "update"],
    # idle slots tail the capped collection; a worker may signal others
    "wakeups": ["find", "insert"],
    # function versions and their repositories: read only
    "functions": ["find"],
    "repos": ["find"],
    # read by claims; a child task in a new lane registers it (an upsert)
    "lanes": ["find", "insert", "update"],
    # the room left under running quotas, read once at start (``fsm.store.quotas``)
    "quotas": ["find"],
    # large data: read arguments; store large results (GridFS writes chunks, then the file
    # document, and deletes the chunks of an aborted upload); GridFS checks its indexes once
    f"{DATA_BUCKET}.files": ["find", "insert", "remove", "listIndexes"],
    f"{DATA_BUCKET}.chunks": ["find", "insert", "remove", "listIndexes"],
}


def worker_privileges(db_name: str = DEFAULT_DB) -> list[dict]:
    return [{"resource": {"db": db_name, "collection": coll}, "actions": actions}
            for coll, actions in WORKER_ACTIONS.items()]


def schema_privileges(db_name: str = DEFAULT_DB) -> list[dict]:
    return [{"resource": {"db": db_name, "collection": ""}, "actions": ["collMod"]}]


def server_roles(db_name: str = DEFAULT_DB) -> list[dict]:
    return [{"role": "readWrite", "db": db_name}, {"role": "clusterMonitor", "db": "admin"},
            {"role": SCHEMA_ROLE, "db": "admin"}]


# ------------------------------------------------------------------ credentials
def new_password() -> str:
    return secrets.token_urlsafe(24)


def new_credentials(db_name: str = DEFAULT_DB) -> dict:
    return {"db": db_name, "users": {ADMIN_USER: new_password(), SERVER_USER: new_password(),
                                     WORKER_USER: new_password()}}


def write_private(path: Path, text: str, mode: int = 0o600) -> None:
    """Write a secret file that is never readable by others, not even for a moment."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def load_or_create_credentials(path: Path, db_name: str = DEFAULT_DB) -> tuple[dict, bool]:
    """The stored credentials (mode 0600), made once; returns (credentials, made_now)."""
    if path.exists():
        return json.loads(path.read_text()), False
    creds = new_credentials(db_name)
    write_private(path, json.dumps(creds, indent=2) + "\n")
    return creds, True


def ensure_keyfile(path: Path) -> Path:
    """The replica set's shared secret (base64, at most 1024 characters; mode 0400), made once."""
    if not path.exists():
        write_private(path, base64.b64encode(secrets.token_bytes(576)).decode() + "\n", mode=0o400)
    return path


def with_user(uri: str, user: str, password: str) -> str:
    """``uri`` with these credentials (``authSource=admin``): ``mongodb://u:p@host/...``."""
    scheme, _, rest = uri.partition("://")
    rest = rest.split("@", 1)[-1]
    auth = f"{quote_plus(user)}:{quote_plus(password)}@"
    sep = "&" if "?" in rest else ("?" if "/" in rest else "/?")
    if "authSource=" not in rest:
        rest = f"{rest}{sep}authSource=admin"
    return f"{scheme}://{auth}{rest}"


def mask_password(uri: str) -> str:
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", uri)


# ------------------------------------------------------------------ users and roles
def create_first_admin(client: MongoClient, password: str) -> None:
    """Through the localhost exception (no user exists yet): the operator's root user."""
    client.admin.command("createUser", ADMIN_USER, pwd=password, roles=[{"role": "root", "db": "admin"}])


def ensure_users(admin_client: MongoClient, creds: dict) -> None:
    """Create or update the roles and the three users (the client is authenticated as root)."""
    admin = admin_client.admin
    db_name = creds.get("db", DEFAULT_DB)
    _ensure_role(admin, WORKER_ROLE, worker_privileges(db_name))
    _ensure_role(admin, SCHEMA_ROLE, schema_privileges(db_name))
    users = creds["users"]
    for name, roles in ((ADMIN_USER, [{"role": "root", "db": "admin"}]), (SERVER_USER, server_roles(db_name)),
                        (WORKER_USER, [{"role": WORKER_ROLE, "db": "admin"}])):
        _ensure_user(admin, name, users[name], roles)


def _ensure_role(admin: Database, name: str, privileges: list[dict]) -> None:
    try:
        admin.command("createRole", name, privileges=privileges, roles=[])
    except OperationFailure as exc:
        if exc.code != ROLE_EXISTS:  # it exists: redefine it as it is now
            raise
        admin.command("updateRole", name, privileges=privileges, roles=[])


def _ensure_user(admin: Database, name: str, password: str, roles: list[dict]) -> None:
    if admin.command("usersInfo", name)["users"]:
        admin.command("updateUser", name, pwd=password, roles=roles)
    else:
        admin.command("createUser", name, pwd=password, roles=roles)


def secure(host: str, port: int, creds_path: Path, db_name: str = DEFAULT_DB) -> dict:
    """After the replica set has a primary: make sure the users exist; returns the credentials.

    While no user exists, the localhost exception lets an unauthenticated local client create
    the first one (the root ``admin``); that client then logs in as it and defines the rest. A
    data directory made before access control (no users) is upgraded the same way.
    """
    creds, _ = load_or_create_credentials(creds_path, db_name)
    local = MongoClient(host, port, directConnection=True, serverSelectionTimeoutMS=5_000)
    try:
        create_first_admin(local, creds["users"][ADMIN_USER])
    except OperationFailure as exc:
        if exc.code not in (UNAUTHORIZED, USER_EXISTS):  # users exist: log in with the stored ones
            raise
    finally:
        local.close()
    admin = admin_client(host, port, creds)
    try:
        ensure_users(admin, creds)
    except OperationFailure as exc:
        if exc.code == AUTH_FAILED:
            raise EmbeddedMongoError(f"the users of this MongoDB do not match {creds_path}: restore that file, "
                                     "or see docs/MONGODB_ACCESS.md, 'A lost credentials file'") from exc
        raise
    finally:
        admin.close()
    return creds


def admin_client(host: str, port: int, creds: dict, timeout_ms: int = 5_000) -> MongoClient:
    return MongoClient(host, port, directConnection=True, serverSelectionTimeoutMS=timeout_ms,
                       username=ADMIN_USER, password=creds["users"][ADMIN_USER], authSource="admin")


def ensure_indexes_if_allowed(store) -> bool:
    """``ensure_indexes``, skipped where this user may not create indexes (a worker: the server does).

    ``store``: a ``Store`` (or a raw ``Database``)."""
    try:
        ensure_indexes(getattr(store, "db", store))
        return True
    except OperationFailure as exc:
        if exc.code != UNAUTHORIZED:
            raise
        log.debug("indexes are left to the server: %s", exc)
        return False
