#!/usr/bin/env python3
"""Change-stream and wake-up lag on this machine: how long after a write's acknowledgement a
watcher sees it.

Starts its own mongod (single-node replica set). Three figures, p50 / p95 over ``--samples``:
  1. a change stream (what notifications watch on ``tasks``; here on a plain ``probe`` collection,
     since ``tasks`` validates its documents): insert (majority) -> event
  2. the wake-up signal (what idle workers tail): insert (w=1) into ``wakeups`` -> tailing cursor
  3. baseline: the insert's own round trip, measured in the same run

Usage: python scripts/bench_changes.py [--samples 300]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scratch_db import scratch_store  # noqa: E402  (scripts/scratch_db.py)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=300)
    args = parser.parse_args()
    with scratch_store("benchchanges") as (store, _uri):
        seen: dict[int, float] = {}
        ready = threading.Event()

        def watch() -> None:
            with store.db.probe.watch([{"$match": {"operationType": "insert"}}], max_await_time_ms=50) as stream:
                ready.set()
                while len(seen) < args.samples:
                    change = stream.try_next()
                    if change is not None:
                        seen[change["fullDocument"]["n"]] = time.perf_counter()

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        ready.wait(10)
        acked, rtt = {}, []
        for n in range(args.samples):
            start = time.perf_counter()
            store.db.probe.insert_one({"n": n})
            acked[n] = time.perf_counter()
            rtt.append((acked[n] - start) * 1000)
            time.sleep(0.005)
        thread.join(30)
        stream_lag = [(seen[n] - acked[n]) * 1000 for n in acked if n in seen]

        wake_lag = []
        for _ in range(args.samples):
            got = {}

            def tail() -> None:
                if store.wakeups.wait(2.0):
                    got["at"] = time.perf_counter()

            waiter = threading.Thread(target=tail)
            waiter.start()
            time.sleep(0.01)  # the cursor is waiting
            store.wakeups.signal()
            sent = time.perf_counter()
            waiter.join()
            if "at" in got:
                wake_lag.append((got["at"] - sent) * 1000)
        print(f"{'measure':<48} {'p50 ms':>8} {'p95 ms':>8}")
        for name, values in (("insert round trip, majority (baseline)", rtt),
                             ("change stream: ack -> event", stream_lag),
                             ("wake-up signal: insert -> tailing worker", wake_lag)):
            print(f"{name:<48} {statistics.median(values):>8.2f} {pct(values, 0.95):>8.2f}")
        print(f"({len(stream_lag)}/{args.samples} change events, {len(wake_lag)}/{args.samples} wake-ups seen)")


if __name__ == "__main__":
    main()
