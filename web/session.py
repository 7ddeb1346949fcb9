"""Who is looking at a page: the session's user, their role, and the CSRF check."""
from __future__ import annotations

from functools import wraps

from flask import abort, current_app, g, redirect, request, session, url_for
from flask_wtf.csrf import CSRFError, validate_csrf
from wtforms.validators import ValidationError as CSRFInvalid

from fsm.store import Store
from fsm.store.users import has_role
from scheduler.auth import STORE_KEY
from web import bp

#: Methods that change nothing; every other request to the pages must carry the CSRF token.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def store() -> Store:
    return current_app.extensions[STORE_KEY]


def user() -> dict | None:
    if "web_user" not in g:
        name = session.get("user")
        g.web_user = store().users.find(name) if name else None
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


@bp.before_request
def csrf_protect() -> None:
    """Every form and action of the blueprint (any unsafe method) needs the session's CSRF token.

    The check is Flask-WTF's (``validate_csrf``): a token signed with the app's secret key and
    bound to the session, sent as the ``csrf_token`` form field or the ``X-CSRFToken`` header.
    It runs for the pages' routes only; the bearer-token API under /api/v1 is not affected.
    """
    if request.method not in SAFE_METHODS:
        check_csrf()


def check_csrf() -> None:
    """Refuse (400) a request without the session's valid CSRF token."""
    token = request.form.get("csrf_token") or request.headers.get("X-CSRFToken")
    try:
        validate_csrf(token)
    except (CSRFInvalid, CSRFError) as exc:
        abort(400, description=f"CSRF check failed: {exc}")


def can(role: str) -> bool:
    who = user()
    return bool(who) and has_role(who, role)


def local_path(target: str, default: str) -> str:
    """``target`` when it is a path on this site (never an open redirect), else ``default``."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target and target.isprintable():
        return target
    return default
