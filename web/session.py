"""Who is looking at a page: the session's user, their role, and the CSRF check."""
from __future__ import annotations

from functools import wraps

from flask import abort, current_app, g, redirect, request, session, url_for
from flask_wtf.csrf import CSRFError, validate_csrf
from wtforms.validators import ValidationError as CSRFInvalid

from fsm.store import Store
from fsm.store.users import has_role
from web import STORE_KEY


def store() -> Store:
    return current_app.extensions[STORE_KEY]


def user() -> dict | None:
    if "web_user" not in g:
        name = session.get("user")
        g.web_user = store().users.users.find_one({"_id": name}, {"password_hash": 0, "tokens": 0}) if name else None
        if name and g.web_user is None:
            session.clear()
    return g.web_user


def login_required(role: str = "general"):
    """Pages: redirect to the login page; JSON endpoints: 401/403."""

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            who = user()
            if who is None:
                if request.path.startswith(("/data/", "/actions/")):
                    abort(401)
                return redirect(url_for("web.login", next=request.full_path))
            if not has_role(who, role):
                abort(403)
            return view(*args, **kwargs)

        return wrapper

    return decorate


def check_csrf() -> None:
    """Every state-changing request of the pages must carry the session's CSRF token."""
    token = request.form.get("csrf_token") or request.headers.get("X-CSRFToken")
    try:
        validate_csrf(token)
    except (CSRFInvalid, CSRFError) as exc:
        abort(400, description=f"CSRF check failed: {exc}")


def can(role: str) -> bool:
    who = user()
    return bool(who) and has_role(who, role)
