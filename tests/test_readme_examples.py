"""The README's command-line examples, run as written against a live `suanwang up`.

Every line of a ```bash block that starts with ``suanwang``, ``curl`` or ``TOKEN=`` runs, in
order, in a shell whose HOME is a fresh directory (so ``~/.suanwang`` is up's default data
directory and nothing else points the CLI at the server), plus the inline ``suanwang user add``
of the web pages section. The only substitutions: the port (8080 may be taken), ``/srv/git``
(a temporary directory holding a real git repository ``ml-functions``), and ``<id>`` (the id
the previous command printed). Every command must exit 0.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import pytest

from fsm.store.embedded import free_port
from tests.procs import ROOT, wait_for
from tests.test_registry import make_repo

pytestmark = pytest.mark.slow
RUNNABLE = re.compile(r"^(suanwang |curl |TOKEN=)")


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            if RUNNABLE.match(line):
                commands.append(line)
    inline = re.search(r"`(suanwang user add NAME --role super --password -)`", text)
    assert inline, "the web pages section names its user add command"
    commands.append(inline.group(1).replace("NAME", "ann"))
    return commands


def test_the_readme_names_its_examples():
    commands = readme_commands()
    assert any(c.startswith("suanwang submit echo") for c in commands)
    assert any(c.startswith("suanwang repo add") for c in commands)
    assert any(c.startswith("suanwang function register") for c in commands)
    assert any(c.startswith("curl ") for c in commands)


def test_readme_examples_run_as_written(tmp_path):
    # Given a machine where `suanwang up` runs with the default data directory,
    home, port, srv = tmp_path / "home", free_port(), tmp_path / "srv-git"
    home.mkdir()
    make_repo(srv / "ml-functions", {"mlfuncs/__init__.py": "", "mlfuncs/lgbm.py":
                                     "def train():\n    return {'model': 'trained'}\n"}, tag="v1")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUANWANG_")}
    env.update(HOME=str(home), PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1",
               PATH=f"{os.path.dirname(sys.executable)}:{env['PATH']}")
    log = tmp_path / "up.log"
    up = subprocess.Popen([sys.executable, "-m", "suanwang", "up", "--port", str(port), "--repo-root", str(srv)],
                          env=env, cwd=ROOT, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                          start_new_session=True)
    try:
        wait_for(lambda: "Press Ctrl-C" in log.read_text() or up.poll() is not None, 120, what="up")
        assert up.poll() is None, log.read_text()
        # when every example runs in order (in a shell that knows nothing but HOME),
        prelude, last_id = [], None
        for command in readme_commands():
            line = command.replace("8080", str(port)).replace("/srv/git", str(srv))
            if "<id>" in line:
                assert last_id, f"no id printed before {command}"
                line = line.replace("<id>", last_id)
            if line.startswith("TOKEN="):
                prelude.append(line)
                continue
            stdin = "a-good-password\na-good-password\n" if "--password -" in line else None
            out = subprocess.run(["bash", "-c", "\n".join(["set -euo pipefail", *prelude, line])], env=env,
                                 cwd=ROOT, input=stdin, capture_output=True, text=True, timeout=120)
            # then each succeeds,
            assert out.returncode == 0, f"{command}\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}"
            if line.startswith("curl"):
                assert not isinstance(json.loads(out.stdout).get("error"), dict), f"{command}: {out.stdout}"
            last_id = _printed_id(out.stdout) or last_id
            if "lgbm_train" in line and "--wait" in line:  # and the registered function really ran
                assert json.loads(out.stdout) == {"model": "trained"}
            if line.startswith("suanwang submit echo") and "--wait" in line:
                assert json.loads(out.stdout) == {"hello": "world"}
    finally:
        os.killpg(up.pid, signal.SIGINT)
        try:
            up.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
            raise


def _printed_id(stdout: str) -> str | None:
    try:
        value = json.loads(stdout)
    except ValueError:
        return None
    return value.get("id") if isinstance(value, dict) else None


@pytest.mark.parametrize("row,value", [
    ("request body", "16 MiB"), ("JSON nesting", "64 levels"), ("`args` + `kwargs`", "1 MiB"),
    ("tasks per bulk request", "10,000"), ("`priority`", "1,000,000"), ("`redundancy`", "16"),
    ("`max_retries`", "100"), ("`timeout_s`", "7 days"), ("page size", "500"), ("result", "8 MiB")])
def test_the_readme_limits_are_the_code_limits(row, value):
    from fsm.store import spec
    from scheduler import config, request_guard, service
    from worker import executor

    code = {"request body": f"{config.DEFAULT_MAX_BODY_BYTES >> 20} MiB",
            "JSON nesting": f"{request_guard.MAX_JSON_DEPTH} levels",
            "`args` + `kwargs`": f"{spec.MAX_PAYLOAD_BYTES >> 20} MiB", "tasks per bulk request": f"{service.MAX_BULK:,}",
            "`priority`": f"{spec.PRIORITY_RANGE[1]:,}", "`redundancy`": str(spec.MAX_REDUNDANCY),
            "`max_retries`": str(spec.MAX_RETRIES), "`timeout_s`": f"{spec.MAX_TIMEOUT_S // 86400} days",
            "page size": str(service.MAX_PAGE), "result": f"{executor.MAX_RESULT_BYTES >> 20} MiB"}
    assert code[row] == value
    table = (ROOT / "README.md").read_text().split("### Limits", 1)[1].split("\n\n", 2)[1]
    line = next(x for x in table.splitlines() if x.startswith(f"| {row}") or x.startswith(f"| a task's {row}"))
    assert value in line, line
    assert "100" in next(x for x in table.splitlines() if "`priority`" in x)  # the business cap
    assert config.DEFAULT_PRIORITY_CAPS["business"] == 100
