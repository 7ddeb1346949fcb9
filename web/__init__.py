"""The web pages: a Flask blueprint mounted by the server (``scheduler.app.create_app``)."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("web", __name__, template_folder="templates", static_folder="static", static_url_path="/static")


@bp.get("/")
def index():
    return "Suanwang web pages are not built yet. The API is under /api/v1."
