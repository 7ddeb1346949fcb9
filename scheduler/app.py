"""The Flask app factory: the API under /api/v1 over one Store; the web pages join as an extension.

``create_app(config, store=None, extensions=())`` reads no environment variable: everything
comes from the ``ServerConfig``. The web pages are not part of this package: the composition
root (``suanwang server``, the tests) passes ``web.init_app`` in ``extensions``. Errors under /api (and for clients that ask for JSON) are answered as
``{"error": {"code": ..., "message": ...}}`` with the status the error names:

    400 malformed JSON            401 no or bad credentials       403 role too low
    404 unknown route / task      405 method not allowed          409 illegal transition, duplicate
    413 body over max_body_bytes  415 body not JSON                422 wrong types, unknown fields
    503 MongoDB unreachable (try again)                           500 anything else (logged)
"""
from __future__ import annotations

import importlib
import logging
import secrets
from datetime import date, datetime, timedelta
from typing import Callable, Iterable

from flask import Flask, jsonify, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException

from fsm.errors import SuanwangError
from fsm.store import Store, database
from fsm.store.driver import StoredId, StoreError, StoreUnavailable
from scheduler import auth
from scheduler.auth import STORE_KEY
from scheduler.config import ServerConfig

log = logging.getLogger("suanwang.server")
#: Blueprints other engineers add in their own modules, registered under /api/v1 when present.
OPTIONAL_BLUEPRINTS = ("scheduler.api_schedules", "scheduler.api_notify", "scheduler.api_data", "scheduler.api_docs",
                       "scheduler.api_accounts", "scheduler.api_services", "scheduler.api_quotas")
#: ``settings`` document that holds the shared session key.
SECRET_KEY_ID = "secret_key"


class JSONProvider(DefaultJSONProvider):
    """ISO 8601 datetimes and string ids, instead of Flask's RFC 822 dates; keys in their order."""

    sort_keys = False

    @staticmethod
    def default(o):
        if isinstance(o, (datetime, date)):
            return o.isoformat()
        if isinstance(o, StoredId):
            return str(o)
        return DefaultJSONProvider.default(o)


def open_store(config: ServerConfig) -> Store:
    """The server's Store: a request waits at most ``mongo_timeout_s`` for MongoDB, then 503."""
    timeout_ms = int(config.mongo_timeout_s * 1000)
    return Store(database(config.mongo_uri, config.db_name, serverSelectionTimeoutMS=timeout_ms,
                          connectTimeoutMS=timeout_ms))


def shared_secret_key(store: Store) -> str:
    """One session key for every server process and restart, created once and kept in MongoDB."""
    return store.settings.value_or_create(SECRET_KEY_ID, lambda: secrets.token_hex(32))


def error_response(code: str, message: str, status: int, headers: dict | None = None):
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def create_app(config: ServerConfig, store: Store | None = None,
               extensions: Iterable[Callable[[Flask], None]] = ()) -> Flask:
    """The WSGI app of one server process; ``store`` defaults to a new one over ``config``.

    Each of ``extensions`` is called with the app once the API is registered (``web.init_app``
    mounts the pages at /).
    """
    config.validate()
    app = Flask("suanwang")
    app.json = JSONProvider(app)
    store = store or open_store(config)
    app.extensions[auth.STORE_KEY] = store
    app.config.update(
        SUANWANG=config, MAX_CONTENT_LENGTH=config.max_body_bytes,
        SECRET_KEY=config.secret_key or shared_secret_key(store),
        SESSION_COOKIE_NAME="suanwang_session", SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
        REGISTRY_CACHE_DIR=config.registry_cache_dir, REPO_ROOTS=list(config.repo_roots),
        REGISTRY_GIT_TIMEOUT_S=config.registry_git_timeout_s)
    if config.admin_token:
        store.users.ensure_admin("admin", config.admin_token)

    from scheduler.api import bp as api_bp
    from scheduler.api_functions import bp as functions_bp, init_registry

    auth.install(app)
    app.register_blueprint(api_bp, url_prefix="/api/v1")
    _app_wide_routes_and_checks(app)
    app.register_blueprint(functions_bp, url_prefix="/api/v1")
    init_registry(app, store)
    for module in OPTIONAL_BLUEPRINTS:
        _register_optional(app, module)
    for extension in extensions:
        extension(app)
    _error_handlers(app)
    return app


def _app_wide_routes_and_checks(app: Flask) -> None:
    """``/metrics`` and ``/healthz`` at the root too, where Prometheus and load balancers look first;
    and the JSON depth check before any view parses a body."""
    from scheduler import api
    from scheduler.request_guard import check_depth

    app.add_url_rule("/metrics", "root_metrics", api.metrics, methods=["GET"])
    app.add_url_rule("/healthz", "root_healthz", api.healthz, methods=["GET"])

    @app.before_request
    def json_depth():
        if request.method in ("POST", "PUT", "PATCH") and request.is_json:
            check_depth(request.get_data(cache=True))


def _register_optional(app: Flask, module: str) -> None:
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        if exc.name != module:
            raise
        return
    app.register_blueprint(mod.bp, url_prefix="/api/v1")


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


#: Codes and messages of the HTTP errors Werkzeug raises before a view runs.
HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "too_large",
              415: "unsupported_media_type"}


def _http_message(exc: HTTPException) -> str:
    if exc.code == 400 and request.is_json:
        return f"malformed request body: {exc.description}"
    if exc.code == 404:
        return f"no such resource: {request.path}"
    if exc.code == 405:
        allowed = ", ".join(sorted(m for m in (exc.valid_methods or []) if m not in ("HEAD", "OPTIONS")))
        return f"{request.method} is not allowed on {request.path}" + (f" (allowed: {allowed})" if allowed else "")
    if exc.code == 413:
        return f"the request body is too large (limit {request.max_content_length} bytes)"
    return exc.description or exc.name


def _error_handlers(app: Flask) -> None:
    @app.errorhandler(SuanwangError)
    def suanwang_error(exc: SuanwangError):
        return auth.error_response(exc)

    @app.errorhandler(StoreError)
    def mongo_error(exc: StoreError):
        if isinstance(exc, StoreUnavailable) or exc.timeout:
            log.warning("MongoDB unavailable: %s", str(exc).split(",")[0][:200])
            return error_response("database_unavailable", "the database is unavailable right now "
                                  f"({type(exc).__name__}); try again shortly", 503, {"Retry-After": "1"})
        log.exception("MongoDB error on %s %s", request.method, request.path)
        return error_response("database_error", f"the database refused the operation ({type(exc).__name__})", 500)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if not _wants_json() or exc.code is None or exc.code < 400:
            return exc
        code = "malformed_json" if exc.code == 400 and request.is_json else HTTP_CODES.get(
            exc.code, exc.name.lower().replace(" ", "_"))
        headers = {"Allow": ", ".join(sorted(exc.valid_methods))} if getattr(exc, "valid_methods", None) else None
        return error_response(code, _http_message(exc), exc.code, headers)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.path)
        if not _wants_json():
            raise exc
        return error_response("internal", f"internal error ({type(exc).__name__}); see the server log", 500)
