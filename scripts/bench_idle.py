#!/usr/bin/env python3
"""What an idle Suanwang costs: CPU share and RSS of each process after `suanwang up`.

Starts `python -m suanwang up` (embedded mongod with access control, the server, one local
worker) in a temporary data directory on free ports, waits for it to settle, then measures
for --seconds (default 60) each process's CPU time delta (user + system, psutil) divided by
wall time, as a percentage of one core, and its RSS at the end:

  worker daemon (alone), worker with its executor children, server, mongod, the `up` supervisor

and prints them with the targets of issue 15 (idle worker < 0.5% of a core and < 60 MB,
server < 0.5%) and pass/fail.

Usage: python scripts/bench_idle.py [--seconds 60] [--settle 15] [--concurrency 2]
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fsm.store.embedded import free_port  # noqa: E402

TARGETS = {"worker daemon": (0.5, 60.0), "worker + children": (0.5, 60.0), "server": (0.5, None)}


def _role(proc: psutil.Process) -> str | None:
    try:
        cmd = proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    joined = " ".join(cmd)
    if cmd and os.path.basename(cmd[0]).startswith("mongod"):
        return "mongod"
    if "-m suanwang server" in joined:
        return "server"
    if "-m suanwang worker" in joined:
        return "worker daemon"
    return None


def _cpu(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def find_processes(up: psutil.Process, timeout: float = 90) -> dict[str, psutil.Process]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = {}
        for child in up.children(recursive=True):
            role = _role(child)
            if role and role not in found:
                found[role] = child
        if {"mongod", "server", "worker daemon"} <= found.keys():
            return found
        if not up.is_running():
            break
        time.sleep(0.5)
    raise SystemExit(f"`suanwang up` did not start all of mongod, server and worker (found {sorted(found)})")


def measure(up: psutil.Process, procs: dict[str, psutil.Process], seconds: float) -> list[tuple[str, float, float]]:
    worker = procs["worker daemon"]
    children = {p.pid: p for p in worker.children(recursive=True)}
    start_cpu = {name: _cpu(p) for name, p in procs.items()}
    start_cpu["up supervisor"] = _cpu(up)
    start_children = {pid: _cpu(p) for pid, p in children.items()}
    t0 = time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - t0
    rows = []
    for name, proc in [*procs.items(), ("up supervisor", up)]:
        rows.append((name, 100 * (_cpu(proc) - start_cpu[name]) / wall, proc.memory_info().rss / 2**20))
    # executor children: those that lived through the window count their whole delta; new ones all of it
    child_cpu, child_rss = 0.0, 0.0
    for p in worker.children(recursive=True):
        try:
            child_cpu += _cpu(p) - start_children.get(p.pid, 0.0)
            child_rss += p.memory_info().rss / 2**20
        except psutil.NoSuchProcess:
            pass
    wname, wcpu, wrss = next(r for r in rows if r[0] == "worker daemon")
    rows.insert(1, ("worker + children", wcpu + 100 * child_cpu / wall, wrss + child_rss))
    rows.insert(2, (f"  (children: {len(worker.children(recursive=True))})", 100 * child_cpu / wall, child_rss))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--settle", type=float, default=15, help="seconds to wait after start before measuring")
    ap.add_argument("--concurrency", type=int, default=2)
    args = ap.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="suanwang-idle-"))
    (data_dir / "mongo.port").write_text(str(free_port()))
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for key in ("SUANWANG_MONGO_URI", "SUANWANG_SERVER", "SUANWANG_TOKEN", "SUANWANG_DATA_DIR"):
        env.pop(key, None)
    log = open(data_dir / "up.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "suanwang", "up", "--data-dir", str(data_dir),
                             "--port", str(port), "--concurrency", str(args.concurrency),
                             "--name", "idle-bench"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        up = psutil.Process(proc.pid)
        procs = find_processes(up)
        print(f"up: mongod {procs['mongod'].pid}, server {procs['server'].pid}, worker {procs['worker daemon'].pid}; "
              f"settling {args.settle:.0f}s, then measuring {args.seconds:.0f}s ...", flush=True)
        time.sleep(args.settle)
        rows = measure(up, procs, args.seconds)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    print(f"\n{'process':<24} {'CPU % of a core':>16} {'RSS MB':>8}   target")
    failed = False
    for name, cpu, rss in rows:
        target = TARGETS.get(name)
        verdict = ""
        if target:
            ok = cpu < target[0] and (target[1] is None or rss < target[1])
            failed |= not ok
            verdict = f"< {target[0]}%" + (f", < {target[1]:.0f} MB" if target[1] else "") + \
                ("  pass" if ok else "  FAIL")
        print(f"{name:<24} {cpu:>16.2f} {rss:>8.1f}   {verdict}")
    shutil.rmtree(data_dir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
