#!/usr/bin/env python3
"""The cost of the credit check per publish: publishes/s of a free and a priced call, same run.

Starts its own mongod and a real server (waitress, in this process), makes two services over the
built-in ``echo`` that differ only in price (``free``: 0, ``paid``: 0.001 credits per call) and a
business user with credits for every paid call, then publishes single tasks over HTTP from
--threads client threads: --tasks of each kind per round, free and paid rounds alternating
(--rounds of each), so both meet the same database. A paid publish also reserves its price (one
conditional update on the account, one ledger insert); a free one does not touch the ledger.

Prints publishes/s of each kind (the best round, and all rounds) and the ratio paid / free.
Usage: python scripts/bench_credits.py [--tasks 1000] [--threads 8] [--rounds 2]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fsm.store import Store, database  # noqa: E402
from fsm.store.embedded import EmbeddedMongo  # noqa: E402
from scheduler.config import ServerConfig  # noqa: E402
from scheduler.server import Server  # noqa: E402

ADMIN_TOKEN = "bench-credits-admin-token"


def publish_round(url: str, token: str, service: str, tasks: int, threads: int) -> float:
    """Publish ``tasks`` calls of ``service`` from ``threads`` threads; returns publishes per second."""
    per_thread = tasks // threads
    errors: list[str] = []

    def work():
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        for _ in range(per_thread):
            resp = session.post(f"{url}/tasks", json={"service": service, "args": [1]}, timeout=60)
            if resp.status_code != 201:
                errors.append(resp.text[:200])

    workers = [threading.Thread(target=work) for _ in range(threads)]
    began = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise SystemExit(f"{len(errors)} publishes failed, e.g. {errors[0]}")
    return per_thread * threads / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000, help="publishes of each kind per round")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    mongo = EmbeddedMongo(tempfile.mkdtemp(prefix="suanwang-benchcredits-"))
    uri = mongo.start()
    server = None
    try:
        store = Store(database(uri, "benchcredits"))
        server = Server(ServerConfig(mongo_uri=uri, db_name="benchcredits", port=0, threads=16,
                                     admin_token=ADMIN_TOKEN, run_scheduler=False), store).start()
        url = f"{server.url}/api/v1"
        admin = requests.Session()
        admin.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        token = store.users.add("bench", "business")
        for name, price in (("free", 0), ("paid", 0.001)):
            resp = admin.post(f"{url}/services", json={"name": name, "function": "echo", "version": "builtin",
                                                        "price": price}, timeout=30)
            assert resp.status_code == 201, resp.text
        resp = admin.post(f"{url}/users/bench/credits", json={"amount": 1e6, "note": "benchmark"}, timeout=30)
        assert resp.status_code == 200, resp.text
        publish_round(url, token, "free", 200, args.threads)  # warm-up: connections, caches, indexes
        publish_round(url, token, "paid", 200, args.threads)
        rates: dict[str, list[float]] = {"free": [], "paid": []}
        for _ in range(args.rounds):
            for kind in ("free", "paid"):
                rates[kind].append(publish_round(url, token, kind, args.tasks, args.threads))
        free, paid = max(rates["free"]), max(rates["paid"])
        ledger = store.db.ledger.count_documents({"reason": "reserve"})
        print(f"free publishes/s: {free:.0f} (rounds: {', '.join(f'{r:.0f}' for r in rates['free'])})")
        print(f"paid publishes/s: {paid:.0f} (rounds: {', '.join(f'{r:.0f}' for r in rates['paid'])})")
        print(f"ratio paid/free: {paid / free:.2f} ({args.threads} client threads, {args.tasks} publishes per round; "
              f"{ledger} reservations in the ledger)")
    finally:
        if server is not None:
            server.stop()
        mongo.stop()


if __name__ == "__main__":
    main()
