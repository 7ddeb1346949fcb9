"""`suanwang up`: one command starts MongoDB, the server and a worker; Ctrl-C stops them all."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import requests

from fsm.store.embedded import free_port
from tests.procs import ROOT, wait_for

pytestmark = pytest.mark.slow


def test_up_serves_runs_tasks_and_stops_cleanly(tmp_path):
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    env.pop("SUANWANG_MONGO_URI", None)
    log = tmp_path / "up.log"
    proc = subprocess.Popen([sys.executable, "-m", "suanwang", "up", "--data-dir", str(tmp_path / "data"),
                             "--port", str(port), "--concurrency", "2"], env=env, stdout=open(log, "wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: "Press Ctrl-C" in log.read_text() or proc.poll() is not None, 120, what="up to start")
        text = log.read_text()
        assert proc.poll() is None, text
        token = (tmp_path / "data" / "admin.token").read_text().strip()
        assert token in text and f"http://127.0.0.1:{port}/" in text
        mongo_uri = re.search(r"MongoDB URI\s*:\s*(\S+)", text).group(1)
        assert mongo_uri.startswith("mongodb://") and "replicaSet=" in mongo_uri
        # a task published with the printed token runs on the local worker
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {token}"
        resp = http.post(f"http://127.0.0.1:{port}/api/v1/tasks", json={"function": "echo", "args": ["hi"]})
        assert resp.status_code == 201, resp.text
        task_id = resp.json()["id"]
        wait_for(lambda: http.get(f"http://127.0.0.1:{port}/api/v1/tasks/{task_id}").json()["status"]
                 == "succeeded", 60, what="the task")
        assert http.get(f"http://127.0.0.1:{port}/api/v1/tasks/{task_id}").json()["result"] == "hi"
        # another shell with the printed export lines needs no flag at all
        exports = re.findall(r"^\s*(export SUANWANG_\w+=.*)$", text, re.M)
        assert [e.split("=")[0] for e in exports] == ["export SUANWANG_DATA_DIR", "export SUANWANG_SERVER",
                                                      "export SUANWANG_TOKEN"], text
        script = "\n".join(exports + [f"{sys.executable} -m suanwang submit echo 42 --wait"])
        shell_env = {k: v for k, v in env.items() if not k.startswith("SUANWANG_")}
        out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=shell_env, timeout=60)
        assert out.returncode == 0 and json.loads(out.stdout) == 42, out.stderr
        # and the data directory alone (flag) is enough too: up left the server URL there
        out = subprocess.run([sys.executable, "-m", "suanwang", "submit", "echo", "43", "--wait", "--data-dir",
                              str(tmp_path / "data")], capture_output=True, text=True, env=shell_env, timeout=60)
        assert out.returncode == 0 and json.loads(out.stdout) == 43, out.stderr
        # killing MongoDB and the worker (-9) loses nothing: up starts both again, and a task
        # published while the database comes back runs
        import psutil

        def child(marker):
            for p in psutil.Process(proc.pid).children(recursive=True):
                try:
                    if marker in " ".join(p.cmdline()):
                        return p
                except psutil.Error:  # a zombie or one just gone
                    pass
            raise AssertionError(f"no process of up with {marker!r}")

        child("--dbpath").kill()
        child("suanwang worker").kill()
        wait_for(lambda: "MongoDB is back" in log.read_text(), 90, what="MongoDB to be restarted")
        resp = wait_for(lambda: http.post(f"http://127.0.0.1:{port}/api/v1/tasks",
                                          json={"function": "echo", "args": ["again"]}), 60, what="a publish")
        assert resp.status_code == 201, resp.text
        again = resp.json()["id"]
        wait_for(lambda: http.get(f"http://127.0.0.1:{port}/api/v1/tasks/{again}").json()["status"]
                 == "succeeded", 90, what="the task after the restarts")
        assert http.get(f"http://127.0.0.1:{port}/api/v1/tasks/{task_id}").json()["result"] == "hi"
        assert "worker exited (code -9); restarting" in log.read_text()
    finally:
        # Ctrl-C
        os.killpg(proc.pid, signal.SIGINT)
        try:
            code = proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    assert code == 0, log.read_text()[-3000:]
    assert "stopped." in log.read_text()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/api/v1/healthz", timeout=2)
