#!/usr/bin/env python3
"""Workflow overhead: a fan-out of N no-op children and one gather that depends on all of them.

Starts its own mongod (the embedded one), a server and one worker with 2 slots, then measures
in the same run:
  1. baseline: N independent no-op tasks published in one bulk request, to the last one done
  2. the same N tasks plus a gather with ``depends_on`` on all N (and their results as
     arguments), in one request: publish to the gather's end; the difference to (1), divided
     by N, is the overhead per dependency edge
  3. the fan-out from inside a task: a parent calls ``current_task().submit`` N times and once
     for the gather, then returns; publish of the parent to the gather's end; and the same
     with one ``current_task().submit_many`` of the N children and the gather
  4. Celery 5's chord (Redis broker and result backend, prefork 2) of N no-ops and a gather,
     when Redis answers on 127.0.0.1:6379, and the same N no-ops as a group (its baseline)

Usage: python scripts/bench_workflow.py [--children 1000] [--rounds 3] [--skip-celery]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]
os.environ["PYTHONPATH"] = f"{ROOT}:{os.environ.get('PYTHONPATH', '')}"  # the worker imports examples.*

from bench import System, redis_answers  # noqa: E402
from fsm.store.embedded import EmbeddedMongo  # noqa: E402


def _wait_done(system: System, task_id: str, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = system.store.db.tasks.find_one({"_id": task_id}, {"status": 1, "finished_at": 1, "created_at": 1})
        if doc and doc["status"] in ("succeeded", "failed", "cancelled"):
            if doc["status"] != "succeeded":
                raise SystemExit(f"task {task_id} ended {doc['status']}")
            return doc
        time.sleep(0.02)
    raise SystemExit(f"task {task_id} did not finish within {timeout}s")


def publish(system: System, bodies) -> list[str]:
    resp = system.http.post(f"{system.url}/tasks", json=bodies, timeout=120)
    resp.raise_for_status()
    body = resp.json()
    return [i["id"] for i in body["items"]] if isinstance(bodies, list) else [body["id"]]


def flat(system: System, n: int) -> float:
    tag = uuid.uuid4().hex[:8]
    ids = [f"flat-{tag}-{i}" for i in range(n)]
    start = time.perf_counter()
    publish(system, [{"id": i, "function": "noop"} for i in ids])
    for task_id in ids[-1:]:
        _wait_done(system, task_id)
    while system.store.db.tasks.count_documents({"_id": {"$in": ids}, "status": "succeeded"}) < n:
        time.sleep(0.02)
    return time.perf_counter() - start


def dag(system: System, n: int) -> float:
    tag = uuid.uuid4().hex[:8]
    ids = [f"dag-{tag}-{i}" for i in range(n)]
    bodies = [{"id": i, "function": "noop"} for i in ids]
    bodies.append({"id": f"dag-{tag}-gather", "function": "examples.workflows.fan_out:count",
                   "args": [{"__result__": i} for i in ids], "depends_on": ids})
    start = time.perf_counter()
    publish(system, bodies)
    _wait_done(system, f"dag-{tag}-gather")
    return time.perf_counter() - start


def in_task(system: System, n: int, function: str = "fan_out") -> float:
    start = time.perf_counter()
    parent = publish(system, {"function": f"examples.workflows.fan_out:{function}", "args": [n]})[0]
    _wait_done(system, parent)
    gather = system.store.db.tasks.find_one({"_id": parent}, {"result": 1})["result"]["gather"]
    _wait_done(system, gather)
    return time.perf_counter() - start


def celery_rounds(n: int, rounds: int, workdir: Path) -> tuple[list[float], list[float]]:
    import redis

    redis.Redis(host="127.0.0.1", port=6379, db=14).flushdb()
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'scripts'}:{os.environ.get('PYTHONPATH', '')}"}
    worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "bench_workflow_celery", "worker",
                               "--pool=prefork", "--concurrency=2", "--loglevel=WARNING", "--without-gossip",
                               "--without-mingle", "--without-heartbeat"], env=env, cwd=ROOT / "scripts",
                              stdout=open(workdir / "celery.log", "wb"), stderr=subprocess.STDOUT)
    try:
        from celery import chord, group

        import bench_workflow_celery as app_module

        deadline = time.monotonic() + 60
        while not app_module.app.control.ping(timeout=0.5):
            if time.monotonic() > deadline:
                raise SystemExit("celery worker did not start")
        app_module.noop.delay().get(timeout=30)
        groups, chords = [], []
        for _ in range(rounds):
            start = time.perf_counter()
            group(app_module.noop.s() for _ in range(n))().get(timeout=600)
            groups.append(time.perf_counter() - start)
            start = time.perf_counter()
            assert chord(app_module.noop.s() for _ in range(n))(app_module.count.s()).get(timeout=600) == n
            chords.append(time.perf_counter() - start)
        return groups, chords
    finally:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--children", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-celery", action="store_true")
    args = parser.parse_args()
    n = args.children
    workdir = Path(tempfile.mkdtemp(prefix="suanwang-bench-workflow-"))
    mongo = EmbeddedMongo(workdir / "db")
    uri = mongo.start()
    med = statistics.median
    rows = []
    try:
        base, _, query = uri.partition("?")
        system = System(f"{base.rstrip('/')}/workflow?{query}", 2, workdir)
        try:
            flat(system, 50)  # warm up
            flats, dags, inners, bulks = [], [], [], []
            for _ in range(args.rounds):  # interleaved, so drift hits every shape alike
                flats.append(flat(system, n))
                dags.append(dag(system, n))
                inners.append(in_task(system, n))
                bulks.append(in_task(system, n, "fan_out_bulk"))
        finally:
            system.stop()
        edge_ms = (med(dags) - med(flats)) / n * 1000
        rows += [(f"Suanwang: {n:,} independent no-ops (baseline)", f"{med(flats):.2f} s", ""),
                 (f"Suanwang: {n:,} no-ops + gather (depends_on, results)", f"{med(dags):.2f} s",
                  f"x{med(dags) / med(flats):.2f} of baseline; {edge_ms:+.2f} ms per edge"),
                 (f"Suanwang: fan-out of {n:,} from inside a task + gather", f"{med(inners):.2f} s",
                  f"x{med(inners) / med(flats):.2f} of baseline (one submit per child)"),
                 ("Suanwang: the same with one submit_many", f"{med(bulks):.2f} s",
                  f"x{med(bulks) / med(flats):.2f} of baseline")]
        if not args.skip_celery and redis_answers():
            groups, chords = celery_rounds(n, args.rounds, workdir)
            c_edge = (med(chords) - med(groups)) / n * 1000
            rows += [(f"Celery: group of {n:,} no-ops (baseline)", f"{med(groups):.2f} s", ""),
                     (f"Celery: chord of {n:,} no-ops + gather (Redis backend)", f"{med(chords):.2f} s",
                      f"x{med(chords) / med(groups):.2f} of its baseline; {c_edge:+.2f} ms per edge"),
                     ("Suanwang DAG / Celery chord", f"{med(dags) / med(chords):.2f}", "below 1: Suanwang faster")]
        else:
            rows.append(("Celery chord on Redis", "skipped", "no Redis on 127.0.0.1:6379 (or --skip-celery)"))
    finally:
        mongo.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    width = max(len(r[0]) for r in rows)
    vwidth = max(len(r[1]) for r in rows)
    print(f"\n{'measure (median of ' + str(args.rounds) + ')':<{width}}  {'value':<{vwidth}}  ratio")
    print(f"{'-' * width}  {'-' * vwidth}  {'-' * 40}")
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:<{vwidth}}  {note}")
    print(f"\n({os.cpu_count()} cores; one worker with 2 slots; one mongod, single-node replica set)")


if __name__ == "__main__":
    main()
