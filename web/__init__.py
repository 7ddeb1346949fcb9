"""The web pages: a Flask blueprint that ``init_app`` mounts at / (``suanwang server`` passes it to
``scheduler.app.create_app(..., extensions=(web.init_app,))``; the scheduler never imports web).

Pages read and act through the application layer (``scheduler.service*``), as the API does,
and report each task's outcome.

What a host app must give the blueprint (``create_app`` does; so does the tests' bare app):
    ``app.extensions[STORE_KEY]``   the ``fsm.store.Store`` the pages read and act through
    ``app.secret_key``              signs the session cookie and the CSRF tokens
Browsers log in with a password (scrypt hashes, ``UserStore.by_password``); the signed session
cookie holds the user's name and the id of a session kept on the server (``fsm.store.sessions``),
which logout, a password change or an admin ends. Who is looking, their rights and the CSRF check
are ``scheduler.auth`` and ``fsm.rights``, the API's own: every unsafe request to the
blueprint needs Flask-WTF's CSRF token (``web.session.csrf_protect``), else 403 ``csrf_failed``.
Front-end libraries come from npm through ``scripts/build_web_assets.sh`` into ``static/vendor/``;
without them the pages still render, with a note saying to run that script.

Modules: ``session`` (who is looking, roles, CSRF), ``pages`` (HTML), ``data`` (JSON behind the
tables and charts), ``tables`` (DataTables request -> one indexed MongoDB query), ``actions``.
"""
from __future__ import annotations

from flask import Blueprint, Flask

from scheduler.auth import STORE_KEY  # noqa: F401,E402  (where the app keeps its Store)

bp = Blueprint("web", __name__, template_folder="templates", static_folder="static", static_url_path="/assets")

from web import actions, data, display, pages, pages_data, pages_services  # noqa: E402,F401  (routes register on bp)


def init_app(app: Flask) -> None:
    """Mount the pages at / on a Suanwang app (an extension for ``create_app``)."""
    app.register_blueprint(bp)
