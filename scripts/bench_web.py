#!/usr/bin/env python3
"""The tasks table's data request (DataTables server-side) at 100,000 tasks, over real HTTP.

Starts its own mongod and server, inserts the tasks, logs in as a super-user and times
/data/tasks with varied paging, sorting, searching and filters. Target: p50 under 100 ms.
Usage: python scripts/bench_web.py [--tasks 100000] [--requests 60]
"""
from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fsm.store import Store  # noqa: E402
from scratch_db import scratch_store  # noqa: E402  (scripts/scratch_db.py)
import synthetic  # noqa: E402  (scripts/synthetic.py)

FUNCTIONS = ["train_model", "render_frames", "echo", "sleep", "cpu_burn"]
STATUSES = ["succeeded", "failed", "queued", "running", "cancelled"]
KINDS = ["first page", "deep page", "sort by priority", "sort by priority asc", "sort by function",
         "sort by function desc", "sort by status", "search prefix", "status filter", "status + search"]


def fill(store: Store, n: int) -> None:
    now = store.now()
    for start in range(0, n, 10_000):
        # every function in every status, each with the history the validators require
        store.tasks.import_documents([synthetic.task(store, i, STATUSES[(i // 5) % 5], now, FUNCTIONS[i % 5])
                                      for i in range(start, min(n, start + 10_000))])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=60, help="data requests to time (varied, see KINDS)")
    args = parser.parse_args()
    from waitress.server import create_server

    import web
    from scheduler.app import create_app
    from scheduler.config import ServerConfig

    with scratch_store("benchweb") as (store, uri):
        t0 = time.perf_counter()
        fill(store, args.tasks)
        print(f"inserted {args.tasks:,} tasks in {time.perf_counter() - t0:.1f} s")
        store.users.add("bench", "super", "bench-password")
        app = create_app(ServerConfig(mongo_uri=uri, db_name="benchweb", run_scheduler=False), store,
                         extensions=(web.init_app,))
        http = create_server(app, host="127.0.0.1", port=0, threads=4)
        threading.Thread(target=http.run, daemon=True).start()
        base = f"http://127.0.0.1:{http.effective_port}"
        session = requests.Session()
        token = re.search(r'name="csrf_token" value="([^"]+)"', session.get(f"{base}/login").text).group(1)
        session.post(f"{base}/login", data={"name": "bench", "password": "bench-password", "csrf_token": token})
        columns = {"columns[0][data]": "id", "columns[1][data]": "function", "columns[2][data]": "status",
                   "columns[3][data]": "priority", "columns[4][data]": "created_at"}
        rng = random.Random(7)
        kinds: dict[str, list[float]] = {}
        for n in range(args.requests):
            kind = KINDS[n % len(KINDS)]
            params = {"draw": n, "start": 0, "length": 25, "order[0][column]": 4, "order[0][dir]": "desc", **columns}
            if kind == "deep page":
                params["start"] = rng.randrange(0, 2000) * 25
            elif kind.startswith("sort by"):
                column, direction = {"priority": (3, "desc"), "priority asc": (3, "asc"), "function": (1, "asc"),
                                     "function desc": (1, "desc"), "status": (2, "asc")}[kind[len("sort by "):]]
                params.update({"order[0][column]": column, "order[0][dir]": direction})
            elif kind == "search prefix":
                params["search[value]"] = rng.choice(["tra", "ren", "ech"])
            elif kind == "status filter":
                params["status"] = rng.choice(STATUSES)
            elif kind == "status + search":
                params.update({"status": rng.choice(STATUSES), "search[value]": rng.choice(["tra", "ren", "ech"])})
            start = time.perf_counter()
            resp = session.get(f"{base}/data/tasks", params=params)
            elapsed = (time.perf_counter() - start) * 1000
            resp.raise_for_status()
            assert len(resp.json()["data"]) == 25
            kinds.setdefault(kind, []).append(elapsed)
        http.close()
        everything = sorted(t for ts in kinds.values() for t in ts)
        print(f"\n{'request':<22} {'p50 ms':>8} {'max ms':>8}")
        for kind, times in kinds.items():
            print(f"{kind:<22} {statistics.median(times):>8.1f} {max(times):>8.1f}")
        p50 = statistics.median(everything)
        p95 = everything[int(len(everything) * 0.95) - 1]
        print(f"{'all':<22} {p50:>8.1f} {max(everything):>8.1f}   (p95 {p95:.1f} ms)")
        print(f"\ntasks table data request at {args.tasks:,} tasks: p50 {p50:.1f} ms "
              f"(target < 100 ms: {'met' if p50 < 100 else 'NOT met'})")


if __name__ == "__main__":
    main()
