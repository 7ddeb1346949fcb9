"""Real ``suanwang`` processes for end-to-end and chaos tests: start, wait, signal, stop."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from fsm.store.embedded import free_port

ROOT = Path(__file__).resolve().parent.parent


def wait_for(predicate, timeout: float = 60, interval: float = 0.05, what: str = "condition"):
    """Poll until ``predicate()`` is truthy; return its value or fail naming what was awaited."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - keep polling through transient errors
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (f" (last error: {last_error})"
                                                                              if last_error else ""))


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (a dead child not yet reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class Proc:
    """One child process with its log file."""

    def __init__(self, argv: list[str], log: Path, env: dict | None = None):
        self.argv, self.log = argv, log
        self.env = {**os.environ, "PYTHONPATH": f"{ROOT}:{os.environ.get('PYTHONPATH', '')}",
                    "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc = subprocess.Popen(argv, env=self.env, stdout=open(log, "ab"), stderr=subprocess.STDOUT,
                                     start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL the process and its children (a killed worker's executor children die too)."""
        if self.alive():
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(10)

    def stop(self, timeout: float = 30) -> int:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def tail(self, n: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""


class Cluster:
    """Servers and workers over one MongoDB database, cleaned up by ``close()``."""

    def __init__(self, uri: str, workdir: Path):
        self.uri = uri
        self.workdir = workdir
        self.token = "test-admin-" + os.urandom(6).hex()
        self.procs: list[Proc] = []
        self.server: Proc | None = None
        self.port: int | None = None

    def cli(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "suanwang", *args]

    def start_server(self, port: int | None = None) -> Proc:
        self.port = port or self.port or free_port()
        proc = Proc(self.cli("server", "--mongo", self.uri, "--port", str(self.port)),
                    self.workdir / f"server-{len(self.procs)}.log", {"SUANWANG_ADMIN_TOKEN": self.token})
        self.procs.append(proc)
        self.server = proc
        wait_for(lambda: requests.get(f"{self.url}/healthz", timeout=1).ok or not proc.alive(), 60,
                 what="the server's healthz")
        assert proc.alive(), proc.tail()
        return proc

    def start_worker(self, name: str, concurrency: int = 2, heartbeat: float = 0.5, extra: tuple = (),
                     env: dict | None = None, wait: bool = True) -> Proc:
        proc = Proc(self.cli("worker", "--mongo", self.uri, "--name", name, "--concurrency", str(concurrency),
                             "--heartbeat", str(heartbeat), "--cache-dir", str(self.workdir / f"cache-{name}"),
                             *extra),
                    self.workdir / f"worker-{name}.log", {"CHAOS_WORKER": name, **(env or {})})
        self.procs.append(proc)
        if wait:
            from fsm.store import database

            db = database(self.uri)
            try:
                wait_for(lambda: db.workers.count_documents({"_id": name, "state": "online", "pid": proc.pid}) == 1
                         or not proc.alive(), 60, what=f"worker {name} online")
            finally:
                db.client.close()
            assert proc.alive(), proc.tail()
        return proc

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1"

    def http(self, token: str | None = None) -> requests.Session:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token or self.token}"
        return session

    def publish(self, bodies):
        """Publish one task (returns its id) or a list (returns their ids) over HTTP."""
        resp = self.http().post(f"{self.url}/tasks", json=bodies, timeout=60)
        assert resp.status_code == 201, resp.text
        body = resp.json()
        return [item["id"] for item in body["items"]] if isinstance(bodies, list) else body["id"]

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.alive():
                proc.kill()
