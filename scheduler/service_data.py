"""Data use cases (no HTTP here): upload, list, read, delete, references at publish, results.

Who may do what:
    upload              admin, super, business (general users only read)
    read / download     admin, super: every object; business, general: their own, which
                        includes the results their tasks produced (owned by the submitter)
    delete              the owner, or admin; refused (409) while a live task refers to it
Each user's stored bytes are capped by ``quota_bytes`` (``ServerConfig.data_quota_bytes``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import IO, Any, Iterator

from fsm.errors import Conflict, DataNotFound, Forbidden, PayloadTooLarge, QuotaExceeded, ValidationError
from fsm.references import DATA, references
from fsm.states import LIVE, Status
from fsm.store import Store
from fsm.store.users import has_role
from scheduler import quotas
from scheduler.paging import int_arg

MAX_PAGE = 500
DEFAULT_PAGE = 50
MAX_NAME = 255
LIST_PARAMS = {"limit", "skip", "owner", "name"}


@dataclass(frozen=True)
class DataLimits:
    """Server settings for data: largest object, per-user quota (None: unlimited)."""

    max_bytes: int = 64 << 30
    quota_bytes: int | None = None


def may_read(user: dict, meta: dict) -> bool:
    return has_role(user, "super") or meta.get("owner") == user["_id"]


def _readable(store: Store, data_id: str, user: dict) -> dict:
    meta = store.data.get(data_id)
    if not may_read(user, meta):
        raise Forbidden(f"data {data_id} belongs to another user")
    return meta


# ------------------------------------------------------------------- upload
def upload(store: Store, user: dict, source: IO[bytes], *, name: Any, length: int | None,
           sha256: str | None = None, content_type: str | None = None, limits: DataLimits = DataLimits()) -> dict:
    """Store the bytes of ``source`` as a new object owned by the caller (streamed)."""
    if not has_role(user, "business"):
        raise Forbidden(f"uploading data needs the business role or above; {user['_id']} is {user.get('role')}")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME or any(ord(c) < 32 for c in name):
        raise ValidationError(f"'name' must be 1-{MAX_NAME} printable characters (?name=...)", field="name")
    if sha256 is not None and (len(sha256) != 64 or any(c not in "0123456789abcdefABCDEF" for c in sha256)):
        raise ValidationError("X-Content-SHA256 must be 64 hexadecimal digits", field="X-Content-SHA256")
    if length is not None and length > limits.max_bytes:
        raise PayloadTooLarge(f"the data is {length} bytes; the limit is {limits.max_bytes} bytes",
                              limit=limits.max_bytes)
    quota_left = quotas.data_bytes_left(store, user, limits.quota_bytes)
    if quota_left is not None and length is not None and length > quota_left:
        raise QuotaExceeded(f"storing {length} bytes would exceed {user['_id']}'s storage quota "
                            f"({max(quota_left, 0)} bytes left); delete data first", owner=user["_id"])
    return store.data.upload(source, name=name, owner=user["_id"], content_type=content_type or "application/octet-stream",
                             expected_sha256=sha256, max_bytes=limits.max_bytes, quota_left=quota_left)


# -------------------------------------------------------------------- reads
def list_data(store: Store, user: dict, args: dict) -> dict:
    """One page of what the caller may see: ``{"items", "total", "limit", "skip"}``."""
    unknown = set(args) - LIST_PARAMS
    if unknown:
        raise ValidationError(f"unknown query parameter(s): {', '.join(sorted(unknown))} "
                              f"(allowed: {', '.join(sorted(LIST_PARAMS))})")
    limit = int_arg(args, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
    skip = int_arg(args, "skip", 0, 0, 10 ** 9)
    owner = args.get("owner")
    if not has_role(user, "super"):
        if owner not in (None, user["_id"]):
            raise Forbidden("you may list only your own data")
        owner = user["_id"]
    items, total = store.data.page(owner, skip=skip, limit=limit, name=args.get("name"))
    for item in items:  # the tasks that use each object (at most 10 each; one indexed query)
        item["used_by"] = store.data.referenced(item["id"])
    return {"items": items, "total": total, "limit": limit, "skip": skip}




def get_data(store: Store, data_id: str, user: dict) -> dict:
    return _readable(store, data_id, user)


def open_content(store: Store, data_id: str, user: dict, byte_range: tuple[int, int] | None = None
                 ) -> tuple[dict, Iterator[bytes]]:
    """The metadata and the bytes (``[start, stop)`` when a range is given) of one object."""
    meta = _readable(store, data_id, user)
    start, stop = byte_range or (0, meta["size"])
    return meta, store.data.read(data_id, start, stop)


def delete_data(store: Store, data_id: str, user: dict) -> dict:
    meta = store.data.get(data_id)
    if meta.get("owner") != user["_id"] and not has_role(user, "admin"):
        raise Forbidden(f"data {data_id} belongs to another user; only its owner or an admin may delete it")
    live = store.data.referenced(meta["id"], [s.value for s in LIVE])
    if live:
        raise Conflict(f"data {data_id} is used by live task(s) {', '.join(live)}; cancel or wait for them first",
                       tasks=live)
    store.data.delete(data_id)
    return meta


# ---------------------------------------------------------- task arguments
def check_references(store: Store, docs: list[dict], user: dict) -> None:
    """Every ``{"__data__": id}`` in the new tasks exists and is readable by the publisher
    (404 / 403, naming the id); each document gets ``data_refs`` for delete and retention."""
    wanted: dict[int, list[str]] = {}
    for index, doc in enumerate(docs):
        ids = sorted({ident for marker, ident in references([doc.get("args"), doc.get("kwargs")])
                      if marker == DATA})
        if ids:
            wanted[index] = ids
    if not wanted:
        return
    found = store.data.find(sorted({i for ids in wanted.values() for i in ids if _plausible(i)}))
    for index, ids in wanted.items():
        prefix = f"task [{index}]: " if len(docs) > 1 else ""
        for ident in ids:
            meta = found.get(ident)
            if meta is None:
                raise DataNotFound(f"{prefix}no data object with id {ident!r} (argument {{\"__data__\": ...}}); "
                                   "nothing was published", id=ident)
            if not may_read(user, meta):
                raise Forbidden(f"{prefix}data {ident} belongs to another user; nothing was published")
        docs[index]["data_refs"] = ids


def _plausible(ident: str) -> bool:
    return len(ident) == 24 and all(c in "0123456789abcdef" for c in ident)


# ------------------------------------------------------------ task results
def task_result(store: Store, task_id: str, user: dict) -> tuple[str, int | None, Iterator[bytes] | Any]:
    """The whole result of a task: ``(content_type, size, pieces)`` for a stored result, or
    ``("application/json", None, value)`` for an inline one (404 / 403 like the task)."""
    from scheduler.service import get_task

    task = get_task(store, task_id, user)
    if task["status"] != Status.SUCCEEDED.value:
        raise Conflict(f"task {task_id} is {task['status']}; only a succeeded task has a result")
    ref = task.get("result_ref")
    if not ref:
        return "application/json", None, task.get("result")
    return ref.get("content_type") or "application/octet-stream", ref["size"], store.data.read(ref["id"])


# ---------------------------------------------------------------- retention
def retention(store: Store, max_age_s: float | None, orphan_age_s: float = 3600.0) -> dict:
    """Housekeeping: chunks of cut-off uploads, and data no task refers to past ``max_age_s``."""
    swept = store.data.sweep_orphans(orphan_age_s)
    expired = store.data.expire_unreferenced(max_age_s) if max_age_s is not None else []
    return {"orphan_chunks": swept, "expired": expired}
