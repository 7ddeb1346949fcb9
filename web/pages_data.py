"""The data page: list, upload (with a progress bar) and download data objects.

The page only renders; the browser talks to the data API (``/api/v1/data*``, which runs
``scheduler.service_data`` with the same role checks) with the session cookie and the page's
CSRF token, so uploads stream straight into GridFS and nothing here queries MongoDB.
"""
from __future__ import annotations

from flask import render_template

from web import bp
from web.session import login_required


@bp.get("/datasets")
@login_required()
def datasets():
    return render_template("data.html")
