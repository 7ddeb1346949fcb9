"""HTTP routes of the function registry (owned by the registry; mounted under /api/v1)."""
from __future__ import annotations

from flask import Blueprint, jsonify

from registry.builtins import BUILTIN_VERSION, BUILTINS

bp = Blueprint("api_functions", __name__)


@bp.get("/functions")
def list_functions():
    items = [{"code": name, "name": name, "version": BUILTIN_VERSION, "description": (f.__doc__ or "").strip()}
             for name, f in sorted(BUILTINS.items())]
    return jsonify({"items": items, "total": len(items)})
