"""A worker cut off by the network fences itself: its attempt is dead before its lease ends.

Network namespaces as in tests/test_netns.py: ``db`` (10.231.7.1) runs mongod and the server
(housekeeping), ``w1`` runs worker ``cut`` and ``w2`` runs worker ``spare``. While ``cut``
runs a long task with a 3 s lease, nftables in ``w1`` drops every packet on its network
interface (no reset: its MongoDB calls hang until their timeouts). Measured (``-s``): when
``cut`` noticed, when its attempt process last ran against its lease end on the server, the
overlap with the attempt on ``spare`` (0), and that nothing is lost.

    sudo PYTHONPATH=$PWD python -m pytest -m netns -s tests/test_fence_netns.py
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.test_netns import HOSTS, ROOT, Lab, _unavailable, _wait

PORT = 27017
URI = f"mongodb://{HOSTS['db']}:{PORT}/fence?replicaSet=suanwang"
HEARTBEAT_S = 1.0  # lease: 3 s
CUT_RULES = """table inet cut {
    chain input { type filter hook input priority -10; iifname "eth0" drop; }
    chain output { type filter hook output priority -10; oifname "eth0" drop; }
}
"""


def _helper(argv: list[str]) -> int:
    command, args = argv[0], argv[1:]
    if command == "mongod":  # mongod DIR: run until SIGTERM
        from fsm.store.embedded import EmbeddedMongo

        mongo = EmbeddedMongo(args[0], port=PORT, bind_ip=HOSTS["db"])
        mongo.start()
        signal.signal(signal.SIGTERM, lambda *_: (mongo.stop(), sys.exit(0)))
        while True:
            time.sleep(1)
    from fsm.store import Store, database
    from fsm.store.spec import validate

    if command == "ping":
        return 0 if database(URI, serverSelectionTimeoutMS=2000).command("ping") else 1

    store = Store(database(URI))
    try:
        if command == "publish":  # publish FOLDER SECONDS
            spec = validate({"function": "tests.chaos_functions:stamped_sleep", "args": [args[0], float(args[1])],
                             "retry_backoff_s": 0})
            print(store.tasks.insert([store.tasks.document(spec, "fence-test")])[0])
            store.wakeups.signal()
            return 0
        if command == "task":  # task ID
            print(json.dumps(store.tasks.get(args[0]), default=str))
            return 0
    finally:
        store.close()
    raise SystemExit(f"unknown helper command {command}")


if __name__ == "__main__":
    sys.exit(_helper(sys.argv[1:]))


class FenceLab(Lab):
    def helper(self, host: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        argv = ["ip", "netns", "exec", self.ns(host), sys.executable, "-m", "tests.test_fence_netns", *args]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=ROOT,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        if check and result.returncode != 0:
            raise AssertionError(f"helper {args} in {host}: {result.returncode}\n{result.stdout}\n{result.stderr}")
        return result

    def start(self, host: str, name: str, argv: list[str], env: dict | None = None) -> subprocess.Popen:
        log = self.tmp / "logs" / f"{name}.log"
        proc = subprocess.Popen(["ip", "netns", "exec", self.ns(host), *argv], cwd=ROOT, stdout=open(log, "ab"),
                                stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **(env or {})})
        self.procs.append((name, proc, log))
        return proc

    def worker(self, host: str, name: str) -> subprocess.Popen:
        return self.start(host, name, [sys.executable, "-m", "suanwang", "worker", "--mongo", URI, "--name", name,
                                       "--concurrency", "1", "--heartbeat", str(HEARTBEAT_S),
                                       "--cache-dir", str(self.tmp / f"cache-{name}")], {"CHAOS_WORKER": name})

    def task(self, task_id: str) -> dict:
        return json.loads(self.helper("db", "task", task_id).stdout)


@pytest.fixture
def lab(tmp_path):
    reason = _unavailable()
    if reason:
        pytest.skip(reason)
    lab = FenceLab(tmp_path)
    try:
        lab.up()
        yield lab
    finally:
        lab.down()


def stamps(folder: Path, worker: str) -> list[float]:
    return [float(x) for f in folder.glob(f"{worker}-*") for x in f.read_text().split()]


def logged_at(log: Path, pattern: str) -> float | None:
    for line in log.read_text(errors="replace").splitlines():
        if re.search(pattern, line):
            return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
    return None


@pytest.mark.netns
@pytest.mark.timeout(240)
def test_a_cut_off_worker_kills_its_attempt_before_its_lease_ends(lab, tmp_path):
    folder = tmp_path / "stamps"
    folder.mkdir()
    lab.start("db", "mongo", [sys.executable, "-m", "tests.test_fence_netns", "mongod", str(tmp_path / "db")])
    _wait("mongod", lambda: lab.helper("db", "ping", check=False).returncode == 0, lab=lab, timeout=60)
    lab.start("db", "server", [sys.executable, "-m", "suanwang", "server", "--mongo", URI, "--host", HOSTS["db"]],
              {"SUANWANG_ADMIN_TOKEN": "fence-" + os.urandom(4).hex()})
    lab.worker("w1", "cut")
    _wait("worker cut online", lambda: "online" in (tmp_path / "logs/cut.log").read_text(), lab=lab)

    # Given worker `cut` runs a 40 s task with a 3 s lease (no other worker yet)
    task_id = lab.helper("db", "publish", str(folder), "40").stdout.strip()
    _wait("the task running on cut", lambda: stamps(folder, "cut"), lab=lab)
    lab.worker("w2", "spare")
    _wait("worker spare online", lambda: "online" in (tmp_path / "logs/spare.log").read_text(), lab=lab)

    # When every packet of cut's host is dropped
    subprocess.run(["ip", "netns", "exec", lab.ns("w1"), "nft", "-f", "-"], input=CUT_RULES, text=True, check=True)
    cut_at = time.time()

    # Then spare runs the task to its end, and cut's execution had stopped before spare's began
    _wait("spare to start the task", lambda: stamps(folder, "spare"), lab=lab, timeout=60)
    _wait("the task to succeed", lambda: lab.task(task_id)["status"] == "succeeded", lab=lab, timeout=90)
    cut_log = tmp_path / "logs/cut.log"
    task = lab.task(task_id)
    first, second = task["attempts"][0], task["attempts"][-1]
    assert first["worker"] == "cut" and second["worker"] == "spare", task["attempts"]
    lease_end = datetime.fromisoformat(first["lease_until"]).timestamp()
    cut_last, spare_first = max(stamps(folder, "cut")), min(stamps(folder, "spare"))
    noticed = logged_at(cut_log, r"MongoDB error in ")
    killed = logged_at(cut_log, r"killed before its lease ends")
    overlap = max(0.0, cut_last - spare_first)
    print(f"\n[fence] cut at 0; cut noticed the partition at {noticed - cut_at:.2f} s "
          f"(heartbeat {HEARTBEAT_S:g} s), fenced (killed) its attempt at {killed - cut_at:.2f} s, "
          f"its process last ran at {cut_last - cut_at:.2f} s; its lease ended on the server at "
          f"{lease_end - cut_at:.2f} s ({lease_end - cut_last:.2f} s after the kill); spare started at "
          f"{spare_first - cut_at:.2f} s; overlap of the two attempts {overlap:.2f} s")
    assert noticed - cut_at <= 2 * HEARTBEAT_S + 0.5, "noticed the partition later than two heartbeats"
    assert cut_last < lease_end, "the cut-off attempt still ran after its lease ended"
    assert overlap == 0.0 and cut_last < spare_first
    succeeded = [a for a in task["attempts"] if a["state"] == "succeeded"]
    assert len(succeeded) == 1 and succeeded[0]["worker"] == "spare" and first["state"] == "lost"

    # When the network comes back, cut records what happened (its attempt: lost) and works again
    subprocess.run(["ip", "netns", "exec", lab.ns("w1"), "nft", "delete", "table", "inet", "cut"], check=True)
    _wait("cut reachable again", lambda: "reachable again after" in cut_log.read_text(), lab=lab, timeout=60)
    back = re.search(r"reachable again after ([\d.]+) s", cut_log.read_text()).group(1)
    print(f"[fence] cut: 'MongoDB reachable again after {back} s' (counted from the last success); "
          f"lost tasks: 0; duplicate results: 0")
    _wait("cut's account of the fenced attempt", lambda: "lost end was dropped" in cut_log.read_text()
          or "recorded as lost" in cut_log.read_text(), lab=lab, timeout=30)
    assert float(back) >= time.time() - cut_at - 30 > 0
