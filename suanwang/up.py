"""``suanwang up``: the whole system on one machine, supervised until Ctrl-C.

The embedded mongod runs under this process, with access control (``fsm.store.access``):
the server connects as ``suanwang-server``, the local worker and the URI printed for other
machines as ``suanwang-worker``; the passwords are in ``DATA_DIR/db/credentials.json``
(mode 0600). A data directory made before access control is upgraded on its first start
(its users are created then). The server and one worker run as child processes
(``python -m suanwang server|worker``), restarted if they die, stopped with SIGTERM (the
worker drains) when this process is asked to stop.
"""
from __future__ import annotations

import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from fsm.errors import SuanwangError
from fsm.store.embedded import EmbeddedMongo, EmbeddedMongoError, free_port, stop_with_parent

MONGO_DEFAULT_PORT = 27017


def _port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def mongo_port(data_dir: Path) -> int:
    """A stable port per data directory, so workers elsewhere keep a working URI across restarts."""
    remembered = data_dir / "mongo.port"
    if remembered.exists():
        return int(remembered.read_text().strip())
    port = MONGO_DEFAULT_PORT if _port_free(MONGO_DEFAULT_PORT) else free_port()
    remembered.write_text(str(port))
    return port


def admin_token(data_dir: Path) -> str:
    path = data_dir / "admin.token"
    if path.exists() and path.read_text().strip():
        return path.read_text().strip()
    token = secrets.token_urlsafe(32)
    path.write_text(token + "\n")
    path.chmod(0o600)
    return token


class Child:
    """One supervised child process."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path):
        self.name, self.argv, self.env, self.log_path = name, argv, env, log_path
        self.proc: subprocess.Popen | None = None
        self.restarts = 0

    def start(self) -> None:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True, preexec_fn=stop_with_parent)
        log.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float) -> None:
        if not self.alive():
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def wait_healthy(url: str, child: Child, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            raise SuanwangError(f"the server exited during start-up; see {child.log_path}")
        try:
            with urllib.request.urlopen(f"{url}/api/v1/healthz", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SuanwangError(f"the server did not answer {url}/api/v1/healthz within {timeout:.0f}s; see {child.log_path}")


def client_url(host: str, port: int) -> str:
    """The URL other commands on this machine use (a wildcard listen address is reached on loopback)."""
    shown = "127.0.0.1" if host in ("", "0.0.0.0", "::") else f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def other_shell_lines(data_dir: Path, url: str) -> list[str]:
    """What another shell exports to use this `up` (the CLI also finds both in DATA_DIR by itself)."""
    return [f"export SUANWANG_DATA_DIR={shlex.quote(str(data_dir))}",
            f"export SUANWANG_SERVER={url}",
            f"export SUANWANG_TOKEN=\"$(cat {shlex.quote(str(data_dir / 'admin.token'))})\""]


def run_up(data_dir: Path, port: int, mongo_uri: str | None, host: str, bind_ip: str, concurrency: int | None,
           worker_name: str | None, echo=print, repo_roots=()) -> int:
    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    logs = data_dir / "logs"
    logs.mkdir(exist_ok=True)
    token = admin_token(data_dir)

    mongo = None
    worker_uri = mongo_uri
    if mongo_uri is None:
        mongo = EmbeddedMongo(data_dir / "db", port=mongo_port(data_dir), bind_ip=bind_ip, auth=True)
        echo(f"starting the embedded MongoDB in {mongo.data_dir} (access control on) ...")
        mongo_uri = mongo.start()
        worker_uri = mongo.worker_uri
    stopping = False

    def ask_stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, ask_stop)
    signal.signal(signal.SIGTERM, ask_stop)

    env = {**os.environ, "SUANWANG_MONGO_URI": mongo_uri, "SUANWANG_ADMIN_TOKEN": token,
           "PYTHONUNBUFFERED": "1"}
    py = [sys.executable, "-m", "suanwang"]
    roots = [arg for root in repo_roots for arg in ("--repo-root", str(Path(root).expanduser().resolve()))]
    server = Child("server", py + ["server", "--host", host, "--port", str(port), *roots], env,
                   logs / "server.log")
    worker_argv = py + ["worker"] + (["--concurrency", str(concurrency)] if concurrency else []) + \
        (["--name", worker_name] if worker_name else [])
    worker = Child("worker", worker_argv, {**env, "SUANWANG_MONGO_URI": worker_uri}, logs / "worker.log")
    children = [server, worker]
    try:
        server.start()
        url = client_url(host, port)
        wait_healthy(url, server)
        (data_dir / "server.url").write_text(url + "\n")
        worker.start()
        shown_host = socket.gethostname() if bind_ip not in ("127.0.0.1", "localhost") else "127.0.0.1"
        from web.assets import missing_note

        echo("")
        if missing_note():
            echo(missing_note())
        echo("Suanwang is up.")
        echo(f"  web pages and API : {url}/  (API under {url}/api/v1)")
        echo(f"  admin token       : {token}")
        echo(f"                      (saved in {data_dir / 'admin.token'})")
        shown_uri = worker_uri.replace('127.0.0.1', shown_host)
        echo(f"  MongoDB URI       : {shown_uri}")
        if mongo is not None:
            echo(f"                      (user suanwang-worker; all passwords in {mongo.credentials_path})")
        echo(f"  add a worker      : suanwang worker --mongo '{shown_uri}'")
        echo(f"  logs              : {logs}")
        echo("In another shell (`suanwang` finds this server by itself when it uses the same data directory):")
        for line in other_shell_lines(data_dir, url):
            echo(f"  {line}")
        echo("Press Ctrl-C to stop.")
        mongo_restarts = 0
        while not stopping:
            if mongo is not None and not mongo.alive():
                # killed or crashed: its journal has every acknowledged write; the server and the
                # worker wait for it (and retry) meanwhile
                mongo_restarts += 1
                echo(f"MongoDB exited; restarting it (see {mongo.data_dir / 'mongod.log'})")
                time.sleep(min(5, mongo_restarts))
                try:
                    mongo.start()
                    echo("MongoDB is back")
                except EmbeddedMongoError as exc:
                    echo(f"MongoDB did not start: {exc}")
                continue
            for child in children:
                if not child.alive() and not stopping:
                    child.restarts += 1
                    echo(f"{child.name} exited (code {child.proc.returncode}); restarting (see {child.log_path})")
                    time.sleep(min(5, child.restarts))
                    child.start()
            time.sleep(0.3)
        echo("stopping: draining the worker ...")
        return 0
    finally:
        worker.stop(timeout=35)
        server.stop(timeout=15)
        if mongo is not None:
            mongo.stop()
        echo("stopped.")
