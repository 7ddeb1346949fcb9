"""What the server does, independent of HTTP: the API and the web pages both call these.

Each function takes the store and the calling user (a users document) and enforces roles.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from fsm.errors import Forbidden, SuanwangError, ValidationError
from fsm.states import Status
from fsm.store import Store, server_now
from fsm.store.spec import validate
from fsm.store.users import has_role
from registry import catalog

MAX_BULK = 10_000
MAX_PAGE = 500
#: Fields a task listing returns (the detail adds history, attempts, args and result).
LIST_FIELDS = {"function": 1, "version": 1, "status": 1, "priority": 1, "is_enabled": 1, "submitted_by": 1,
               "created_at": 1, "started_at": 1, "finished_at": 1, "reason": 1, "error": 1, "redundancy": 1,
               "workers": 1, "failures": 1}
FILTERS = {"status", "function", "worker", "submitted_by", "version", "reason"}


def sees_all(user: dict) -> bool:
    """Super-users and admins see every task; others only their own."""
    return has_role(user, "super")


def _check_visible(user: dict, task: dict) -> None:
    if not sees_all(user) and task.get("submitted_by") != user["_id"]:
        raise Forbidden(f"task {task['_id']} belongs to another user")


# ------------------------------------------------------------------- tasks
def publish(store: Store, bodies: Any, user: dict) -> list[dict]:
    """Validate every body, then store them all in one round trip and wake the workers."""
    if not has_role(user, "business"):
        raise Forbidden(f"publishing tasks needs the business role or above; {user['_id']} is {user['role']}")
    many = isinstance(bodies, list)
    items = bodies if many else [bodies]
    if many and not items:
        raise ValidationError("the list of tasks is empty")
    if len(items) > MAX_BULK:
        raise ValidationError(f"at most {MAX_BULK} tasks per request, got {len(items)}")
    docs = []
    for index, body in enumerate(items):
        try:
            spec = validate(body)
            spec.version = catalog.resolve_version(store.db, spec.function, spec.version, user["role"])
            if "requires" not in body:
                spec.requires = {**spec.requires, **catalog.task_defaults(store.db, spec.function,
                                                                          spec.version).get("requires", {})}
        except SuanwangError as exc:
            if many:
                exc.message = f"task [{index}]: {exc.message}"
                exc.args = (exc.message,)
            raise
        docs.append(store.tasks.document(spec, user["_id"]))
    store.tasks.insert(docs)
    store.wakeups.signal(n=len(docs))
    return docs


def list_tasks(store: Store, user: dict, args: dict) -> dict:
    unknown = set(args) - FILTERS - {"limit", "skip", "offset", "sort", "order"}
    if unknown:
        raise ValidationError(f"unknown query parameter(s): {', '.join(sorted(unknown))}")
    query: dict[str, Any] = {}
    for key in FILTERS & set(args):
        value = args[key]
        if key == "status" and value not in {s.value for s in Status}:
            raise ValidationError(f"status must be one of {', '.join(s.value for s in Status)}")
        query["workers" if key == "worker" else key] = value
    if not sees_all(user):
        query["submitted_by"] = user["_id"]
    limit = _int_arg(args, "limit", 50, 1, MAX_PAGE)
    skip = _int_arg(args, "skip", _int_arg(args, "offset", 0, 0, 10 ** 9), 0, 10 ** 9)
    sort_field = args.get("sort", "created_at")
    if sort_field not in {"created_at", "priority", "finished_at", "function", "status"}:
        raise ValidationError(f"cannot sort by {sort_field!r}")
    order = -1 if args.get("order", "desc") == "desc" else 1
    docs, total = store.tasks.page(query, sort=[(sort_field, order), ("_id", order)], skip=skip, limit=limit,
                                   projection=LIST_FIELDS)
    return {"items": docs, "total": total, "limit": limit, "skip": skip}


def _int_arg(args: dict, name: str, default: int, lo: int, hi: int) -> int:
    raw = args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ValidationError(f"{name} must be an integer, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ValidationError(f"{name} must be between {lo} and {hi}")
    return value


def get_task(store: Store, task_id: str, user: dict) -> dict:
    task = store.tasks.get(task_id)
    _check_visible(user, task)
    return task


def patch_task(store: Store, task_id: str, changes: Any, user: dict) -> dict:
    if not has_role(user, "super"):
        raise Forbidden("re-prioritising and enabling/disabling tasks needs the super role")
    if not isinstance(changes, dict):
        raise ValidationError("the body must be an object like {\"priority\": 5, \"is_enabled\": false}")
    store.tasks.get(task_id)  # 404 before 409
    doc = store.tasks.update_fields(task_id, changes, user["_id"])
    if changes.get("is_enabled") or "priority" in changes:
        store.wakeups.signal()
    return doc


def cancel_task(store: Store, task_id: str, user: dict) -> dict:
    task = store.tasks.get(task_id)
    if not has_role(user, "super") and task.get("submitted_by") != user["_id"]:
        raise Forbidden("you may cancel only your own tasks")
    store.tasks.cancel(task_id, user["_id"])
    return store.tasks.get(task_id)


def requeue_task(store: Store, task_id: str, user: dict) -> dict:
    if not has_role(user, "super"):
        raise Forbidden("re-queueing tasks needs the super role")
    store.tasks.get(task_id)
    store.tasks.requeue(task_id, user["_id"])
    store.wakeups.signal()
    return store.tasks.get(task_id)


# ----------------------------------------------------------------- workers
def list_workers(store: Store) -> list[dict]:
    return store.workers.list()


def drain_worker(store: Store, name: str, user: dict, draining: bool = True) -> dict:
    if not has_role(user, "admin"):
        raise Forbidden("draining a worker needs the admin role")
    return store.workers.set_state(name, "draining" if draining else "online")


# ------------------------------------------------------------------- stats
def stats(store: Store) -> dict:
    now = server_now(store.db)
    counts = store.tasks.counts_by_status()
    oldest = store.db.tasks.find_one({"status": "queued", "is_enabled": True}, {"created_at": 1},
                                     sort=[("created_at", 1)])
    finished_last_minute = store.db.tasks.count_documents({"finished_at": {"$gte": now - timedelta(minutes=1)}})
    online = store.db.workers.count_documents({"state": {"$in": ["online", "draining"]}})
    return {"counts": counts, "queue_depth": counts["queued"] + counts["pending"],
            "oldest_queued_age_s": round((now - oldest["created_at"]).total_seconds(), 3) if oldest else 0,
            "finished_last_minute": finished_last_minute, "workers_online": online,
            "service_map": service_map(store)}


def service_map(store: Store) -> dict[str, list[str]]:
    """Which online workers serve each function: built-ins everywhere, versions where checked out."""
    result: dict[str, set[str]] = {}
    for w in store.db.workers.find({"state": "online"}, {"versions_ready": 1}):
        for code, version in w.get("versions_ready") or []:
            result.setdefault(f"{code}@{version}", set()).add(w["_id"])
    return {fn: sorted(names) for fn, names in sorted(result.items())}


# ------------------------------------------------------------------- users
def add_user(store: Store, body: Any, user: dict) -> dict:
    if not has_role(user, "admin"):
        raise Forbidden("managing users needs the admin role")
    if not isinstance(body, dict) or set(body) - {"name", "role", "password"}:
        raise ValidationError("the body must be {\"name\", \"role\", \"password\" (optional)}")
    token = store.users.add(body.get("name"), body.get("role"), body.get("password"))
    return {"name": body["name"], "role": body["role"], "token": token}
