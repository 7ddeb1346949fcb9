"""A real multi-host network in Linux network namespaces: install scripts, MongoDB, server, workers, firewall.

Namespaces made (and always removed) by the test, with veth pairs on a bridge in a switch
namespace, addresses in the test-only range 10.231.7.0/24 (nothing touches this machine's own
network or firewall; traffic never leaves it)::

    db   10.231.7.1    suanwang-mongo + suanwang-server + a worker, from install_server.sh /
                       install_worker.sh's generated units; the nftables rule set is applied here
    w1   10.231.7.11   a worker (install_worker.sh --name nsw1)
    w2   10.231.7.12   a worker (install_worker.sh --name nsw2)
    ok   10.231.7.13   inside the allowed network 10.231.7.0/28: may reach MongoDB
    out  10.231.7.200  outside it: reaches MongoDB before the firewall, not after

Each service is started the way systemd would: the unit's ExecStart, its Environment= and
EnvironmentFile= (read by ``sh``'s ``set -a; . FILE``), inside ``ip netns exec NS unshare --uts``
with the namespace's own hostname.

The module doubles as the helper that runs inside the namespaces (``python -m tests.test_netns CMD``),
since pytest's own process stays in this machine's namespace.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NET = "10.231.7"
ALLOWED = f"{NET}.0/28,203.0.113.7"  # the team's LAN (here a /28) and one public address
HOSTS = {"db": f"{NET}.1", "w1": f"{NET}.11", "w2": f"{NET}.12", "ok": f"{NET}.13", "out": f"{NET}.200"}
MONGO_PORT, HTTP_PORT = 27017, 8080


# ----------------------------------------------------------------------------- the helper (in a namespace)
def _helper(argv: list[str]) -> int:
    command, args = argv[0], argv[1:]
    if command == "connect":  # connect HOST PORT: exit 0 when a TCP connection opens
        import socket

        try:
            socket.create_connection((args[0], int(args[1])), timeout=3).close()
            return 0
        except OSError as exc:
            print(f"{type(exc).__name__}: {exc}")
            return 1
    if command == "http":  # http URL: print the status code
        import requests

        print(requests.get(args[0], timeout=3).status_code)
        return 0

    from fsm.store import Store, database
    from fsm.store.spec import validate

    store = Store(database(args[0], None))
    try:
        if command == "ping":
            store.db.command("ping")
            store.db.command("hello")
            return 0
        if command == "publish":  # publish URI N: N sleep tasks, ids on stdout
            docs = [store.tasks.document(validate({"function": "sleep", "args": [0.2]}), "netns-test")
                    for _ in range(int(args[1]))]
            ids = store.tasks.insert(docs)
            store.wakeups.signal()
            print(json.dumps(ids))
            return 0
        if command == "state":  # state URI: tasks and workers, as JSON
            tasks = {str(t["_id"]): {"status": t["status"], "workers": [a.get("worker") for a in t.get("attempts", [])]}
                     for t in store.db.tasks.find({"submitted_by": "netns-test"})}
            workers = [{"name": w["_id"], "host": w.get("host"), "addresses": w.get("addresses"),
                        "state": w.get("state"), "pid": w.get("pid")} for w in store.db.workers.find()]
            print(json.dumps({"tasks": tasks, "workers": workers}, default=str))
            return 0
    finally:
        store.close()
    raise SystemExit(f"unknown helper command {command}")


if __name__ == "__main__":
    sys.exit(_helper(sys.argv[1:]))


# ----------------------------------------------------------------------------- the lab
def _unavailable() -> str | None:
    if not sys.platform.startswith("linux"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "needs root to make network namespaces (ip netns)"
    for tool, package in (("ip", "iproute2"), ("nft", "nftables"), ("unshare", "util-linux"),
                          ("hostname", "hostname")):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install {package})"
    probe = f"swprobe{uuid.uuid4().hex[:6]}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"ip netns is unavailable here: {made.stderr.strip()}"
    try:
        for check in (["ip", "-n", probe, "link", "add", "vprobe", "type", "veth", "peer", "name", "vprobe2"],
                      ["ip", "-n", probe, "link", "add", "brprobe", "type", "bridge"],
                      ["ip", "netns", "exec", probe, "nft", "list", "ruleset"],
                      ["ip", "netns", "exec", probe, "unshare", "--uts", "hostname", "probe"]):
            result = subprocess.run(check, capture_output=True, text=True)
            if result.returncode != 0:
                return f"`{' '.join(check[:6])}` fails here: {result.stderr.strip()}"
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    try:
        from fsm.store.embedded import find_mongod

        find_mongod()
    except Exception as exc:  # noqa: BLE001
        return f"no mongod: {exc}"
    return None


def _unit(path: Path) -> dict[str, list[str]]:
    keys: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            keys.setdefault(key, []).append(value)
    return keys


def _run(argv: list[str], timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{shlex.join(argv)} -> {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


class Lab:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.tag = f"sw{uuid.uuid4().hex[:6]}"
        self.made: list[str] = []
        self.procs: list[tuple[str, subprocess.Popen, Path]] = []
        (tmp / "logs").mkdir()

    def ns(self, host: str) -> str:
        return f"{self.tag}-{host}"

    def up(self) -> None:
        switch = self.ns("switch")
        for name in [switch, *(self.ns(h) for h in HOSTS)]:
            _run(["ip", "netns", "add", name])
            self.made.append(name)
            _run(["ip", "-n", name, "link", "set", "lo", "up"])
        _run(["ip", "-n", switch, "link", "add", "br0", "type", "bridge"])
        _run(["ip", "-n", switch, "link", "set", "br0", "up"])
        for host, address in HOSTS.items():
            _run(["ip", "-n", switch, "link", "add", f"v-{host}", "type", "veth", "peer", "name", "eth0",
                  "netns", self.ns(host)])
            _run(["ip", "-n", switch, "link", "set", f"v-{host}", "master", "br0", "up"])
            _run(["ip", "-n", self.ns(host), "addr", "add", f"{address}/24", "dev", "eth0"])
            _run(["ip", "-n", self.ns(host), "link", "set", "eth0", "up"])

    def exec(self, host: str, argv: list[str], timeout: float = 60, check: bool = True):
        return _run(["ip", "netns", "exec", self.ns(host), *argv], timeout=timeout, check=check)

    def helper(self, host: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        argv = ["ip", "netns", "exec", self.ns(host), sys.executable, "-m", "tests.test_netns", *args]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=ROOT)
        if check and result.returncode != 0:
            raise AssertionError(f"helper {args} in {host}: {result.returncode}\n{result.stdout}\n{result.stderr}")
        return result

    def start_unit(self, host: str, hostname: str, unit_file: Path, name: str) -> subprocess.Popen:
        """Run a generated unit's ExecStart as systemd would, in the host's namespace, under its own hostname."""
        keys = _unit(unit_file)
        env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8"}
        if os.environ.get("PYTHONPATH"):  # a checkout put first on the path runs in the units too
            env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        for item in keys.get("Environment", []):
            env.update(pair.split("=", 1) for pair in shlex.split(item))
        env_file = keys.get("EnvironmentFile", ["/dev/null"])[0]
        script = 'hostname "$1" && set -a && . "$2" && set +a && shift 2 && exec "$@"'
        argv = ["ip", "netns", "exec", self.ns(host), "unshare", "--uts", "sh", "-c", script, "sh", hostname,
                env_file, *shlex.split(keys["ExecStart"][0])]
        log = self.tmp / "logs" / f"{name}.log"
        proc = subprocess.Popen(argv, env=env, cwd=keys.get("WorkingDirectory", [str(self.tmp)])[0],
                                stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append((name, proc, log))
        return proc

    def check_alive(self) -> None:
        for name, proc, log in self.procs:
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited with {proc.returncode}:\n{self.tail(log)}")

    @staticmethod
    def tail(log: Path, lines: int = 40) -> str:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""

    def down(self) -> None:
        # in reverse order (workers, then the server, then mongod), each as systemd stops a unit:
        # SIGTERM to the main process (KillMode=mixed; workers drain, mongod shuts down cleanly),
        # then SIGKILL to the group when it is still there after the timeout
        for _name, proc, _log in reversed(self.procs):
            if proc.poll() is not None:
                continue
            try:
                os.kill(proc.pid, signal.SIGTERM)
                proc.wait(40)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(10)
        for name in self.made:  # anything still inside (mongod has a session of its own) goes too
            pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
        for name in reversed(self.made):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        for name, proc, log in self.procs:
            print(f"----- {name} (exit {proc.returncode}) -----\n{self.tail(log, 15)}")


@pytest.fixture
def lab(tmp_path):
    reason = _unavailable()
    if reason:
        pytest.skip(reason)
    lab = Lab(tmp_path)
    try:
        lab.up()
        yield lab
    finally:
        lab.down()
    leftover = [n for n in lab.made if n in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                                           text=True).stdout]
    assert not leftover, f"namespaces left behind: {leftover}"


def _wait(what: str, predicate, timeout: float = 90, lab: Lab | None = None, interval: float = 0.3):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if lab is not None:
            lab.check_alive()
        try:
            value = predicate()
            if value:
                return value
        except (AssertionError, subprocess.SubprocessError, ValueError) as exc:
            last = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (f": {last}" if last else ""))


# ----------------------------------------------------------------------------- the test
@pytest.mark.netns
@pytest.mark.timeout(240)
def test_three_hosts_run_tasks_and_the_firewall_admits_only_the_allowed_network(lab, tmp_path):
    from tests.test_install import SERVER, WORKER, layout, no_venv

    # the database host: install_server.sh writes the units, the firewall rule set (not yet loaded)
    db_dir = tmp_path / "db"
    server_args = ["--bind-ip", HOSTS["db"], "--mongo-port", str(MONGO_PORT), "--http-host", HOSTS["db"],
                   "--http-port", str(HTTP_PORT), "--firewall-allow", ALLOWED, *layout(db_dir), *no_venv()]
    out = _run(["bash", str(SERVER), *server_args]).stdout
    assert "not loaded" in out
    # MongoDB checks who connects: the server's user for the db host, the worker's for the workers
    from tests.test_install import env_file

    uri = env_file(db_dir / "etc/server.env")["SUANWANG_MONGO_URI"]
    assert uri.startswith("mongodb://suanwang-server:") and f"@{HOSTS['db']}:{MONGO_PORT}/" in uri
    worker_uri = (db_dir / "etc/worker-mongo.uri").read_text().strip()
    assert worker_uri.startswith("mongodb://suanwang-worker:")
    assert "MongoDB URI for workers (user suanwang-worker)" in out

    lab.start_unit("db", "sw-db", db_dir / "units/suanwang-mongo.service", "mongo")
    _wait("mongod on the db host to be a writable primary",
          lambda: lab.helper("db", "ping", uri, check=False).returncode == 0, lab=lab)
    lab.start_unit("db", "sw-db", db_dir / "units/suanwang-server.service", "server")
    health = f"http://{HOSTS['db']}:{HTTP_PORT}/api/v1/healthz"
    _wait("the server's /healthz from another host",
          lambda: lab.helper("ok", "http", health, check=False).stdout.strip() == "200", lab=lab)

    # three worker hosts, each from install_worker.sh's generated unit and env file
    for host, name in (("db", "nsdb"), ("w1", "nsw1"), ("w2", "nsw2")):
        target = tmp_path / host
        _run(["bash", str(WORKER), "--mongo", worker_uri, "--name", name, "--tags", "netns", "--concurrency", "2",
              *layout(target), *no_venv()])
        lab.start_unit(host, f"sw-{host}", target / "units/suanwang-worker.service", f"worker-{host}")

    # before the firewall, the outside host reaches MongoDB (so what blocks it later is the rule set)
    assert lab.helper("out", "connect", HOSTS["db"], str(MONGO_PORT), check=False).returncode == 0

    # the rule set, loaded in the db namespace by the install script itself (a re-run: files unchanged)
    applied = lab.exec("db", ["bash", str(SERVER), *server_args, "--apply-firewall"]).stdout
    assert "applied firewall" in applied, applied
    assert not [line for line in applied.splitlines() if line.startswith(("created", "updated"))], applied
    ruleset = lab.exec("db", ["nft", "list", "table", "inet", "suanwang"]).stdout
    assert f"tcp dport {MONGO_PORT} jump mongo" in ruleset and "203.0.113.7" in ruleset
    again = lab.exec("db", ["bash", str(SERVER), *server_args, "--apply-firewall"]).stdout
    assert "unchanged firewall" in again and "done: nothing to change" in again

    blocked = lab.helper("out", "connect", HOSTS["db"], str(MONGO_PORT), check=False)
    assert blocked.returncode == 1, f"the outside host still reaches MongoDB: {blocked.stdout}"
    counter = lab.exec("db", ["nft", "list", "chain", "inet", "suanwang", "mongo"]).stdout
    assert "counter packets 0 " not in counter, counter  # dropped by our rule, not lost on the way
    assert lab.helper("ok", "connect", HOSTS["db"], str(MONGO_PORT), check=False).returncode == 0
    # the web/API port is guarded too (the default; --firewall-open-web leaves it open): the allowed
    # network reaches /healthz, the outside host does not
    assert f"tcp dport {HTTP_PORT} jump mongo" in ruleset
    assert lab.helper("ok", "http", health, check=False).stdout.strip() == "200"
    assert lab.helper("out", "connect", HOSTS["db"], str(HTTP_PORT), check=False).returncode == 1

    # tasks published on the db host run on both other hosts (through the firewall)
    def state() -> dict:
        return json.loads(lab.helper("db", "state", uri).stdout)

    _wait("three workers online", lambda: len([w for w in state()["workers"] if w["state"] == "online"]) == 3,
          lab=lab)
    published: list[str] = []
    ran_on: set[str] = set()
    for _round in range(6):
        published += json.loads(lab.helper("db", "publish", uri, "12").stdout)

        def all_done():
            tasks = state()["tasks"]
            return len(tasks) == len(published) and all(t["status"] in ("succeeded", "failed")
                                                         for t in tasks.values()) and tasks
        tasks = _wait(f"{len(published)} tasks to finish", all_done, lab=lab)
        assert all(t["status"] == "succeeded" for t in tasks.values()), tasks
        ran_on = {w for t in tasks.values() for w in t["workers"]}
        if {"nsw1", "nsw2"} <= ran_on:
            break
    assert {"nsw1", "nsw2"} <= ran_on, f"tasks ran only on {ran_on}"

    # whoami: three distinct hosts with their own addresses
    workers = {w["name"]: w for w in state()["workers"]}
    assert set(workers) == {"nsdb", "nsw1", "nsw2"}
    assert {w["host"] for w in workers.values()} == {"sw-db", "sw-w1", "sw-w2"}
    assert workers["nsdb"]["addresses"] == [HOSTS["db"]]
    assert workers["nsw1"]["addresses"] == [HOSTS["w1"]]
    assert workers["nsw2"]["addresses"] == [HOSTS["w2"]]
    lab.check_alive()

    # SIGTERM (the unit's KillSignal) stops a worker cleanly: it says so in its whoami and exits 0
    name, proc, log = next(p for p in lab.procs if p[0] == "worker-w1")
    os.kill(proc.pid, signal.SIGTERM)  # KillMode=mixed: the main process only
    assert proc.wait(60) == 0, lab.tail(log)
    assert {w["name"]: w for w in state()["workers"]}["nsw1"]["state"] == "offline"
