"""Template helpers: JSON as people read it, and the actions a task's status allows."""
from __future__ import annotations

import json

from fsm.states import actions_allowed
from web import bp


@bp.app_template_filter("pretty_json")
def pretty_json(value, indent: int | None = 2) -> str:
    """Indented JSON with characters as they are (no ``\\u003c`` escapes); Jinja's autoescape makes it
    safe HTML, so markup in arguments shows as text."""
    return json.dumps(value, indent=indent, ensure_ascii=False, default=str)


@bp.app_template_global("task_actions")
def task_actions(status: str) -> list[str]:
    return actions_allowed(status)
