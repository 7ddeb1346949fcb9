"""Who is calling: a bearer token (API clients) or a logged-in web session (browsers).

``current_user()`` answers the caller's users document (without secrets) or raises
``Unauthorized``; ``require(role)`` guards a view. Roles rank admin > super > business >
general (``fsm.store.users.has_role``). The web blueprint logs people in and out; the signed
Flask session cookie holds only the user's name (``session["user"]``).
"""
from __future__ import annotations

from functools import wraps

from flask import current_app, g, request, session

from fsm.errors import Forbidden, Unauthorized
from fsm.store import Store
from fsm.store.users import RANK, has_role

#: ``app.extensions`` key of the app's ``fsm.store.Store``.
STORE_KEY = "suanwang_store"
#: The session key the web login sets to the user's name.
SESSION_USER = "user"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Fields of a users document never shown or kept per request.
SECRETS = {"password_hash": 0, "tokens": 0}


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

    A bearer token wins over a session cookie. With ``required`` (the default) a caller
    without valid credentials gets ``Unauthorized`` (401); otherwise None.
    """
    if "suanwang_user" in g:
        user = g.suanwang_user
    else:
        user = _lookup()
        g.suanwang_user = user
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
    if request.method not in SAFE_METHODS:
        _check_csrf()  # a browser session changes nothing through the API without the page's token
    user = store().users.find(name)
    if user is None:  # the user was removed since logging in
        session.pop(SESSION_USER, None)
    return user


def _check_csrf() -> None:
    from flask_wtf.csrf import CSRFError, validate_csrf
    from wtforms.validators import ValidationError as CSRFInvalid

    try:
        validate_csrf(request.headers.get("X-CSRFToken"))
    except (CSRFInvalid, CSRFError) as exc:
        raise Forbidden(f"a browser session needs the page's X-CSRFToken header for this request ({exc}); "
                        "API clients send 'Authorization: Bearer <token>'") from None


def require(role: str):
    """Decorator: the caller must be logged in with ``role`` or a higher one (401, else 403)."""
    if role not in RANK:
        raise ValueError(f"unknown role {role!r}")

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            check_role(current_user(), role)
            return view(*args, **kwargs)

        return wrapper

    return decorate


def check_role(user: dict, role: str, action: str | None = None) -> None:
    """Raise ``Forbidden`` unless ``user`` has ``role`` or above."""
    if not has_role(user, role):
        what = action or "this"
        raise Forbidden(f"{what} needs the {role} role or above; {user['_id']} is {user.get('role')}")

