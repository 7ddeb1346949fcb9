#!/usr/bin/env python3
"""Suanwang's throughput and latency, against the raw MongoDB ceiling and Celery on Redis.

Starts its own mongod (the embedded one), then prints one table:
  1. raw ceiling: bare pymongo find_one_and_update claim + update_one complete, 1 and 2 clients,
     and the same in batches of 8 tasks per round trip (the room a batched worker would have)
  2. Suanwang store: claim_next + finish_attempt cycles, 1 and 2 clients (ratio to the ceiling)
  3. end to end: N no-op tasks published in bulk over HTTP to all done, one worker with 2 slots
  4. publish-to-start latency for an idle worker, p50 / p99 (server clock on both ends)
  5. the same workload on Celery 5 (Redis broker, prefork concurrency 2), when Redis answers
  6. claim lanes: a CPU worker's claim p50 with 0, 10,000 and 100,000 GPU-only tasks queued ahead
     of its work, with lanes and (same data, same run) with the pre-lane claim query and index

Usage: python scripts/bench.py [--tasks 5000] [--cycles 3000] [--latency-samples 200] [--skip-celery]
                               [--lanes-only] [--lane-ahead 0,10000,100000]
       [--store-only]   (only 1 and 2: the store's figures against the raw ceiling)
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fsm.store import Claimant, Store, database  # noqa: E402
from fsm.store.embedded import EmbeddedMongo, free_port  # noqa: E402
from fsm.store.spec import validate  # noqa: E402


# ---------------------------------------------------------------- 1. raw ceiling
#: Tasks per round trip in the batched raw ceiling.
RAW_BATCH = 8


def _raw_client(uri: str, db_name: str, n: int, out) -> None:
    from pymongo import MongoClient, ReturnDocument
    from pymongo.write_concern import WriteConcern

    coll = MongoClient(uri, w="majority")[db_name].raw
    claims = coll.with_options(write_concern=WriteConcern(w=1)) if db_name.endswith("w1") else coll
    done = 0
    start = time.perf_counter()
    while done < n:
        doc = claims.find_one_and_update({"status": "queued"}, {"$set": {"status": "running"}},
                                       sort=[("priority", -1), ("created", 1)], return_document=ReturnDocument.AFTER)
        if doc is None:
            break
        coll.update_one({"_id": doc["_id"], "status": "running"}, {"$set": {"status": "done", "result": None}})
        done += 1
    out.put((done, time.perf_counter() - start))


def _raw_batch_client(uri: str, db_name: str, n: int, out, batch: int = RAW_BATCH) -> None:
    """Claims and completes ``batch`` tasks per round trip: find the ids, claim them with one
    ``update_many`` (w:1) stamped with a token, read the claimed ones back, complete them with
    one ``bulk_write`` (majority): the ceiling of a worker that takes several tasks at once."""
    import uuid

    from pymongo import MongoClient, UpdateOne
    from pymongo.write_concern import WriteConcern

    coll = MongoClient(uri, w="majority")[db_name].raw
    claims = coll.with_options(write_concern=WriteConcern(w=1))
    done = 0
    start = time.perf_counter()
    while done < n:
        ids = [d["_id"] for d in coll.find({"status": "queued"}, {"_id": 1}).sort(
            [("priority", -1), ("created", 1)]).limit(batch)]
        if not ids:
            break
        token = uuid.uuid4().hex
        claims.update_many({"_id": {"$in": ids}, "status": "queued"}, {"$set": {"status": "running", "by": token}})
        got = [d["_id"] for d in coll.find({"by": token}, {"_id": 1})]
        if got:
            coll.bulk_write([UpdateOne({"_id": i, "status": "running"}, {"$set": {"status": "done", "result": None}})
                             for i in got], ordered=False)
        done += len(got)
    out.put((done, time.perf_counter() - start))


def raw_ceiling(uri: str, clients: int, cycles: int, claim_w1: bool = False, batched: bool = False) -> float:
    """Bare claim + complete cycles/s; ``claim_w1``: claims acknowledged at w:1 as Suanwang's are;
    ``batched``: ``RAW_BATCH`` tasks per round trip (``_raw_batch_client``)."""
    from pymongo import ASCENDING, DESCENDING, MongoClient

    db_name = f"raw{clients}" + ("w1" if claim_w1 else "") + ("b" if batched else "")
    coll = MongoClient(uri)[db_name].raw
    coll.drop()
    coll.create_index([("status", ASCENDING), ("priority", DESCENDING), ("created", ASCENDING)])
    coll.insert_many([{"status": "queued", "priority": 0, "created": i} for i in range(cycles)])
    if batched:
        coll.create_index("by", sparse=True)
    return _run_clients(_raw_batch_client if batched else _raw_client, uri, db_name, clients, cycles)


def _run_clients(target, uri: str, db_name: str, clients: int, cycles: int) -> float:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=target, args=(uri, db_name, cycles // clients, out)) for _ in range(clients)]
    start = time.perf_counter()
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    elapsed = time.perf_counter() - start
    return sum(done for done, _ in results) / max(max(t for _, t in results), 1e-9) if elapsed else 0.0


# -------------------------------------------------------------- 2. store cycles
def _store_client(uri: str, db_name: str, n: int, out) -> None:
    store = Store(database(uri, db_name), create_indexes=False)
    who = Claimant(name=f"bench-{os.getpid()}", distinct_grace_s=-1)
    done = 0
    start = time.perf_counter()
    while done < n:
        claim = store.tasks.claim_next(who)
        if claim is None:
            break
        store.tasks.finish_attempt(claim.task_id, claim.attempt_id, "succeeded", result=None, worker=who.name)
        done += 1
    out.put((done, time.perf_counter() - start))


def publish_direct(store: Store, n: int, function: str = "noop") -> None:
    for start in range(0, n, 1000):
        store.tasks.insert([store.tasks.document(validate({"function": function}), "bench")
                            for _ in range(min(1000, n - start))])


def store_cycles(uri: str, clients: int, cycles: int) -> float:
    db_name = f"store{clients}"
    store = Store(database(uri, db_name))
    publish_direct(store, cycles)
    return _run_clients(_store_client, uri, db_name, clients, cycles)


# ----------------------------------------------------------------- 6. claim lanes
def _old_claim(store: Store, who: Claimant):
    """The claim as it was before lanes: requirement filters over an index led by priority."""
    from pymongo import ReturnDocument

    filt = store.tasks.claim_filter(who)
    del filt["lane"]
    return store.db.tasks.find_one_and_update(filt, store.tasks._claim_update(who, "bench"), hint="claim_prelane",
                                              sort=[("priority", -1), ("created_at", 1)],
                                              return_document=ReturnDocument.AFTER)


def lane_claims(uri: str, ahead: int, samples: int) -> tuple[float, float]:
    """Claim p50 (ms) of one plain task behind ``ahead`` GPU-only ones: with lanes, and before lanes."""
    from pymongo import ASCENDING, DESCENDING

    store = Store(database(uri, f"lanes{ahead}"))
    store.db.tasks.create_index([("is_enabled", ASCENDING), ("priority", DESCENDING), ("created_at", ASCENDING)],
                                name="claim_prelane", partialFilterExpression={"open_slots": {"$gt": 0}})
    gpu = validate({"function": "noop", "priority": 9, "requires": {"gpus": 1}})
    for start in range(0, ahead, 5000):
        store.tasks.insert([store.tasks.document(gpu, "bench") for _ in range(min(5000, ahead - start))])
    who = Claimant(name="cpu-bench", gpus=0, distinct_grace_s=-1)
    timings: dict[str, list[float]] = {"lanes": [], "before": []}
    for i in range(samples):
        for kind in ("lanes", "before"):
            store.tasks.insert([store.tasks.document(validate({"function": "noop", "priority": 1}), "bench")])
            began = time.perf_counter()
            claim = store.tasks.claim_next(who) if kind == "lanes" else _old_claim(store, who)
            timings[kind].append((time.perf_counter() - began) * 1000)
            assert claim is not None
    store.db.client.drop_database(f"lanes{ahead}")
    return percentile(timings["lanes"], 50), percentile(timings["before"], 50)


def lane_rows(uri: str, counts: list[int], samples: int) -> list[tuple[str, str, str]]:
    rows, base = [], None
    for ahead in counts:
        with_lanes, before = lane_claims(uri, ahead, samples)
        base = base or with_lanes
        rows.append((f"claim p50, {ahead:,} unclaimable GPU tasks ahead", f"{with_lanes:.2f} ms",
                     f"{with_lanes / base:.2f}x the empty case (target <= 2x); before lanes {before:.2f} ms"))
    return rows


# ------------------------------------------------------------- 3, 4. end to end
class System:
    """A real server and one worker process on the bench's mongod."""

    def __init__(self, uri: str, slots: int, workdir: Path):
        self.port = free_port()
        self.uri = uri
        self.token = "bench-admin-token-" + os.urandom(8).hex()
        env = {**os.environ, "SUANWANG_ADMIN_TOKEN": self.token, "PYTHONUNBUFFERED": "1"}
        cli = [sys.executable, "-m", "suanwang"]
        self.logs = workdir
        self.server = subprocess.Popen(cli + ["server", "--mongo", uri, "--port", str(self.port)], env=env,
                                       stdout=open(workdir / "server.log", "wb"), stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}/api/v1"
        self._wait(lambda: requests.get(f"{self.url}/healthz", timeout=1).ok, "server")
        self.worker = subprocess.Popen(cli + ["worker", "--mongo", uri, "--name", "bench-worker", "--concurrency",
                                              str(slots), "--cache-dir", str(workdir / "cache")], env=env,
                                       stdout=open(workdir / "worker.log", "wb"), stderr=subprocess.STDOUT)
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {self.token}"
        store = Store(database(uri))
        self._wait(lambda: store.db.workers.count_documents({"_id": "bench-worker", "state": "online"}) == 1,
                   "worker")
        self.store = store

    @staticmethod
    def _wait(predicate, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if predicate():
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise SystemExit(f"the {what} did not start within {timeout}s")

    def stop(self) -> None:
        for proc in (self.worker, self.server):
            proc.terminate()
        for proc in (self.worker, self.server):
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def succeeded(system: System, function: str = "noop") -> int:
    """Tasks of ``function`` that succeeded, from the system's own counters (one small document)."""
    doc = system.store.db.task_counters.find_one({"_id": function}, {"final.succeeded": 1}) or {}
    return int((doc.get("final") or {}).get("succeeded", 0))


def end_to_end(system: System, n: int) -> float:
    bodies = [{"function": "noop"} for _ in range(n)]
    done_before = succeeded(system)
    start = time.perf_counter()
    for chunk in range(0, n, 1000):
        resp = system.http.post(f"{system.url}/tasks", json=bodies[chunk:chunk + 1000], timeout=60)
        resp.raise_for_status()
    # Poll gently (the counters, not a count over the tasks): this bench shares the machine's two
    # cores with the system it measures.
    while succeeded(system) < done_before + n:
        time.sleep(0.05)
    return n / (time.perf_counter() - start)


def latency(system: System, samples: int) -> tuple[float, float]:
    """Publish one task at a time to an idle worker; started_at - created_at by the server clock."""
    ids = []
    for _ in range(samples):
        resp = system.http.post(f"{system.url}/tasks", json={"function": "noop"}, timeout=10)
        resp.raise_for_status()
        task_id = resp.json()["id"]
        ids.append(task_id)
        while system.store.db.tasks.count_documents({"_id": task_id, "status": "succeeded"}) == 0:
            time.sleep(0.002)
        time.sleep(0.02)  # let the worker go idle again
    gaps = []
    for doc in system.store.db.tasks.find({"_id": {"$in": ids}}, {"created_at": 1, "attempts.started_at": 1}):
        gaps.append((doc["attempts"][0]["started_at"] - doc["created_at"]).total_seconds() * 1000)
    return percentile(gaps, 50), percentile(gaps, 99), statistics.mean(gaps)


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


# ------------------------------------------------------------------- 5. Celery
def redis_answers() -> bool:
    try:
        import redis

        return redis.Redis(host="127.0.0.1", port=6379, socket_timeout=1).ping()
    except Exception:  # noqa: BLE001 - any failure means: no Redis to compare with
        return False


def celery_bench(n: int, samples: int, workdir: Path) -> tuple[float, float, float]:
    import redis

    redis.Redis(host="127.0.0.1", port=6379, db=15).flushdb()
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'scripts'}:{os.environ.get('PYTHONPATH', '')}"}
    worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "bench_celery_app", "worker", "--pool=prefork",
                               "--concurrency=2", "--loglevel=WARNING", "--without-gossip", "--without-mingle",
                               "--without-heartbeat"], env=env, cwd=ROOT / "scripts",
                              stdout=open(workdir / "celery.log", "wb"), stderr=subprocess.STDOUT)
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import bench_celery_app as app_module

        app_module.app.control.ping(timeout=1)
        deadline = time.monotonic() + 60
        while not app_module.app.control.ping(timeout=0.5):
            if time.monotonic() > deadline:
                raise SystemExit("celery worker did not start")
        app_module.noop.delay().get(timeout=30)  # warm up
        start = time.perf_counter()
        results = [app_module.noop.delay() for _ in range(n)]
        for r in results:
            r.get(timeout=300)
        throughput = n / (time.perf_counter() - start)
        gaps = []
        for _ in range(samples):
            sent = time.time()
            started = app_module.started_at.delay().get(timeout=30)
            gaps.append((started - sent) * 1000)
            time.sleep(0.02)
        return throughput, percentile(gaps, 50), percentile(gaps, 99)
    finally:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()


# --------------------------------------------------------------------- report
class StoreOnly(Exception):
    """--store-only: stop after the store's figures."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--cycles", type=int, default=3000)
    parser.add_argument("--latency-samples", type=int, default=200)
    parser.add_argument("--skip-celery", action="store_true")
    parser.add_argument("--lanes-only", action="store_true", help="only the claim-lane measurements")
    parser.add_argument("--lane-ahead", default="0,10000,100000", help="unclaimable tasks ahead, comma-separated")
    parser.add_argument("--lane-samples", type=int, default=200)
    parser.add_argument("--store-only", action="store_true", help="only the raw ceiling and the store's cycles")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="suanwang-bench-"))
    mongo = EmbeddedMongo(workdir / "db")
    uri = mongo.start()
    rows = []
    try:
        rows += lane_rows(uri, [int(n) for n in args.lane_ahead.split(",")], args.lane_samples)
        if args.lanes_only:
            return
        raw1 = raw_ceiling(uri, 1, args.cycles)
        raw2 = raw_ceiling(uri, 2, args.cycles)
        fair1 = raw_ceiling(uri, 1, args.cycles, claim_w1=True)
        fair2 = raw_ceiling(uri, 2, args.cycles, claim_w1=True)
        batched2 = raw_ceiling(uri, 2, args.cycles, claim_w1=True, batched=True)
        st1 = store_cycles(uri, 1, args.cycles)
        st2 = store_cycles(uri, 2, args.cycles)
        rows += [("raw claim+complete, all majority, 1 client", f"{raw1:,.0f} /s", ""),
                 ("raw claim+complete, all majority, 2 clients", f"{raw2:,.0f} /s", ""),
                 ("raw, claim w:1 + complete majority, 1 client", f"{fair1:,.0f} /s", "Suanwang's write concerns"),
                 ("raw, claim w:1 + complete majority, 2 clients", f"{fair2:,.0f} /s", "Suanwang's write concerns"),
                 (f"raw, the same in batches of {RAW_BATCH}, 2 clients", f"{batched2:,.0f} /s",
                  f"{batched2 / fair2:.2f}x one at a time (the room a batched claim and finish would have)"),
                 ("Suanwang store claim+finish, 1 client", f"{st1:,.0f} /s",
                  f"{st1 / fair1:.0%} of raw same-concern, {st1 / raw1:.0%} of all-majority (target >= 80%)"),
                 ("Suanwang store claim+finish, 2 clients", f"{st2:,.0f} /s",
                  f"{st2 / fair2:.0%} of raw same-concern, {st2 / raw2:.0%} of all-majority (target >= 80%)")]
        if args.store_only:
            raise StoreOnly
        base, _, query = uri.partition("?")
        system = System(f"{base.rstrip('/')}/e2e?{query}", 2, workdir)
        try:
            e2e = end_to_end(system, args.tasks)
            p50, p99, mean = latency(system, args.latency_samples)
        finally:
            system.stop()
        rows += [(f"Suanwang end to end, {args.tasks:,} no-op tasks, 2 slots", f"{e2e:,.0f} tasks/s", ""),
                 ("Suanwang publish-to-start, idle worker", f"p50 {p50:.1f} ms / p99 {p99:.1f} ms / mean {mean:.2f} ms",
                  "target p50 <= 3 ms (issue 15)")]
        if not args.skip_celery and redis_answers():
            c_tp, c_p50, c_p99 = celery_bench(args.tasks, args.latency_samples, workdir)
            rows += [(f"Celery 5 on Redis, {args.tasks:,} no-op tasks, prefork 2", f"{c_tp:,.0f} tasks/s",
                      f"Suanwang/Celery = {e2e / c_tp:.2f} (target >= 1.5, issue 15)"),
                     ("Celery publish-to-start", f"p50 {c_p50:.1f} ms / p99 {c_p99:.1f} ms",
                      f"Suanwang/Celery p50 = {p50 / c_p50:.2f}")]
        else:
            rows.append(("Celery 5 on Redis", "skipped", "no Redis on 127.0.0.1:6379 (or --skip-celery)"))
    except StoreOnly:
        pass
    finally:
        mongo.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        report(rows)


def report(rows) -> None:
    width = max(len(r[0]) for r in rows)
    vwidth = max(len(r[1]) for r in rows)
    print(f"\n{'measure':<{width}}  {'value':<{vwidth}}  ratio / target")
    print(f"{'-' * width}  {'-' * vwidth}  {'-' * 30}")
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:<{vwidth}}  {note}")
    print(f"\n({os.cpu_count()} cores; one mongod, single-node replica set, majority writes)")


if __name__ == "__main__":
    main()
