#!/usr/bin/env python3
"""/metrics latency as the task history grows: 10,000, 100,000 and 1,000,000 tasks.

Starts its own mongod and an in-process server, then grows one database: a constant live set
(1,000 queued and 50 running tasks, what a busy queue holds) plus finished history, loaded as
complete synthetic documents through the store (``TaskStore.import_documents``; the counters
are rebuilt once after each load, as for an upgraded database). At each size it times
GET /metrics over HTTP (median and p95 of --scrapes, after a few warm-up scrapes) and prints the
ratio to the 10,000 figure. Target: flat (ratio near 1). For comparison it also times, a few
times, the queries the previous /metrics ran per scrape (a group over every task, an unwind of
every attempt, a sort of the last 50,000 finished tasks).

Usage: python scripts/bench_metrics.py [--sizes 10000,100000,1000000] [--scrapes 30]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import synthetic  # noqa: E402  (scripts/synthetic.py)
from fsm.store import Store, database  # noqa: E402
from fsm.store.embedded import EmbeddedMongo  # noqa: E402
from scheduler.config import ServerConfig  # noqa: E402
from scheduler.server import Server  # noqa: E402

LIVE = [("queued", 1000), ("running", 50)]
BATCH = 10_000


def load(store: Store, start: int, stop: int, now) -> None:
    """Finished history from task number ``start`` to ``stop`` (mostly successes, some failures)."""
    for first in range(start, stop, BATCH):
        store.tasks.import_documents([synthetic.task(store, i, "failed" if i % 20 == 0 else "succeeded", now)
                                      for i in range(first, min(stop, first + BATCH))])


def old_scrape_ms(store: Store, n: int = 3) -> float:
    """The previous collector's per-scrape queries over the whole history (median ms)."""
    tasks = store.tasks.tasks
    pipelines = [
        [{"$group": {"_id": {"s": "$status", "f": "$function"}, "n": {"$sum": 1}}}],
        [{"$project": {"function": 1, "a": {"$concatArrays": [{"$ifNull": ["$attempts", []]},
                                                             {"$ifNull": ["$previous_attempts", []]}]}}},
         {"$unwind": "$a"}, {"$group": {"_id": {"f": "$function", "s": "$a.state"}, "n": {"$sum": 1}}}],
        [{"$match": {"finished_at": {"$type": "date"}, "started_at": {"$type": "date"}}},
         {"$sort": {"finished_at": -1}}, {"$limit": 50_000},
         {"$project": {"function": 1, "d": {"$divide": [{"$subtract": ["$finished_at", "$started_at"]}, 1000]}}},
         {"$group": {"_id": "$function", "n": {"$sum": 1}, "sum": {"$sum": "$d"}}}],
    ]
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        for pipeline in pipelines:
            list(tasks.aggregate(pipeline, allowDiskUse=True))
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def scrape_ms(url: str, n: int) -> tuple[float, float]:
    session = requests.Session()
    for _ in range(5):  # warm the caches and the connection
        session.get(url, timeout=120).raise_for_status()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        resp = session.get(url, timeout=120)
        times.append((time.perf_counter() - t0) * 1000)
        resp.raise_for_status()
    times.sort()
    return statistics.median(times), times[max(0, int(len(times) * 0.95) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--scrapes", type=int, default=30)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    mongo = EmbeddedMongo(tempfile.mkdtemp(prefix="suanwang-benchmetrics-"))
    uri = mongo.start()
    rows = []
    try:
        store = Store(database(uri, "benchmetrics"))
        now = store.now()
        live = 0
        for status, n in LIVE:
            store.tasks.import_documents([synthetic.task(store, 10 ** 8 + live + i, status, now) for i in range(n)])
            live += n
        server = Server(ServerConfig(mongo_uri=uri, db_name="benchmetrics", run_scheduler=False, port=0), store).start()
        try:
            loaded = live
            for size in sizes:
                t0 = time.perf_counter()
                load(store, loaded, size, now)
                store.tasks.counters.rebuild(store.tasks.tasks)
                loaded = max(loaded, size)
                print(f"loaded {loaded:,} tasks in {time.perf_counter() - t0:.0f} s", flush=True)
                p50, p95 = scrape_ms(f"{server.url}/api/v1/metrics", args.scrapes)
                old = old_scrape_ms(store)
                rows.append((loaded, p50, p95, old))
                print(f"  /metrics p50 {p50:.1f} ms, p95 {p95:.1f} ms; previous per-scrape queries {old:.0f} ms",
                      flush=True)
        finally:
            server.stop()
    finally:
        mongo.stop()
    base = rows[0][1]
    print(f"\n{'tasks':>10}  {'/metrics p50':>13}  {'p95':>9}  {'ratio to ' + format(rows[0][0], ','):>16}"
          f"  {'previous scrape':>15}  ratio")
    for n, p50, p95, old in rows:
        print(f"{n:>10,}  {p50:>10.1f} ms  {p95:>6.1f} ms  {p50 / base:>16.2f}  {old:>12.0f} ms  {old / rows[0][3]:.1f}")
    print(f"\n(live set: {', '.join(f'{n} {s}' for s, n in LIVE)}; the rest finished history; target ratio ~1)")


if __name__ == "__main__":
    main()
