"""HTTP routes of the function registry (owned by the registry; mounted under /api/v1).

    GET   /functions                       built-ins and registered versions (?code=, ?active=1, ?skip=, ?limit=)
    POST  /functions                       register a version (admin, super)              201 | 200 unchanged
    GET   /functions/<code>                the newest non-deprecated version, with its source text
    GET   /functions/<code>/<version>      one version with its source text
    PATCH /functions/<code>/<version>      {"public": bool, "deprecated": bool, "price": {...} | null} (admin, super)
    GET   /repos, POST /repos              allowed repositories (admin)

Business and general users see public versions only. The app calls ``init_registry(app, db)``
once in ``create_app``; errors are ``fsm.errors`` that the app turns into JSON.
"""
from __future__ import annotations

from datetime import datetime

from flask import Blueprint, current_app, jsonify, request

from fsm.errors import ConfigError, Forbidden, ValidationError
from fsm import rights
from fsm.store.driver import stored_id_text
from registry.builtins import BUILTIN_VERSION, BUILTINS
from registry.resolver import DEFAULT_CACHE_DIR
from registry.service import Registry
from scheduler import service_services
from scheduler.auth import current_user, require, store
from scheduler.config import default
from scheduler.query_args import query_params

bp = Blueprint("api_functions", __name__)
EXTENSION = "suanwang_registry"
MAX_LIMIT = 500


def init_registry(app, db, *, cache_dir: str | None = None, roots: tuple[str, ...] | None = None) -> Registry:
    """Attach the registry to ``app``: ``REGISTRY_CACHE_DIR`` and ``REPO_ROOTS`` (a list) come from app.config."""
    registry = Registry(db, cache_dir or app.config.get("REGISTRY_CACHE_DIR") or str(DEFAULT_CACHE_DIR),
                        roots=tuple(roots if roots is not None else app.config.get("REPO_ROOTS") or ()),
                        git_timeout_s=float(app.config.get("REGISTRY_GIT_TIMEOUT_S",
                                                           default("registry_git_timeout_s"))))
    app.extensions[EXTENSION] = registry
    return registry


def _registry() -> Registry:
    registry = current_app.extensions.get(EXTENSION)
    if registry is None:
        raise ConfigError("the function registry is not initialised: call "
                          "scheduler.api_functions.init_registry(app, db) in create_app")
    return registry


def _plain(doc: dict) -> dict:
    out = {}
    for key, value in doc.items():
        if key in ("_id", "serial"):
            continue
        out[key] = value.isoformat() if isinstance(value, datetime) else stored_id_text(value)
    return out


def _sees_private(user: dict) -> bool:
    return rights.may(user, "see_private_functions")


def _body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ValidationError("the request body must be a JSON object")
    return body


def _int_arg(name: str, default: int, hi: int) -> int:
    raw = request.args.get(name, default)
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ValidationError(f"'{name}' must be an integer", field=name) from None
    if not 0 <= value <= hi:
        raise ValidationError(f"'{name}' must be between 0 and {hi}", field=name)
    return value


def _builtins(code: str | None) -> list[dict]:
    return [{"code": name, "name": name, "version": BUILTIN_VERSION, "description": (f.__doc__ or "").strip(),
             "builtin": True, "public": True, "deprecated": False}
            for name, f in sorted(BUILTINS.items()) if code in (None, name)]


@bp.get("/functions")
@query_params("code", "active", "skip", "limit")
def list_functions():
    user = current_user()
    code = request.args.get("code") or None
    active = request.args.get("active", "").lower() in ("1", "true", "yes")
    skip, limit = _int_arg("skip", 0, 1 << 30), _int_arg("limit", 100, MAX_LIMIT)
    items, total = _registry().list_functions(code, include_deprecated=not active,
                                              public_only=not _sees_private(user),
                                              partitions=service_services.open_partitions(store(), user), skip=skip, limit=limit)
    builtins = _builtins(code) if skip == 0 else []
    return jsonify({"items": builtins + [_plain(d) for d in items], "total": total + len(_builtins(code))})


@bp.post("/functions")
@require("manage_functions")
def register_function():
    doc, created = _registry().register(current_user(), _body())
    return jsonify(_plain(doc)), 201 if created else 200


def _visible(doc: dict) -> dict:
    """The version as JSON; 404 in a partition closed to the caller, 403 when it is not public."""
    service_services.check_function_open(store(), current_user(), doc)
    if not doc.get("public") and not _sees_private(current_user()):
        raise Forbidden(f"function {doc['code']} version {doc['version']} is not public")
    return jsonify(_plain(doc))


@bp.get("/functions/<code>")
def newest_function(code: str):
    return _visible(_registry().get_function(code))


@bp.get("/functions/<code>/<version>")
def show_function(code: str, version: str):
    return _visible(_registry().get_function(code, version))


@bp.patch("/functions/<code>/<version>")
@require("manage_functions")
def change_function(code: str, version: str):
    body = _body()
    unknown = set(body) - {"public", "deprecated", "price"}
    if unknown:
        raise ValidationError(f"only 'public', 'deprecated' and 'price' can change, not {', '.join(sorted(unknown))}")
    price = {"price": body["price"]} if "price" in body else {}
    doc = _registry().set_flags(current_user(), code, version, public=body.get("public"),
                                deprecated=body.get("deprecated"), **price)
    return jsonify(_plain(doc))


@bp.get("/repos")
@query_params()
@require("manage_repos")
def list_repos():
    repos = [{"name": r["_id"], **_plain(r)} for r in _registry().list_repos()]
    return jsonify({"items": repos, "total": len(repos)})


@bp.post("/repos")
@require("manage_repos")
def add_repo():
    body = _body()
    unknown = set(body) - {"location", "url", "name", "description", "verify"}
    if unknown:
        raise ValidationError(f"unknown field(s): {', '.join(sorted(unknown))}")
    verify = body.get("verify", True)
    if not isinstance(verify, bool):
        raise ValidationError("'verify' must be true or false", field="verify")
    doc = _registry().add_repo(current_user(), body.get("location") or body.get("url"), name=body.get("name"),
                               description=body.get("description") or "", verify=verify)
    return jsonify({"name": doc["_id"], **_plain(doc)}), 201
