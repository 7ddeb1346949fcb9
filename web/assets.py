"""Whether the pages' front-end files (from npm, ``scripts/build_web_assets.sh``) are installed.

A wheel built with them carries them (``setup.cfg`` package_data); a checkout without them
serves pages whose styles and scripts would answer 404, so the server says so when it starts.
"""
from __future__ import annotations

from pathlib import Path

VENDOR = Path(__file__).parent / "static" / "vendor"
#: Files every page loads (the stamp is written last, once all of them are in place).
REQUIRED = (".installed", "bootstrap.min.css", "bootstrap.bundle.min.js", "dataTables.min.js",
            "dataTables.bootstrap5.min.js", "dataTables.bootstrap5.min.css", "chart.umd.js",
            "dataTables.responsive.min.js", "responsive.bootstrap5.min.js", "responsive.bootstrap5.min.css",
            "swagger-ui-bundle.js", "swagger-ui.css", "cytoscape.min.js", "fonts/noto-sans-sc.css")


def missing() -> list[str]:
    """The required files that are not there (empty when the pages are complete)."""
    return [name for name in REQUIRED if not (VENDOR / name).is_file()]


def missing_note() -> str | None:
    """One clear sentence for the start-up output, or None when nothing is missing."""
    absent = missing()
    if not absent:
        return None
    return (f"warning: the web pages' assets are missing from {VENDOR} ({', '.join(absent)}): pages will "
            "load without styles and scripts. Run `bash scripts/build_web_assets.sh` in the checkout "
            "(needs npm), or install a wheel built after it")
