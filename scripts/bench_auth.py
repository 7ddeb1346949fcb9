#!/usr/bin/env python3
"""The cost of authenticating one request, before and after expiring tokens and server-side sessions.

Starts its own mongod, makes --users users with three tokens each, and times (median and p95
of --calls lookups, after a warm-up) the lookup each request makes:

* baseline: the previous token lookup, ``users.find_one({"tokens.hash": h})``;
* token:    ``TokenStore.authenticate`` (one aggregation: the entry, the server's clock and the
  token's last use; ``token_uses`` is written at most once a minute per token);
* session:  the cookie's check, ``SessionStore.user_of`` then ``UserStore.find`` (before, only
  the second read was made).

Prints each figure and its ratio to the baseline measured in the same run.
Usage: python scripts/bench_auth.py [--users 1000] [--calls 2000]
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scratch_db import scratch_store  # noqa: E402  (scripts/scratch_db.py)
from fsm.store.tokens import token_hash  # noqa: E402


def timed(fn, calls: int) -> tuple[float, float]:
    for _ in range(50):
        fn()
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    with scratch_store("benchauth") as (store, _uri):
        now = store.now()
        secrets, sids = [], []
        for i in range(args.users):
            secrets.append(store.users.add(f"user{i}", "business"))
            for label in ("ci", "laptop"):
                store.users.tokens.create(f"user{i}", label, 86400, now)
            sids.append((f"user{i}", store.sessions.create(f"user{i}", 3600)))
        users = store.users.users

        def baseline():
            users.find_one({"tokens.hash": token_hash(random.choice(secrets))}, {"password_hash": 0, "tokens": 0})

        def token():
            store.users.by_token(random.choice(secrets))

        def session():
            name, sid = random.choice(sids)
            assert store.sessions.user_of(sid) == name and store.users.find(name)

        rows = [("baseline (old token lookup)", timed(baseline, args.calls)),
                ("token: authenticate", timed(token, args.calls)),
                ("session: user_of + find", timed(session, args.calls))]
        base = rows[0][1][0]
        print(f"{args.users} users, {args.calls} lookups each")
        for name, (p50, p95) in rows:
            print(f"{name:<30} p50 {p50:6.3f} ms  p95 {p95:6.3f} ms  ratio {p50 / base:4.2f}")


if __name__ == "__main__":
    main()
