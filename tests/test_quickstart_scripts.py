"""The quickstart scripts as a new user runs them: --help installs nothing, installs are quiet,
and a wheel built from the project carries the web pages' assets."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from tests.procs import ROOT, wait_for


@pytest.mark.parametrize("script,expected", [("up.sh", "--data-dir DIR"), ("test.sh", "-m 'not slow'")])
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_prints_help_and_installs_nothing(tmp_path, script, expected, flag):
    venv = tmp_path / "venv"
    # PYTHON=false: any attempt to install would fail loudly
    env = {**os.environ, "SUANWANG_VENV": str(venv), "PYTHON": "false", "SUANWANG_INSTALL_LOG_DIR": str(tmp_path)}
    out = subprocess.run(["bash", str(ROOT / "scripts" / script), flag], capture_output=True, text=True, env=env,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Usage: bash scripts/" + script) and expected in out.stdout
    assert not venv.exists() and out.stderr == ""


@pytest.mark.slow
def test_the_install_is_quiet(tmp_path):
    # Given a fresh virtualenv path, when the quickstart's install step runs,
    script = (f"source {ROOT}/scripts/bootstrap.sh; VENV={tmp_path}/venv; LOG_DIR={tmp_path}/logs; "
              "bootstrap_venv embedded")
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr
    # then it prints one progress line per step and nothing of setuptools or pip,
    lines = (out.stdout + out.stderr).splitlines()
    assert all(line.startswith("==> ") for line in lines), lines
    assert 1 <= len(lines) <= 4, lines
    # and the project works from the new virtualenv.
    assert subprocess.run([f"{tmp_path}/venv/bin/suanwang", "--help"], capture_output=True, timeout=60).returncode == 0


def copy_checkout(dest, with_assets: bool):
    """The tracked files (and optionally the built assets) of this checkout, in ``dest``."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    if with_assets:
        shutil.copytree(ROOT / "web" / "static" / "vendor", dest / "web" / "static" / "vendor")


@pytest.mark.slow
def test_a_wheel_carries_the_web_assets(tmp_path):
    src = tmp_path / "src"
    copy_checkout(src, with_assets=True)
    out = subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path / "dist"), str(src)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "is absent from the `packages` configuration" not in out.stdout + out.stderr
    wheel = next((tmp_path / "dist").glob("suanwang-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    vendor = {n.removeprefix("web/static/vendor/") for n in names if n.startswith("web/static/vendor/")}
    from web.assets import REQUIRED

    assert set(REQUIRED) <= vendor, set(REQUIRED) - vendor
    assert "web/templates/base.html" in names


def test_the_server_says_at_start_when_assets_are_missing(tmp_path, db_uri):
    src = tmp_path / "src"
    copy_checkout(src, with_assets=False)
    env = {**os.environ, "PYTHONPATH": str(src), "PYTHONUNBUFFERED": "1"}
    log = tmp_path / "server.log"
    proc = subprocess.Popen([sys.executable, "-m", "suanwang", "server", "--mongo", db_uri, "--port", "0",
                             "--no-scheduler"], cwd=src, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "serving on" in log.read_text() or proc.poll() is not None, 60, what="the server")
        text = log.read_text()
        assert "assets are missing" in text and "build_web_assets.sh" in text, text
    finally:
        proc.terminate()
        proc.wait(30)
