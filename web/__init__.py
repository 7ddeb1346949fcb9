"""The web pages: a Flask blueprint mounted at / by the server (``scheduler.app.create_app``).

Pages read through the data layer (``fsm.store``); actions go through the same store verbs
(and so through the FSM) as the API. Browsers log in with a password and get a session;
every form and action carries a CSRF token (Flask-WTF's).
"""
from __future__ import annotations

from flask import Blueprint

#: Where the app keeps its ``fsm.store.Store`` (``app.extensions[STORE_KEY]``).
STORE_KEY = "suanwang_store"

bp = Blueprint("web", __name__, template_folder="templates", static_folder="static", static_url_path="/assets")

from web import actions, data, pages  # noqa: E402,F401  (routes register on bp)
