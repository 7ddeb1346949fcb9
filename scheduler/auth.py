"""Who is calling, for the API and the pages alike: bearer tokens, sessions, CSRF, rights.

One module, so both fronts answer the same way:

* ``current_user()`` answers the caller's users document (without secrets) or raises
  ``Unauthorized`` (401). A bearer token (``Authorization: Bearer <token>``) wins over the
  signed session cookie, which holds the user's name (``session["user"]``) and the id of a
  server-side session (``session["sid"]``, ``fsm.store.sessions``), both set by the pages'
  login (``start_session``). A cookie whose session ended (logout, a password change, an
  admin's revocation, expiry) or that has no session id is no login: it is cleared.
  An expired or revoked token is refused naming why (401 ``token_expired`` / ``token_revoked``).
* CSRF: a request in an unsafe method (anything but ``SAFE_METHODS``) that a browser session
  authenticates must carry the session's Flask-WTF token, as the ``X-CSRFToken`` header or
  the ``csrf_token`` form field; the pages check every unsafe request (login and logout too),
  the API those a cookie authenticates (a bearer token cannot be sent by a forged page).
  A failure is always ``403 csrf_failed`` (``fsm.errors.CsrfFailed``).
* Rights: ``require(right)`` guards a view with a right of ``fsm.rights.RIGHTS`` (or a
  role name); the service layer checks the same table.
* ``install(app)`` makes every matched API route authenticate before its view runs, so an
  unknown and a known resource both answer 401 without credentials (nothing can be probed);
  views marked ``@public`` (health, metrics, the OpenAPI document) are exempt.
"""
from __future__ import annotations

import math

from functools import wraps

from flask import Flask, current_app, g, jsonify, request, session

from fsm.errors import CsrfFailed, SuanwangError, Unauthorized
from fsm.store import Store
from fsm import rights

#: ``app.extensions`` key of the app's ``fsm.store.Store``.
STORE_KEY = "suanwang_store"
#: The session keys the pages' login sets: the user's name and the server-side session's id.
SESSION_USER = "user"
SESSION_ID = "sid"
#: Methods that change nothing: they need no CSRF token, on the API or the pages.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: URL prefix of the API, whose matched routes authenticate first.
API_PREFIX = "/api/"


def store() -> Store:
    """The ``fsm.store.Store`` of this app (``app.extensions['suanwang_store']``)."""
    return current_app.extensions[STORE_KEY]


def bearer_token() -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; None when there is no header."""
    header = request.headers.get("Authorization", "")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <token>'")
    return token.strip()


def current_user(required: bool = True) -> dict | None:
    """The caller's user document (no password hash, no tokens), looked up once per request.

    With ``required`` (the default) a caller without valid credentials gets ``Unauthorized``
    (401); otherwise None. A bad bearer token is refused even when not required.
    """
    if "suanwang_user" not in g:
        g.suanwang_user = _lookup()
    user = g.suanwang_user
    if user is None and required:
        raise Unauthorized("log in or send 'Authorization: Bearer <token>'")
    return user


def _lookup() -> dict | None:
    token = bearer_token()
    if token is not None:
        return store().users.by_token(token)  # raises Unauthorized for an unknown token
    name = session.get(SESSION_USER)
    if not name:
        return None
    sid = session.get(SESSION_ID)
    if not isinstance(sid, str) or store().sessions.user_of(sid) != name:
        session.clear()  # ended, expired, or a cookie from before sessions were kept on the server
        return None
    if request.method not in SAFE_METHODS:
        check_csrf()  # a browser session changes nothing without the page's token
    user = store().users.find(name)
    if user is None:  # the user was removed since logging in
        session.clear()
    return user


def start_session(name: str) -> None:
    """Log ``name`` in for this browser: a new server-side session, its id in the signed cookie."""
    session.clear()
    session[SESSION_USER] = name
    session[SESSION_ID] = store().sessions.create(name, int(current_app.permanent_session_lifetime.total_seconds()))
    session.permanent = True


def end_session() -> None:
    """Log this browser out: its server-side session ends, so a copy of the cookie stops working too."""
    sid = session.get(SESSION_ID)
    if isinstance(sid, str):
        store().sessions.end(sid)
    session.clear()


def check_csrf() -> None:
    """Raise ``CsrfFailed`` (403) unless the request carries the session's valid CSRF token."""
    from flask_wtf.csrf import CSRFError, validate_csrf
    from wtforms.validators import ValidationError as CSRFInvalid

    token = request.headers.get("X-CSRFToken") or request.form.get("csrf_token")
    try:
        validate_csrf(token)
    except (CSRFInvalid, CSRFError) as exc:
        raise CsrfFailed(f"CSRF check failed ({exc}): a browser session needs the page's token as the "
                         "X-CSRFToken header or the csrf_token form field; API clients send "
                         "'Authorization: Bearer <token>'") from None


def may(right: str) -> bool:
    """Whether the caller (if any) holds ``right`` (a right of ``fsm.rights`` or a role name)."""
    return rights.may(current_user(required=False), right)


def require(right: str):
    """Decorator: the caller must be logged in (401) and hold ``right`` or that role (403)."""
    rights.role_of(right)  # an unknown right or role fails at import time, not at request time

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            rights.check(current_user(), right)
            return view(*args, **kwargs)

        return wrapper

    return decorate


def public(view):
    """Mark an API view that answers without credentials (``install`` lets it through)."""
    view.suanwang_public = True
    return view


def _authenticate_api() -> None:
    """Before an API view: authenticate first (401), so no lookup answers an anonymous caller."""
    if not request.path.startswith(API_PREFIX) or request.url_rule is None or request.method == "OPTIONS":
        return  # unknown routes answer 404 whoever asks: they reveal nothing
    view = current_app.view_functions.get(request.endpoint)
    if view is not None and not getattr(view, "suanwang_public", False):
        current_user()


def error_response(exc: SuanwangError):
    """The JSON answer to an error: its ``body()`` (details included) with its status.

    One function for the API and the pages, so a refusal reads the same on both.
    """
    response = jsonify(exc.body())
    response.status_code = exc.http_status
    if isinstance(exc, Unauthorized):
        response.headers["WWW-Authenticate"] = 'Bearer realm="suanwang"'
    if exc.details.get("retry_after_s") is not None:  # a limit that lifts by itself (429): when to try again
        response.headers["Retry-After"] = str(max(1, math.ceil(float(exc.details["retry_after_s"]))))
    return response


def install(app: Flask) -> None:
    """Make every non-public API route of ``app`` authenticate before its view runs."""
    app.before_request(_authenticate_api)
