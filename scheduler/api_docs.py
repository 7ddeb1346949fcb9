"""``GET /api/v1/docs``: the OpenAPI document (``/api/v1/openapi.json``) rendered by Swagger UI.

Swagger UI comes from npm like the pages' other libraries (``scripts/build_web_assets.sh`` copies
``swagger-ui-bundle.js`` and ``swagger-ui.css`` into the web blueprint's ``vendor/``). Like the
document itself, the page needs no token; "Try it out" asks for one (``Authorize``).
"""
from __future__ import annotations

from flask import Blueprint, render_template_string, url_for

from scheduler.auth import public

bp = Blueprint("api_docs", __name__)

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Suanwang API</title>
<link rel="stylesheet" href="{{ css }}">
<style>body { margin: 0 } .topbar-note { font: 14px sans-serif; padding: .5rem 1rem; background: #212529; color: #fff }
.topbar-note a { color: #9ec5fe }</style></head>
<body>
<div class="topbar-note">Suanwang API · <a href="{{ spec }}">openapi.json</a> · <a href="{{ portal }}">web pages</a></div>
<div id="swagger-ui"><noscript>This page needs JavaScript; the document itself is at {{ spec }}.</noscript></div>
<script src="{{ js }}"></script>
<script>
  if (window.SwaggerUIBundle) {
    window.ui = SwaggerUIBundle({url: {{ spec|tojson }}, dom_id: '#swagger-ui', deepLinking: true, persistAuthorization: true});
  } else {
    document.getElementById('swagger-ui').textContent =
      'Swagger UI is not installed on this server (run scripts/build_web_assets.sh); the document is at ' + {{ spec|tojson }};
  }
</script>
</body></html>"""


@bp.get("/docs")
@public
def docs():
    asset = lambda name: url_for("web.static", filename=f"vendor/{name}")  # noqa: E731
    return render_template_string(PAGE, css=asset("swagger-ui.css"), js=asset("swagger-ui-bundle.js"),
                                  spec=url_for("api.openapi"), portal=url_for("web.portal"))
