#!/usr/bin/env python3
"""The tasks page's data request and ``/api/v1/stats`` at 1,000,000 tasks, over real HTTP.

Starts its own mongod and server, bulk-inserts synthetic task documents straight into
``tasks`` (the shape the store writes: most finished over the last 30 days, some queued,
running and failed), recounts the task counters as a server's start does after a bulk load
(timed), and times both endpoints first at ``--baseline`` tasks, then at ``--tasks``, printing
p50 / p95 and the ratio to the baseline measured in the same run. Target: p50 under 100 ms at
1,000,000. Then lets retention archive ``--archive`` of the tasks finished over 7 days ago (its
rate), and times both again.

``--db-dir DIR`` keeps mongod's files there: a second run finds the large database filled and
only tops it up to ``--tasks`` (the baseline is always a fresh database beside it).

Usage: python scripts/bench_scale.py [--tasks 1000000] [--baseline 10000] [--requests 30]
                                     [--db-dir DIR] [--archive 100000]
"""
from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fsm.store import Store, database  # noqa: E402
from fsm.store.embedded import EmbeddedMongo  # noqa: E402

FUNCTIONS = ["train_model", "render_frames", "echo", "sleep", "cpu_burn", "etl.daily", "lgbm.fit"]
#: Status mix of a queue that has run for a while: mostly finished.
MIX = [("succeeded", 90), ("failed", 5), ("cancelled", 2), ("queued", 2), ("running", 1)]
BATCH = 10_000
ADMIN_TOKEN = "bench-scale-admin-token"


def synthetic(i: int, now: datetime, rng: random.Random) -> dict:
    status = rng.choices([s for s, _ in MIX], [w for _, w in MIX])[0]
    created = now - timedelta(seconds=rng.uniform(0, 30 * 86400))
    started = created + timedelta(seconds=rng.uniform(0, 5))
    ended = started + timedelta(seconds=rng.uniform(0.01, 60))
    worker = f"w{i % 40}"
    final = status in ("succeeded", "failed", "cancelled")
    attempt = {"id": f"a{i:023d}", "number": 1, "worker": worker, "host": f"h{i % 20}",
               "state": status if final else "running", "started_at": started,
               "lease_until": ended + timedelta(seconds=15), **({"ended_at": ended} if final else {})}
    history = [{"from": None, "to": "queued", "at": created, "by": f"user{i % 7}"}]
    if status != "queued":
        history.append({"from": "queued", "to": "running", "at": started, "by": worker})
    if final:
        history.append({"from": "running", "to": status, "at": ended, "by": worker})
    return {
        "_id": f"{i:024x}", "function": FUNCTIONS[i % len(FUNCTIONS)], "version": "builtin", "args": [i],
        "kwargs": {}, "priority": i % 10, "is_enabled": True, "status": status,
        "requires": {"gpus": 0, "mem_gb": 0, "tags": []}, "lane": "any", "distinct_hosts": False,
        "redundancy": 1, "quorum": 1, "timeout_s": 3600.0, "max_retries": 3, "retry_backoff_s": 5.0,
        "open_slots": 1 if status == "queued" else 0, "failures": int(status == "failed"),
        "workers": [] if status == "queued" else [worker], "attempts": [] if status == "queued" else [attempt],
        "result": i if status == "succeeded" else None, "error": "boom" if status == "failed" else None,
        "reason": None, "history": history, "run_after": None, "submitted_by": f"user{i % 7}", "rev": len(history),
        "created_at": created, "updated_at": ended if final else started,
        **({"started_at": started} if status != "queued" else {}), **({"finished_at": ended} if final else {}),
    }


def fill(store: Store, start: int, end: int) -> None:
    now, rng = datetime.now(timezone.utc), random.Random(start)
    for first in range(start, end, BATCH):
        store.tasks.tasks.insert_many([synthetic(i, now, rng) for i in range(first, min(end, first + BATCH))],
                                      ordered=False)


def session_for(base: str) -> requests.Session:
    session = requests.Session()
    token = re.search(r'name="csrf_token" value="([^"]+)"', session.get(f"{base}/login").text).group(1)
    session.post(f"{base}/login", data={"name": "bench", "password": "bench-password", "csrf_token": token})
    return session


def timed(session: requests.Session, url: str, params: dict | None = None) -> float:
    start = time.perf_counter()
    resp = session.get(url, params=params, timeout=120)
    elapsed = (time.perf_counter() - start) * 1000
    resp.raise_for_status()
    return elapsed


def measure(base: str, web: requests.Session, api: requests.Session, n: int) -> dict[str, list[float]]:
    columns = {"columns[0][data]": "id", "columns[1][data]": "function", "columns[2][data]": "status",
               "columns[3][data]": "priority", "columns[4][data]": "created_at"}
    page = {"draw": 1, "start": 0, "length": 25, "order[0][column]": 4, "order[0][dir]": "desc", **columns}
    timed(web, f"{base}/data/tasks", page), timed(api, f"{base}/api/v1/stats")  # warm
    times: dict[str, list[float]] = {"tasks page data (/data/tasks)": [], "/api/v1/stats": []}
    for _ in range(n):
        times["tasks page data (/data/tasks)"].append(timed(web, f"{base}/data/tasks", page))
        times["/api/v1/stats"].append(timed(api, f"{base}/api/v1/stats"))
    return times


def show(label: str, times: dict[str, list[float]], baseline: dict[str, float] | None = None) -> dict[str, float]:
    p50s = {}
    for name, values in times.items():
        values = sorted(values)
        p50 = statistics.median(values)
        p50s[name] = p50
        ratio = f"  x{p50 / baseline[name]:.2f} of the baseline" if baseline else ""
        verdict = f"  (target < 100 ms: {'met' if p50 < 100 else 'NOT met'})" if baseline else ""
        print(f"{label:<28} {name:<32} p50 {p50:8.1f} ms  p95 {values[int(len(values) * 0.95) - 1]:8.1f} ms"
              f"{ratio}{verdict}")
    return p50s


def serve(store: Store, uri: str, db_name: str) -> str:
    """A server for ``store`` in this process (no leader); returns its base URL."""
    from waitress.server import create_server

    from scheduler.app import create_app
    from scheduler.config import ServerConfig
    from scheduler.server import ensure_admin

    if not store.users.exists("bench"):
        store.users.add("bench", "super", "bench-password")
    config = ServerConfig(mongo_uri=uri, db_name=db_name, run_scheduler=False, admin_token=ADMIN_TOKEN)
    ensure_admin(store, config)
    import web

    # the pages are an extension since the layers were split (the tasks page's data is one of them)
    http = create_server(create_app(config, store, extensions=(web.init_app,)), host="127.0.0.1", port=0, threads=4)
    threading.Thread(target=http.run, daemon=True).start()
    return f"http://127.0.0.1:{http.effective_port}"


def recount(store: Store) -> None:
    """What a server's start does after tasks were loaded without their counters."""
    t0 = time.perf_counter()
    rebuilt = store.reads.ensure_counters()
    print(f"(task counters {'rebuilt' if rebuilt else 'already in step'} in {time.perf_counter() - t0:.1f} s)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--baseline", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--cache-gb", type=float, default=1.0, help="mongod's WiredTiger cache")
    parser.add_argument("--archive", type=int, default=100_000, help="tasks retention archives (its rate; 0: skip)")
    parser.add_argument("--db-dir", help="keep mongod's files here and reuse the large database on the next run")
    args = parser.parse_args()

    mongo = EmbeddedMongo(args.db_dir or tempfile.mkdtemp(prefix="suanwang-benchscale-"), cache_gb=args.cache_gb)
    uri = mongo.start()
    try:
        small = Store(database(uri, "benchscale_base"))
        small.db.client.drop_database("benchscale_base")
        small = Store(database(uri, "benchscale_base"))
        fill(small, 0, args.baseline)
        recount(small)
        base_url = serve(small, uri, "benchscale_base")
        base_p50 = show(f"{args.baseline:,} tasks", measure(base_url, session_for(base_url), api_session(),
                                                             args.requests))

        store = Store(database(uri, "benchscale"))
        have = store.tasks.tasks.estimated_document_count()
        if have < args.tasks:
            last = store.tasks.tasks.find_one({}, {"_id": 1}, sort=[("_id", -1)])
            first = int(last["_id"], 16) + 1 if last else 0
            t0 = time.perf_counter()
            fill(store, first, first + args.tasks - have)
            print(f"(inserted {args.tasks - have:,} tasks in {time.perf_counter() - t0:.0f} s)")
        else:
            print(f"(reused {have:,} tasks in {args.db_dir})")
        recount(store)
        left = store.tasks.tasks.estimated_document_count()
        url = serve(store, uri, "benchscale")
        web, api = session_for(url), api_session()
        show(f"{left:,} tasks", measure(url, web, api, args.requests), base_p50)
        check(store, api, url)

        if args.archive:
            t0 = time.perf_counter()
            moved = 0
            while moved < args.archive:
                step = store.retention.archive_finished(7 * 86400, "archive", batch=1000, max_batches=10)
                moved += step
                if step == 0:
                    break
            left = store.tasks.tasks.estimated_document_count()
            print(f"(retention: {moved:,} of the tasks finished over 7 days ago archived in "
                  f"{time.perf_counter() - t0:.0f} s ({moved / max(time.perf_counter() - t0, 1e-9):,.0f}/s); "
                  f"{left:,} left in tasks)")
            show(f"after retention ({left:,})", measure(url, web, api, args.requests), base_p50)
            check(store, api, url)
    finally:
        mongo.stop()


def api_session() -> requests.Session:
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
    return api


def check(store: Store, api: requests.Session, url: str) -> None:
    """/stats's counts are the tasks' real counts (counted from the index, the slow way)."""
    got = api.get(f"{url}/api/v1/stats", timeout=120).json()["counts"]
    real = store.reads.counted_status_counts()
    print(f"(/stats counts {'equal' if got == real else 'DIFFER FROM'} the counted ones: {real})")


if __name__ == "__main__":
    main()
