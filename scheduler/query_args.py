"""Every list endpoint refuses query parameters it does not know (422 naming them and the known ones).

A misspelt filter (``?stauts=failed``) that is silently ignored answers the whole list, which
reads like the filter's answer; refusing it says what went wrong. The caller is authenticated
first, so an anonymous caller learns nothing about the parameters.
"""
from __future__ import annotations

from functools import wraps

from flask import request

from fsm.errors import ValidationError
from scheduler.auth import current_user


def check_known(args, known: frozenset[str] | set[str]) -> None:
    unknown = set(args) - set(known)
    if unknown:
        allowed = ", ".join(sorted(known)) or "none"
        raise ValidationError(f"unknown query parameter(s): {', '.join(sorted(unknown))} (known: {allowed})",
                              field=sorted(unknown)[0])


def query_params(*known: str):
    """Decorator of a list view: log in first (401), then refuse unknown query parameters (422)."""
    names = frozenset(known)

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            current_user()
            check_known(request.args, names)
            return view(*args, **kwargs)

        wrapper.query_params = names  # for tests and the OpenAPI document
        return wrapper

    return decorate
