#!/usr/bin/env python3
"""Large data throughput: through the API and through a task, against raw GridFS on the same mongod.

Starts its own mongod (the embedded one), a `suanwang server` and a `suanwang worker`, then prints:
  1. raw ceiling: pymongo's GridFSBucket alone (upload_from_stream / open_download_stream), MB/s
  2. API: POST /api/v1/data and GET /api/v1/data/<id>/content, MB/s and ratio to the ceiling
  3. task: a {"__data__"} argument fetched by a worker with a cold cache (down: from the claim
     to the function's start; its ceiling is the slower of the raw download and a plain write of
     the same bytes to the local disk the cache lives on), and a file returned as a pathlib.Path that the daemon uploads
     (up: from the function's return to the stored object's upload date), MB/s and ratio
  4. peak resident memory of the server and the worker daemon while all of that ran

Usage: python scripts/bench_data.py [--mb 1024]
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fsm.store.embedded import EmbeddedMongo  # noqa: E402
from tests.procs import Cluster, wait_for  # noqa: E402

DF = "tests.data_functions"
RAW = r'''
import hashlib, sys, time
from gridfs import GridFSBucket
from pymongo import MongoClient
uri, size = sys.argv[1], int(sys.argv[2])
class Pattern:
    def __init__(self): self.left, self.block = size, hashlib.sha256(b"raw").digest() * (1 << 15)
    def read(self, n=-1):
        n = min(self.left, len(self.block) if n is None or n < 0 else min(n, len(self.block))); self.left -= n
        return self.block[:n]
bucket = GridFSBucket(MongoClient(uri, w="majority")["rawbench"])
t = time.perf_counter(); fid = bucket.upload_from_stream("raw", Pattern()); up = time.perf_counter() - t
t = time.perf_counter(); out = bucket.open_download_stream(fid)
while out.read(1 << 20): pass
down = time.perf_counter() - t
print(up, down)
'''


class Pattern:
    """``size`` deterministic bytes as a request body (known length, never whole in memory)."""

    def __init__(self, size: int):
        self.size = self.left = size
        self.block = hashlib.sha256(b"api").digest() * (1 << 15)

    def __len__(self):
        return self.size

    def read(self, n=-1):
        n = min(self.left, len(self.block) if n is None or n < 0 else min(n, len(self.block)))
        self.left -= n
        return self.block[:n]


class Peak:
    def __init__(self, pid: int):
        self.proc, self.peak, self._stop = psutil.Process(pid), 0, threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while not self._stop.wait(0.02):
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except psutil.Error:
                return

    def stop(self) -> int:
        self._stop.set()
        return self.peak


def timed_disk_write(path: Path, size: int) -> float:
    """Seconds to write ``size`` bytes to a file beside the worker's cache, as the cache writes (no
    fsync): a task's input is downloaded to local disk, so it cannot beat this."""
    block = hashlib.sha256(b"disk").digest() * (1 << 15)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    start = time.perf_counter()
    try:
        left = size
        while left:
            left -= os.write(fd, block[:min(left, len(block))])
        return time.perf_counter() - start
    finally:
        os.close(fd)
        path.unlink()


def run_task(cluster: Cluster, body: dict) -> dict:
    http = cluster.http()
    task_id = cluster.publish(body)
    task = wait_for(lambda: (t := http.get(f"{cluster.url}/tasks/{task_id}", timeout=10).json())["status"]
                    in ("succeeded", "failed") and t, 3600, interval=0.05, what="the task")
    if task["status"] != "succeeded":
        raise SystemExit(f"task failed: {task.get('error')}")
    return task


def logged_time(task: dict, key: str) -> float:
    """A ``key=<unix time>`` line the function printed (its attempt's logs)."""
    line = next(x for x in task["attempts"][-1]["logs"].splitlines() if x.startswith(key + "="))
    return float(line.split("=", 1)[1])


def unix(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=1024, help="object size in MiB")
    size = parser.parse_args().mb << 20
    mb = size / 1e6
    work = Path(tempfile.mkdtemp(prefix="bench-data-"))
    mongo = EmbeddedMongo(work / "db")
    uri = mongo.start()
    cluster = Cluster(uri.replace("/?", "/benchdata?") if "/?" in uri else uri, work)
    try:
        raw_up, raw_down = map(float, subprocess.run([sys.executable, "-c", RAW, uri, str(size)], check=True,
                                                     capture_output=True, text=True).stdout.split())
        disk_write = timed_disk_write(work / "disk.bin", size)
        cluster.start_server()
        worker = cluster.start_worker("bench", concurrency=1)
        server_peak, worker_peak = Peak(cluster.server.pid), Peak(worker.pid)
        http = cluster.http()
        start = time.perf_counter()
        resp = http.post(f"{cluster.url}/data", params={"name": "bench.bin"}, data=Pattern(size),
                         headers={"Content-Type": "application/octet-stream"}, timeout=3600)
        api_up = time.perf_counter() - start
        resp.raise_for_status()
        data_id = resp.json()["id"]
        start = time.perf_counter()
        with http.get(f"{cluster.url}/data/{data_id}/content", stream=True, timeout=3600) as down:
            for _ in down.iter_content(1 << 20):
                pass
        api_down = time.perf_counter() - start
        run_task(cluster, {"function": "noop"})  # the executor's children start with a first task: not timed
        task = run_task(cluster, {"function": f"{DF}:size_of", "args": [{"__data__": data_id}], "timeout_s": 3600})
        task_down = logged_time(task, "started_at") - unix(task["attempts"][-1]["started_at"])
        task = run_task(cluster, {"function": f"{DF}:write_file_timed", "args": [size >> 20], "timeout_s": 3600})
        stored = http.get(f"{cluster.url}/data/{task['result_ref']['id']}", timeout=10).json()
        task_up = unix(stored["created_at"]) - logged_time(task, "written_at")
        server_rss, worker_rss = server_peak.stop(), worker_peak.stop()
    finally:
        cluster.close()
        mongo.stop()
        shutil.rmtree(work, ignore_errors=True)

    def row(what, seconds, ceiling):
        ratio = f"{ceiling / seconds:6.0%}" if ceiling else "      "
        print(f"| {what:<44} | {mb / seconds:8.0f} | {ratio} |")

    print(f"\n{size >> 20} MiB object, one machine (server, worker and mongod share its cores)\n")
    print(f"| {'path':<44} | {'MB/s':>8} | {'ratio':>6} |\n|{'-' * 46}|{'-' * 10}|{'-' * 8}|")
    row("raw GridFSBucket upload (ceiling)", raw_up, None)
    row("raw GridFSBucket download (ceiling)", raw_down, None)
    row("API upload  POST /api/v1/data", api_up, raw_up)
    row("API download GET /api/v1/data/<id>/content", api_down, raw_down)
    row("local disk write beside the cache (no fsync)", disk_write, None)
    row("task input  {\"__data__\"} to a cold cache", task_down, max(raw_down, disk_write))
    row("task output pathlib.Path result uploaded", task_up, raw_up)
    print(f"\npeak RSS: server {server_rss / 2**20:.0f} MB, worker daemon {worker_rss / 2**20:.0f} MB")


if __name__ == "__main__":
    main()
