"""DataTables server-side protocol → one MongoDB page query (pure: no I/O here).

DataTables sends draw, start, length, search[value], order[0][column], order[0][dir] and
columns[i][data]; we add filters (status, function, worker, user). Only sorts that an index
serves are accepted, so a page of 100,000 tasks is one indexed query plus a count.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from fsm.states import Status
from fsm.store.filters import ran_on

#: DataTables column -> (stored field, direction of the created_at tie-break relative to the field's),
#: shaped like the indexes in ``fsm.store.schema`` so that MongoDB walks an index and never sorts in memory:
#: priority_created is (priority -1, created_at -1), status_created and function_created are (x 1, created_at -1).
SORTABLE = {"created_at": ("created_at", 0), "priority": ("priority", 1), "function": ("function", -1),
            "status": ("status", -1)}
MAX_LENGTH = 200
OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")


class BadRequest(ValueError):
    """The table request is malformed."""


@dataclass
class TableQuery:
    draw: int
    query: dict
    sort: list
    skip: int
    limit: int


def _int(args, name: str, default: int, lo: int, hi: int) -> int:
    raw = args.get(name, default)
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise BadRequest(f"{name} must be an integer") from None
    return max(lo, min(hi, value))


def parse_tasks(args, own_only: str | None) -> TableQuery:
    """Map the request's arguments to a query; ``own_only``: restrict to this user's tasks."""
    draw = _int(args, "draw", 0, 0, 10 ** 9)
    skip = _int(args, "start", 0, 0, 10 ** 9)
    limit = _int(args, "length", 25, 1, MAX_LENGTH)
    query: dict = {}
    status = args.get("status") or ""
    if status:
        if status not in {s.value for s in Status}:
            raise BadRequest(f"unknown status {status!r}")
        query["status"] = status
    for arg, field in (("function", "function"), ("user", "submitted_by")):
        if args.get(arg):
            query[field] = args[arg]
    if args.get("worker"):
        query.update(ran_on(args["worker"]))
    if own_only:
        query["submitted_by"] = own_only
    search = (args.get("search[value]") or "").strip()
    if search:
        if OBJECT_ID.match(search) or ":" in search or "@" in search:
            query["_id"] = search
        else:  # an anchored prefix uses the function index
            query.setdefault("function", {"$regex": "^" + re.escape(search)})
    column = args.get("order[0][column]")
    name = args.get(f"columns[{column}][data]") if column is not None else None
    field, tie = SORTABLE.get(name or "created_at", SORTABLE["created_at"])
    direction = 1 if args.get("order[0][dir]") == "asc" else -1
    sort = [(field, direction)] + ([("created_at", tie * direction)] if tie else [])
    return TableQuery(draw, query, sort, skip, limit)
