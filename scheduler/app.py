"""The Flask app factory: the API under /api/v1 and the web pages at /, over one Store."""
from __future__ import annotations

import logging
import secrets
from datetime import date, datetime

from bson import ObjectId
from flask import Flask, jsonify, request
from flask.json.provider import DefaultJSONProvider
from pymongo.errors import PyMongoError
from werkzeug.exceptions import HTTPException

from fsm.errors import SuanwangError
from fsm.store import Store, database
from scheduler.auth import STORE_KEY
from scheduler.config import ServerConfig

log = logging.getLogger("suanwang.server")


class JSONProvider(DefaultJSONProvider):
    """ISO 8601 datetimes and string ids, instead of Flask's RFC 822 dates."""

    @staticmethod
    def default(o):
        if isinstance(o, (datetime, date)):
            return o.isoformat()
        if isinstance(o, ObjectId):
            return str(o)
        return DefaultJSONProvider.default(o)


def _secret_key(store: Store) -> str:
    """One key for every server process and restart, kept in MongoDB."""
    store.db.settings.update_one({"_id": "secret_key"}, {"$setOnInsert": {"value": secrets.token_hex(32)}},
                                 upsert=True)
    return store.db.settings.find_one({"_id": "secret_key"})["value"]


def error_response(code: str, message: str, status: int):
    return jsonify({"error": {"code": code, "message": message}}), status


def create_app(config: ServerConfig, store: Store | None = None) -> Flask:
    config.validate()
    app = Flask("suanwang")
    app.json = JSONProvider(app)
    store = store or Store(database(config.mongo_uri, config.db_name))
    app.extensions[STORE_KEY] = store
    app.config.update(MAX_CONTENT_LENGTH=config.max_body_bytes, SUANWANG=config,
                      SECRET_KEY=config.secret_key or _secret_key(store),
                      SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      REGISTRY_CACHE_DIR=config.registry_cache_dir, REPO_ROOTS=list(config.repo_roots))
    if config.admin_token:
        store.users.ensure_admin("admin", config.admin_token)

    from scheduler.api import bp as api_bp
    from scheduler.api_functions import bp as functions_bp, init_registry

    app.register_blueprint(api_bp, url_prefix="/api/v1")
    app.register_blueprint(functions_bp, url_prefix="/api/v1")
    init_registry(app, store.db)
    _register_optional(app)
    from web import bp as web_bp

    app.register_blueprint(web_bp)
    _error_handlers(app)
    return app


def _register_optional(app: Flask) -> None:
    """Blueprints of features that live in their own modules (schedules, notifications)."""
    import importlib

    for module in ("scheduler.api_schedules", "scheduler.api_notify"):
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            if exc.name != module:
                raise
            continue
        app.register_blueprint(mod.bp, url_prefix="/api/v1")


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def _error_handlers(app: Flask) -> None:
    @app.errorhandler(SuanwangError)
    def suanwang_error(exc: SuanwangError):
        return error_response(exc.code, exc.message, exc.http_status)

    @app.errorhandler(PyMongoError)
    def mongo_error(exc: PyMongoError):
        log.warning("MongoDB error: %s", exc)
        return error_response("database_unavailable",
                              f"the database is unavailable right now ({type(exc).__name__}); try again", 503)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if not _wants_json():
            return exc
        messages = {
            400: "malformed request body: it is not valid JSON" if request.is_json else (exc.description or ""),
            404: f"no such resource: {request.path}",
            405: f"{request.method} is not allowed on {request.path}",
            413: f"the request body is too large (limit {app.config['MAX_CONTENT_LENGTH']} bytes)",
        }
        codes = {400: "malformed_json" if request.is_json else "bad_request", 404: "not_found",
                 405: "method_not_allowed", 413: "too_large"}
        return error_response(codes.get(exc.code, exc.name.lower().replace(" ", "_")),
                              messages.get(exc.code, exc.description or exc.name), exc.code)
