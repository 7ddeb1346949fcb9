"""Groups, partitions and services, independent of HTTP: the API, the CLI and the pages call these.

    groups      create, list, read, change partitions, delete: admin
    services    create, deploy, roll back, undeploy: super, admin; list and read: those who may
                use its partition (``fsm.partitions``); a closed partition answers 404 like an
                unknown name, so its services are not revealed
    publish     ``{"service": NAME, "args", "kwargs", ...}`` becomes a task of the function and
                version deployed at that moment, with ``service`` and ``price`` recorded

Every deploy, roll-back and undeploy is on the service's ``history`` and in the audit trail.
"""
from __future__ import annotations

from typing import Any

from fsm.fields import json_object
from fsm import partitions as parts
from fsm import rights
from fsm.errors import Conflict, FunctionNotFound, NotFound, ValidationError
from fsm.identifiers import GROUP_NAME, PARTITION, SERVICE_NAME
from fsm.store import Store
from fsm.store.services import UNDEPLOYED
from registry import catalog

SERVICE_FIELDS = {"name", "function", "version", "partition", "price"}


def open_partitions(store: Store, user: dict) -> frozenset[str] | None:
    """The partitions ``user`` may use (None: all, for admins)."""
    if user.get("role") == "admin":
        return parts.ALL
    return parts.open_partitions(user, store.groups.of(user.get("groups") or []))


def check_function_open(store: Store, user: dict, doc: dict | None) -> None:
    """404 (like an unknown function) when function version ``doc`` is in a partition closed to ``user``."""
    if doc and not parts.is_open(open_partitions(store, user), doc.get("partition")):
        raise FunctionNotFound(f"unknown function {doc.get('code')!r} (version {doc.get('version')!r})")


def _object(body: Any, allowed: set[str], example: str) -> dict:
    return json_object(body, allowed, example=example)


def _partition_list(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise ValidationError("'partitions' must be a list of partition names", field="partitions")
    return [PARTITION.check(p, "partition", field="partitions") for p in value]


# -------------------------------------------------------------------- groups
def create_group(store: Store, body: Any, user: dict) -> dict:
    rights.check(user, "manage_groups")
    body = _object(body, {"name", "partitions"}, '{"name": "nlp-team", "partitions": ["nlp"]}')
    name = GROUP_NAME.check(body.get("name"), "group name", field="name")
    return store.groups.add(name, _partition_list(body.get("partitions", [])))


def list_groups(store: Store, user: dict) -> list[dict]:
    rights.check(user, "manage_groups")
    return store.groups.list()


def get_group(store: Store, name: str, user: dict) -> dict:
    rights.check(user, "manage_groups")
    return store.groups.get(name)


def patch_group(store: Store, name: str, body: Any, user: dict) -> dict:
    rights.check(user, "manage_groups")
    body = _object(body, {"partitions"}, '{"partitions": ["nlp", "vision"]}')
    if "partitions" not in body:
        raise ValidationError("'partitions' is required", field="partitions")
    return store.groups.set_partitions(name, _partition_list(body["partitions"]))


def delete_group(store: Store, name: str, user: dict) -> None:
    rights.check(user, "manage_groups")
    store.groups.remove(name)


# ------------------------------------------------------------------ services
def _registered_version(store: Store, function: str, version: Any) -> str:
    if not isinstance(version, str) or not version:
        raise ValidationError("'version' is required: a registered version of the function", field="version")
    catalog.resolve_version(store, function, version, "admin")  # 404 unless registered
    return version


def create_service(store: Store, body: Any, user: dict) -> dict:
    rights.check(user, "manage_services")
    body = _object(body, SERVICE_FIELDS, '{"name": "translate", "function": "echo", "version": "builtin"}')
    name = SERVICE_NAME.check(body.get("name"), "service name", field="name")
    function = body.get("function")
    if not isinstance(function, str) or not function or ":" in function:
        raise ValidationError("'function' is required: a registered function name", field="function")
    version = _registered_version(store, function, body.get("version"))
    partition = PARTITION.check(body.get("partition", parts.PUBLIC), "partition", field="partition")
    price = body.get("price", 0)
    if isinstance(price, bool) or not isinstance(price, (int, float)) or price < 0:
        raise ValidationError("'price' must be a number >= 0 (credits per call)", field="price")
    doc = store.services.create(name, function, version, partition, price, user["_id"])
    store.audit.record(user["_id"], "service.create", name, function=function, version=version,
                       partition=partition, price=price)
    return doc


def get_service(store: Store, name: str, user: dict) -> dict:
    """The service with its history; 404 when unknown or in a partition closed to ``user``."""
    doc = store.services.get(name)
    if not parts.is_open(open_partitions(store, user), doc.get("partition")):
        raise NotFound(f"no service named {name!r}")
    return doc


def list_services(store: Store, user: dict) -> list[dict]:
    return store.services.list(open_partitions(store, user))


def deploy(store: Store, name: str, body: Any, user: dict) -> dict:
    rights.check(user, "manage_services")
    body = _object(body, {"version"}, '{"version": "v2"}')
    cur = get_service(store, name, user)
    version = _registered_version(store, cur["function"], body.get("version"))
    doc = store.services.deploy(name, version, user["_id"])
    store.audit.record(user["_id"], "service.deploy", name, version=version, previous=doc["previous"])
    return doc


def rollback(store: Store, name: str, user: dict) -> dict:
    rights.check(user, "manage_services")
    get_service(store, name, user)
    doc = store.services.rollback(name, user["_id"])
    store.audit.record(user["_id"], "service.rollback", name, version=doc["deployed"], previous=doc["previous"])
    return doc


def undeploy(store: Store, name: str, user: dict) -> dict:
    rights.check(user, "manage_services")
    get_service(store, name, user)
    doc = store.services.undeploy(name, user["_id"])
    store.audit.record(user["_id"], "service.undeploy", name, version=doc["deployed"])
    return doc


# ------------------------------------------------------------------- publish
def expand(store: Store, items: list, user: dict) -> tuple[list, dict[int, dict]]:
    """Turn each ``{"service": NAME, ...}`` body into a body of the deployed function and version.

    Returns the bodies and ``{index: {"service", "price"}}`` for those that named a service. A
    service and a function in one body: 422; unknown or closed: 404; undeployed: 409.
    """
    pinned: dict[int, dict] = {}
    out = list(items)
    seen: dict[str, dict] = {}  # one read per service: a bulk request is pinned to one version
    for index, body in enumerate(items):
        if not isinstance(body, dict) or "service" not in body:
            continue
        prefix = f"task [{index}]: " if len(items) > 1 else ""
        if "function" in body or "version" in body:
            raise ValidationError(f"{prefix}give either 'service' or 'function' (and 'version'), not both",
                                  field="service")
        name = body["service"]
        if not SERVICE_NAME.match(name):
            raise ValidationError(f"{prefix}'service' must be a service name: {SERVICE_NAME.rule}", field="service")
        if name not in seen:
            seen[name] = get_service(store, name, user)
        svc = seen[name]
        if svc["state"] == UNDEPLOYED:
            raise Conflict(f"{prefix}service {name!r} is undeployed: it takes no new calls until it is deployed "
                           "again", service=name)
        out[index] = {**{k: v for k, v in body.items() if k != "service"}, "function": svc["function"],
                      "version": svc["deployed"]}
        pinned[index] = {"service": name, "price": {"per_call": svc.get("price", 0)}}
    return out, pinned


def resolving_user(user: dict, pinned: bool) -> dict:
    """Who the version check runs as: a service call was vetted when the service was created and
    deployed (its function may be private, or in a partition the caller cannot see)."""
    return {**user, "role": "admin"} if pinned else user


def stamp(docs: list[dict], pinned: dict[int, dict]) -> None:
    """Record ``service`` and ``price`` on the task documents of service calls."""
    for index, extra in pinned.items():
        docs[index].update(extra)
