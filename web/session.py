"""Page helpers over ``scheduler.auth`` (the one authentication module): who is looking, what
they may do, the login redirect, and the CSRF check of every unsafe request to the pages."""
from __future__ import annotations

from functools import wraps

from flask import abort, redirect, request, url_for

from fsm.errors import SuanwangError
from fsm import rights
from scheduler import auth
from scheduler.auth import store  # noqa: F401  (the pages' handle on the Store)
from web import bp


def user() -> dict | None:
    """The logged-in user (session or bearer token), or None."""
    return auth.current_user(required=False)


def login_required(right: str = "general"):
    """Pages: redirect to the login page; JSON endpoints (/data, /actions): 401. Without ``right``: 403."""
    rights.role_of(right)

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            who = user()
            if who is None:
                if request.path.startswith(("/data/", "/actions/")):
                    abort(401)
                return redirect(url_for("web.login", next=request.full_path))
            if not rights.may(who, right):
                abort(403)
            return view(*args, **kwargs)

        return wrapper

    return decorate


@bp.before_request
def csrf_protect() -> None:
    """Every form and action of the pages (any unsafe method, login included) needs the CSRF token."""
    if request.method not in auth.SAFE_METHODS:
        auth.check_csrf()


@bp.errorhandler(SuanwangError)
def refused(exc: SuanwangError):
    """A refusal raised for a page (a failed CSRF check, a bad token) answers as the API does."""
    return auth.error_response(exc)


#: Templates and views ask ``can(right)`` (a right of ``fsm.rights`` or a role name).
can = auth.may


def local_path(target: str, default: str) -> str:
    """``target`` when it is a path on this site (never an open redirect), else ``default``."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target and target.isprintable():
        return target
    return default
