"""Data end to end with real `suanwang server` and `suanwang worker` processes and the CLI:
put/get, a {"__data__"} argument, 30 MB and Path results, and a worker killed mid-download."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.procs import ROOT, wait_for
from worker.datacache import DataCache

DF = "tests.data_functions"


class Pattern:
    """``size`` deterministic bytes as a stream (never whole in memory)."""

    def __init__(self, size: int, seed: bytes = b"x"):
        self.left = size
        self.block = hashlib.sha256(seed).digest() * (1 << 15)

    def read(self, n=-1):
        n = min(self.left, len(self.block) if n is None or n < 0 else min(n, len(self.block)))
        self.left -= n
        return self.block[:n]


def cli(cluster, *args, cwd=None):
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{os.environ.get('PYTHONPATH', '')}", "SUANWANG_TOKEN": cluster.token,
           "SUANWANG_SERVER": cluster.url.rsplit("/api/v1", 1)[0]}
    return subprocess.run([sys.executable, "-m", "suanwang", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


def wait_final(cluster, task_id, timeout=120):
    http = cluster.http()
    return wait_for(lambda: (t := http.get(f"{cluster.url}/tasks/{task_id}", timeout=10).json())["status"]
                    in ("succeeded", "failed", "cancelled") and t, timeout, what=f"task {task_id} final")


def test_cli_and_worker_move_data_both_ways(cluster, tmp_path):
    cluster.start_server()
    cluster.start_worker("w1")
    source = tmp_path / "input.bin"
    source.write_bytes(os.urandom(5 << 20))
    put = cli(cluster, "data", "put", str(source), "--name", "input.bin")
    assert put.returncode == 0, put.stderr
    data_id = put.stdout.strip().splitlines()[-1]
    listed = cli(cluster, "data", "ls")
    assert data_id in listed.stdout and "input.bin" in listed.stdout
    got = cli(cluster, "data", "get", data_id, "-o", str(tmp_path / "copy.bin"))
    assert got.returncode == 0, got.stderr
    assert (tmp_path / "copy.bin").read_bytes() == source.read_bytes()

    # A {"__data__"} argument reaches the function as a local Path.
    task_id = cluster.publish({"function": f"{DF}:checksum", "args": [{"__data__": data_id}]})
    task = wait_final(cluster, task_id)
    assert task["status"] == "succeeded", task
    assert task["result"]["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest() and task["result"]["is_path"]
    assert cli(cluster, "data", "rm", data_id).returncode == 0

    # A 30 MB JSON result and a returned file: result null, result_ref, whole result streamed.
    big = cluster.publish({"function": f"{DF}:big_json", "args": [30]})
    made = cluster.publish({"function": f"{DF}:write_file", "args": [7, "model.txt"]})
    task = wait_final(cluster, big)
    assert task["status"] == "succeeded" and task["result"] is None, task.get("error")
    assert set(task["result_ref"]) == {"id", "size", "sha256", "content_type"}
    body = cluster.http().get(f"{cluster.url}/tasks/{big}/result", timeout=60)
    assert body.status_code == 200 and hashlib.sha256(body.content).hexdigest() == task["result_ref"]["sha256"]
    assert len(json.loads(body.content)["rows"]) == 30 * 1024
    task = wait_final(cluster, made)
    assert task["status"] == "succeeded", task.get("error")
    small = cluster.publish({"function": "echo", "args": [{"a": 1}]})
    wait_final(cluster, small)
    assert cluster.http().get(f"{cluster.url}/tasks/{small}/result", timeout=10).json() == {"a": 1}

    # `submit --wait` saves a large result to a file and says where.
    out = cli(cluster, "submit", f"{DF}:write_file", "3", "m.bin", "--wait", "-o", str(tmp_path / "m.bin"))
    assert out.returncode == 0, out.stderr
    assert "saved to" in out.stdout and (tmp_path / "m.bin").stat().st_size == 3 << 20
    out = cli(cluster, "submit", f"{DF}:big_json", "1", "--wait", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    saved = Path(out.stdout.strip().rsplit(" ", 1)[-1])
    assert (tmp_path / saved).exists() and json.loads((tmp_path / saved).read_text())["rows"]


def test_worker_killed_mid_download_leaves_no_half_file(cluster, store, tmp_path):
    cluster.start_server()
    meta = store.data.upload(Pattern(400 << 20), name="big.bin", owner="admin")
    victim = cluster.start_worker("victim", concurrency=1)
    task_id = cluster.publish({"function": f"{DF}:checksum", "args": [{"__data__": meta["id"]}],
                               "retry_backoff_s": 0})
    cache = tmp_path / "cache-victim" / "data"
    wait_for(lambda: (cache / "locks" / meta["sha256"]).exists(), 60, interval=0.005, what="the download to start")
    victim.kill()
    assert not (cache / "objects" / meta["sha256"]).exists()  # nothing half-written under the real name
    DataCache(cache)  # what the worker does when it starts again: leftovers of dead downloads go
    assert [p.name for p in (cache / "objects").iterdir()] == []
    cluster.start_worker("rescuer", concurrency=1, heartbeat=0.5)
    task = wait_final(cluster, task_id, timeout=120)
    assert task["status"] == "succeeded" and task["result"]["sha256"] == meta["sha256"], task
    assert [a["worker"] for a in task["attempts"]] == ["victim", "rescuer"]
    assert task["attempts"][0]["state"] == "lost"
