"""Who is calling: a bearer token (API clients) or a logged-in web session (browsers)."""
from __future__ import annotations

from functools import wraps

from flask import current_app, g, request, session

from fsm.errors import Forbidden, Unauthorized
from fsm.store.users import has_role

STORE_KEY = "suanwang_store"


def store():
    """The ``fsm.store.Store`` of this app (``app.extensions['suanwang_store']``)."""
    return current_app.extensions[STORE_KEY]


def current_user(required: bool = True) -> dict | None:
    """The caller's user document (without secrets), cached per request."""
    if "user" in g:
        return g.user
    user = None
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("the Authorization header must be 'Bearer <token>'")
        user = store().users.by_token(token.strip())
    elif session.get("user"):
        user = store().users.users.find_one({"_id": session["user"]}, {"password_hash": 0, "tokens": 0})
        if user is None:
            session.clear()
    if user is None and required:
        raise Unauthorized("log in or send 'Authorization: Bearer <token>'")
    g.user = user
    return user


def require(role: str):
    """Decorator: the caller must be logged in with ``role`` or a higher one."""

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            user = current_user()
            if not has_role(user, role):
                raise Forbidden(f"this needs the {role} role or above; {user['_id']} is {user.get('role')}")
            return view(*args, **kwargs)

        return wrapper

    return decorate
