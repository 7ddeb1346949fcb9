#!/usr/bin/env python3
"""Where a no-op task's time goes: CPU per task in each process, and the worker's share by phase.

Starts a mongod, a server and one worker with 2 slots (``bench.System``), publishes ``--tasks``
no-op tasks in bulk and, while they run, samples the worker daemon with py-spy (only on-CPU
samples) and every process's CPU time with psutil. Prints:
  1. CPU milliseconds per task: server, worker daemon, its executor children, mongod, and the
     wall time per task; mongod's operations and documents touched per task
  2. the worker daemon's on-CPU samples by phase (claim, hand-over to the child and back,
     recording the outcome, heartbeat, idle wait, driver monitoring, other)

Usage: python scripts/profile_noop.py [--tasks 3000] [--stacks FILE]   (needs py-spy: `pip install py-spy`)
       --stacks FILE keeps the worker daemon's py-spy samples (collapsed stacks) for a closer look
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import System, end_to_end  # noqa: E402  (scripts/bench.py)
from fsm.store.embedded import EmbeddedMongo  # noqa: E402

#: Phases by the frames that mark them, the innermost match winning (function names as py-spy shows them).
PHASES = [("claim", ("claim_next", "_claim_within_capacity", "claim_ahead", "_claim_ahead")),
          ("hand-over to the child and back", ("Child.run", "_exchange", "Executor.run", "_execute")),
          ("recording the outcome", ("_record", "finish_attempt", "Recorder.", "GroupCommit.", "finish_successes")),
          ("heartbeat", ("Heartbeat.beat",)),
          ("idle wait (wake-ups)", ("_idle_wait", "Wakeups.wait")),
          ("driver monitoring", ("PeriodicExecutor", "Monitor.")),
          ]


def phase_of(stack: list[str]) -> str:
    for frame in reversed(stack):
        for name, marks in PHASES:
            if any(mark in frame for mark in marks):
                return name
    return "other"


def cpu(proc: psutil.Process, children: bool = False) -> float:
    procs = [proc] + (proc.children(recursive=True) if children else [])
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def opcounters(store) -> dict[str, int]:
    """mongod's operation counters (serverStatus), and the documents it examined and wrote."""
    status = store.db.client.admin.command("serverStatus")
    counts = {f"op {k}": int(v) for k, v in status["opcounters"].items()}
    docs = status["metrics"]["document"]
    counts.update({"docs updated": int(docs["updated"]), "docs inserted": int(docs["inserted"]),
                   "keys examined": int(status["metrics"]["queryExecutor"]["scanned"]),
                   "docs examined": int(status["metrics"]["queryExecutor"]["scannedObjects"])})
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--stacks", help="save the worker daemon's collapsed stacks (py-spy raw format) here")
    args = parser.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        raise SystemExit("py-spy is not installed: pip install py-spy")
    work = Path(tempfile.mkdtemp(prefix="suanwang-profile-"))
    mongo = EmbeddedMongo(work / "db")
    uri = mongo.start()
    system = System(uri.replace("/?", "/profile?") if "/?" in uri else uri, 2, work)
    try:
        end_to_end(system, 200)  # warm: the executor's children start with the first task
        worker, server = psutil.Process(system.worker.pid), psutil.Process(system.server.pid)
        mongod = next(p for p in psutil.process_iter(["name"]) if (p.info["name"] or "").startswith("mongod")
                      and str(mongo.port) in " ".join(p.cmdline()))
        raw = work / "worker.raw"
        recorder = subprocess.Popen([spy, "record", "-p", str(worker.pid), "-r", "250", "-f", "raw", "-o", str(raw),
                                     "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # py-spy attached
        before = {"server": cpu(server), "worker daemon": cpu(worker),
                  "executor children": cpu(worker, True) - cpu(worker), "mongod": cpu(mongod)}
        ops_before = opcounters(system.store)
        began = time.perf_counter()
        rate = end_to_end(system, args.tasks)
        wall = time.perf_counter() - began
        after = {"server": cpu(server), "worker daemon": cpu(worker),
                 "executor children": cpu(worker, True) - cpu(worker), "mongod": cpu(mongod)}
        ops = {k: v - ops_before[k] for k, v in opcounters(system.store).items()}
        recorder.send_signal(2)  # SIGINT: py-spy writes what it has
        recorder.wait(60)
        phases: Counter = Counter()
        for line in raw.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            phases[phase_of(stack.split(";"))] += int(count)
        if args.stacks:
            shutil.copyfile(raw, args.stacks)
    finally:
        system.stop()
        mongo.stop()
        shutil.rmtree(work, ignore_errors=True)

    n = args.tasks
    print(f"\n{n:,} no-op tasks, 2 slots: {rate:.0f} tasks/s ({1000 * wall / n:.2f} ms of wall time per task)\n")
    print(f"| {'process':<20} | {'CPU ms per task':>15} |\n|{'-' * 22}|{'-' * 17}|")
    for name in before:
        print(f"| {name:<20} | {1000 * (after[name] - before[name]) / n:>15.3f} |")
    print("\nmongod work per task (serverStatus, whole run; includes the bench's own polling)\n")
    print("  " + ", ".join(f"{k} {v / n:.2f}" for k, v in ops.items() if v))
    total = sum(phases.values()) or 1
    print(f"\nworker daemon on-CPU samples by phase ({total:,} samples)\n")
    print(f"| {'phase':<34} | {'share':>6} |\n|{'-' * 36}|{'-' * 8}|")
    for name, count in phases.most_common():
        print(f"| {name:<34} | {count / total:>6.1%} |")


if __name__ == "__main__":
    main()
