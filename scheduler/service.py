"""What the server does, independent of HTTP: the API and the web pages both call these.

Each function takes the store and the calling user (a users document without secrets),
enforces roles, and raises ``fsm.errors`` that the HTTP layer turns into JSON. Documents
come back as stored (``_id``, datetimes); the caller shapes them for its output.

Who may do what (the rights of ``fsm.rights``, which the pages check too):
    publish             admin, super, business (business: public functions only; see
                        ``registry.catalog.resolve_version``); general may not
    read tasks          admin, super: every task; business, general: their own
    patch, requeue      admin, super
    cancel              the task's submitter (business and above), or admin / super
    workers, stats      everyone logged in; drain / resume: admin
    users               admin
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from fsm.errors import Conflict, Forbidden, SuanwangError, TaskNotFound, ValidationError
from fsm.identifiers import check_chosen_task_id
from fsm.states import Status
from fsm.store import Store
from fsm.store.filters import ran_on
from fsm.store.spec import TaskSpec, validate
from fsm.store.users import ROLES
from fsm.store.workers import DRAINING, ONLINE
from registry import catalog
from registry.builtins import BUILTIN_VERSION
from fsm import rights
from scheduler.paging import int_arg
from scheduler import credits, quotas, resources, service_data, service_flow, service_services

#: Most tasks one publish request may carry.
MAX_BULK = 10_000
#: Largest page of a listing.
MAX_PAGE = 500
DEFAULT_PAGE = 50
#: Fields a task listing returns (the detail adds args, result, history and attempts).
LIST_FIELDS = {"function": 1, "version": 1, "status": 1, "priority": 1, "is_enabled": 1, "submitted_by": 1,
               "created_at": 1, "updated_at": 1, "started_at": 1, "finished_at": 1, "run_after": 1, "reason": 1,
               "error": 1, "redundancy": 1, "quorum": 1, "workers": 1, "failures": 1, "parent": 1,
               "progress": 1}
#: Listing filters: query parameter -> task field (each an equality on a string).
FILTERS = {"status": "status", "function": "function", "version": "version", "worker": "attempts.worker",
           "submitted_by": "submitted_by", "reason": "reason", "parent": "parent"}
SORTS = {"created_at", "updated_at", "finished_at", "priority", "function", "status"}
PAGING = {"limit", "skip", "offset", "sort", "order"}


def sees_all(user: dict) -> bool:
    """Super-users and admins see every task; others only their own."""
    return rights.may(user, "read_task_any")


def _check_visible(user: dict, task: dict) -> None:
    if not sees_all(user) and task.get("submitted_by") != user["_id"]:
        raise Forbidden(f"task {task['_id']} belongs to another user")


# ------------------------------------------------------------------- publish
def check_priority(user: dict, priority: Any, caps: dict | None) -> None:
    """A role may not set a priority above its cap (``ServerConfig.priority_caps``): 403 naming both."""
    cap = (caps or {}).get(user.get("role"))
    if cap is not None and isinstance(priority, int) and not isinstance(priority, bool) and priority > cap:
        raise Forbidden(f"priority {priority} is above what the {user.get('role')} role may set ({cap}); "
                        f"ask a super-user to raise it", field="priority", cap=cap)


def publish(store: Store, bodies: Any, user: dict, priority_caps: dict | None = None,
            parent: str | None = None, firing: dict | None = None) -> list[dict]:
    """Publish one task body or a list of them (bulk); returns the stored documents.

    ``parent``: the running task that submits these (``current_task().submit``), set on each.
    ``firing``: a schedule's firing (``{"schedule_id", "scheduled_for"}``, stored on each task),
    published as its owner ``user`` under the firing's reserved id (``schedule@time``).

    Every body is validated, then every function version resolved, before anything is
    written: one bad item refuses the whole request (its index is named) and stores nothing.
    The documents go to MongoDB in one ``insert_many`` and idle workers are woken.
    """
    rights.check(user, "publish")
    many = isinstance(bodies, list)
    items = bodies if many else [bodies]
    if many and not items:
        raise ValidationError("the list of tasks is empty")
    if len(items) > MAX_BULK:
        raise ValidationError(f"at most {MAX_BULK} tasks per request, got {len(items)}")
    items, pinned = service_services.expand(store, items, user)  # {"service": name}: the deployed version
    specs = [_each(many, index, validate, body) for index, body in enumerate(items)]
    for index, spec in enumerate(specs):
        _each(many, index, check_priority, user, spec.priority, priority_caps)
    _check_ids(store, specs, many, firing is not None)
    external = service_flow.check_dependencies(store, specs, user, sees_all(user))
    resolved: dict[tuple, tuple[str | None, dict, dict | None]] = {}  # one registry lookup per (function, version)
    prices: dict[int, dict] = {}  # the function versions' prices (credits)
    for index, (spec, body) in enumerate(zip(specs, items)):
        key = (spec.function, spec.version, index in pinned)
        if key not in resolved:
            resolved[key] = _each(many, index, _resolve, store, spec,
                                  service_services.resolving_user(user, index in pinned))
        spec.version, requires, price = resolved[key]
        if "requires" not in body and requires:
            spec.requires = {**spec.requires, **requires}
        if price:
            prices[index] = price
    docs = [store.tasks.document(spec, user["_id"], parent) for spec in specs]
    for doc in docs:  # the submitter's role at publish: a worker publishes child tasks with it, never reading users
        doc["submitted_role"] = user.get("role")
    service_services.stamp(docs, pinned)
    for doc in docs if firing else ():
        doc.update(firing)
    credits.stamp_prices(docs, prices)
    service_data.check_references(store, docs, user)  # {"__data__": id} arguments: 404 / 403, nothing written
    from scheduler.service_explain import publish_warnings  # here: that module imports this one

    publish_warnings(store, docs)
    quotas.check_publish(store, user, len(docs))  # 429 past a queued quota, nothing written
    with credits.reserved(store, docs, items, user):  # priced tasks: 402 and nothing written when unpaid
        # idle workers are woken as soon as the primary has the tasks (also after a partial insert)
        store.tasks.insert(docs, on_stored=lambda: store.wakeups.signal(n=len(docs),
                                                                        lanes=[doc["lane"] for doc in docs]))
        if external:  # dependencies that may have ended already: resolve their new dependents now
            store.tasks.flow.settle_published(external)
    return docs


def check_publishable(store: Store, body: Any, user: dict) -> None:
    """Check one task body as ``publish`` would for ``user`` (a service resolved, the function and
    version known and open to them), writing nothing: a schedule's template at create and change."""
    items, pinned = service_services.expand(store, [body], user)
    spec = validate(items[0])
    _resolve(store, spec, service_services.resolving_user(user, 0 in pinned))


def _each(many: bool, index: int, fn, *args):
    """Run one item's check; in a bulk request, errors name the item's index."""
    try:
        return fn(*args)
    except SuanwangError as exc:
        if many:
            exc.message = f"task [{index}]: {exc.message}"
            exc.args = (exc.message,)
            exc.details.setdefault("index", index)
        raise


def _resolve(store: Store, spec: TaskSpec, user: dict) -> tuple[str | None, dict, dict | None]:
    """The version a task runs, the ``requires`` it declares and its price (None: free)."""
    version = catalog.resolve_version(store, spec.function, spec.version, user["role"])
    if version not in (None, BUILTIN_VERSION) and user.get("role") != "admin":  # closed partition: 404
        service_services.check_function_open(store, user, store.functions.find(spec.function, version))
    defaults = catalog.task_defaults(store, spec.function, version)
    return version, defaults.get("requires", {}), defaults.get("price")


def _check_ids(store: Store, specs: list[TaskSpec], many: bool, firing: bool = False) -> None:
    """Caller-chosen ids must be new: refuse before writing so nothing is half stored."""
    ids = [s.id for s in specs if s.id is not None]
    if not ids:
        return
    for index, spec in enumerate(specs):  # '@' is reserved for schedule firings: no id can take theirs
        if spec.id is not None and not firing:
            _each(many, index, check_chosen_task_id, spec.id)
    seen: set[str] = set()
    for index, task_id in enumerate(s.id for s in specs):
        if task_id is not None and task_id in seen:
            raise ValidationError(f"task [{index}]: id {task_id!r} appears twice in this request", field="id",
                                  index=index)
        seen.add(task_id)
    taken = store.reads.taken_ids(ids)
    if taken:
        raise Conflict(f"task id(s) already exist: {', '.join(taken)}" + (" (nothing was published)" if many
                                                                         else ""), ids=taken)


# --------------------------------------------------------------------- reads
def list_tasks(store: Store, user: dict, args: dict) -> dict:
    """One page of tasks: ``{"items", "total", "limit", "skip"}``.

    ``args`` are query parameters (strings): filters ``status``, ``function``, ``version``,
    ``worker``, ``submitted_by``, ``reason``; ``limit`` (1-500), ``skip`` (or ``offset``),
    ``sort`` and ``order`` (asc | desc). Business and general users see only their own tasks.
    """
    unknown = set(args) - set(FILTERS) - PAGING
    if unknown:
        raise ValidationError(f"unknown query parameter(s): {', '.join(sorted(unknown))} (filters: "
                              f"{', '.join(sorted(FILTERS))}; paging: limit, skip, sort, order)")
    query: dict[str, Any] = {}
    for name, fld in FILTERS.items():
        if name in args:
            query[fld] = str(args[name])
    if "worker" in args:
        del query["attempts.worker"]
        query.update(ran_on(str(args["worker"])))
    if "status" in query and query["status"] not in {s.value for s in Status}:
        raise ValidationError(f"status must be one of {', '.join(s.value for s in Status)}, got {query['status']!r}",
                              field="status")
    if not sees_all(user):
        if query.get("submitted_by", user["_id"]) != user["_id"]:
            raise Forbidden("you may list only your own tasks")
        query["submitted_by"] = user["_id"]
    limit = int_arg(args, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
    if "skip" in args and "offset" in args:
        raise ValidationError("give either skip or offset, not both", field="skip")
    skip = int_arg(args, "skip" if "skip" in args else "offset", 0, 0, 10 ** 9)
    sort_field = args.get("sort", "created_at")
    if sort_field not in SORTS:
        raise ValidationError(f"sort must be one of {', '.join(sorted(SORTS))}, got {sort_field!r}", field="sort")
    order = args.get("order", "desc")
    if order not in ("asc", "desc"):
        raise ValidationError(f"order must be asc or desc, got {order!r}", field="order")
    direction = -1 if order == "desc" else 1
    docs, total = store.tasks.page(query, sort=[(sort_field, direction), ("_id", direction)], skip=skip,
                                   limit=limit, projection=LIST_FIELDS)
    return {"items": docs, "total": total, "limit": limit, "skip": skip}




def get_task(store: Store, task_id: str, user: dict) -> dict:
    """The whole task: status, result, error, reason, history, attempts (404 / 403); a task moved to
    the archive by retention is found there (``archived: true``)."""
    try:
        task = store.tasks.get(task_id)
    except TaskNotFound:
        task = {**store.retention.get(task_id), "archived": True}
    _check_visible(user, task)
    return task


# --------------------------------------------------------------------- verbs
def patch_task(store: Store, task_id: str, changes: Any, user: dict, priority_caps: dict | None = None) -> dict:
    """Re-prioritise or enable/disable a live task (super); takes effect on the next claim."""
    rights.check(user, "change_task")
    if not isinstance(changes, dict):
        raise ValidationError("the body must be an object like {\"priority\": 5, \"is_enabled\": false}")
    store.tasks.get(task_id)  # 404 before 422/409
    check_priority(user, changes.get("priority"), priority_caps)
    doc = store.tasks.update_fields(task_id, changes, user["_id"])
    if doc.get("is_enabled") and doc.get("status") == Status.QUEUED.value:
        store.wakeups.signal()
    return doc


def cancel_task(store: Store, task_id: str, user: dict) -> dict:
    """Cancel a pending, queued or running task: its submitter, or super / admin (409 when final)."""
    task = store.tasks.get(task_id)
    if not rights.may_cancel(user, task.get("submitted_by")):
        rights.check(user, "cancel_task_own")
        raise Forbidden("you may cancel only your own tasks", right="cancel_task_any")
    store.tasks.cancel(task_id, user["_id"])
    credits.settle_now(store, task_id)  # a priced task gets its unused reservation back at once
    return store.tasks.get(task_id)


def requeue_task(store: Store, task_id: str, user: dict) -> dict:
    """Put a failed or cancelled task back in the queue (super; 409 from any other status)."""
    rights.check(user, "change_task")
    store.tasks.get(task_id)
    store.tasks.requeue(task_id, user["_id"])
    store.wakeups.signal()
    return store.tasks.get(task_id)


# ------------------------------------------------------------------- workers
def list_workers(store: Store, user: dict, args: dict | None = None) -> list[dict]:
    """Every worker's latest whoami; ``state`` filters (online | draining | offline)."""
    args = args or {}
    unknown = set(args) - {"state"}
    if unknown:
        raise ValidationError(f"unknown query parameter(s): {', '.join(sorted(unknown))} (filter: state)")
    query = {}
    if "state" in args:
        if args["state"] not in ("online", "draining", "offline"):
            raise ValidationError("state must be online, draining or offline", field="state")
        query["state"] = args["state"]
    return store.workers.list(query)


def get_worker(store: Store, name: str, user: dict) -> dict:
    return store.workers.get(name)


def drain_worker(store: Store, name: str, user: dict, draining: bool = True) -> dict:
    """Stop a worker claiming new tasks (admin); ``draining=False`` lets it claim again."""
    rights.check(user, "manage_workers")
    return store.workers.set_state(name, DRAINING if draining else ONLINE)


# --------------------------------------------------------------------- stats
def stats(store: Store, user: dict | None = None) -> dict:
    """Counts by status, queue depth and age, throughput of the last minute, workers online."""
    now = store.now()
    counts = store.reads.status_counts()
    return {"counts": counts, "total": sum(counts.values()),
            "queue_depth": counts[Status.QUEUED.value] + counts[Status.PENDING.value],
            "oldest_queued_age_s": store.reads.queue_age_s(now),
            "finished_last_minute": store.reads.finished_since(now - timedelta(minutes=1)),
            "workers_online": store.workers.count_live(), "service_map": resources.service_map(store, now),
            "server_time": now}


# --------------------------------------------------------------------- users
def list_users(store: Store, user: dict) -> list[dict]:
    rights.check(user, "manage_users")
    return store.users.list()


def add_user(store: Store, body: Any, user: dict) -> dict:
    """Create a user (admin); the answer holds its API token, shown this once."""
    rights.check(user, "manage_users")
    if not isinstance(body, dict):
        raise ValidationError("the body must be an object like {\"name\": \"ann\", \"role\": \"business\"}")
    unknown = set(body) - {"name", "role", "password", "groups"}
    if unknown:
        raise ValidationError(f"unknown field(s): {', '.join(sorted(unknown))} (allowed: name, role, password, "
                              "groups)", field=sorted(unknown)[0])
    name, role = body.get("name"), body.get("role")
    if not isinstance(name, str):
        raise ValidationError("'name' is required: a user name", field="name")
    if role not in ROLES:
        raise ValidationError(f"'role' must be one of {', '.join(ROLES)}, got {role!r}", field="role")
    password = body.get("password")
    if password is not None and not isinstance(password, str):
        raise ValidationError("'password' must be a string", field="password")
    groups = body.get("groups", [])
    if not isinstance(groups, list) or not all(isinstance(x, str) for x in groups):
        raise ValidationError("'groups' must be a list of strings", field="groups")
    token = store.users.add(name, role, password, groups)
    return {"name": name, "role": role, "groups": groups, "token": token}
