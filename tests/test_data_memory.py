"""2 GiB through the server and a worker with their resident memory bounded (slow).

Up through the API, into a task as a {"__data__"} argument, back out as a returned file,
and down through the API again; the server's and the worker daemon's RSS (psutil, sampled
all along) must grow by less than 100 MB.
"""
from __future__ import annotations

import hashlib
import threading

import psutil
import pytest

from tests.test_data_e2e import Pattern, wait_final

SIZE = 2 << 30
LIMIT = 100 << 20
DF = "tests.data_functions"


class Sized(Pattern):
    def __len__(self):
        return SIZE


class Peak:
    """The highest RSS of a process, sampled in a thread."""

    def __init__(self, pid: int):
        self.proc = psutil.Process(pid)
        self.base = self.proc.memory_info().rss
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.wait(0.02):
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except psutil.Error:
                return

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak - self.base


@pytest.mark.slow
def test_two_gib_through_server_and_worker_with_bounded_memory(cluster, tmp_path):
    cluster.start_server()
    worker = cluster.start_worker("w1", concurrency=1)
    http = cluster.http()
    # warm both up (imports, connection pools) before the baseline
    warm = http.post(f"{cluster.url}/data", params={"name": "warm"}, data=b"x" * (4 << 20),
                     headers={"Content-Type": "application/octet-stream"}, timeout=60)
    assert warm.status_code == 201, warm.text
    wait_final(cluster, cluster.publish({"function": f"{DF}:checksum", "args": [{"__data__": warm.json()["id"]}]}))
    server_rss, worker_rss = Peak(cluster.server.pid), Peak(worker.pid)

    resp = http.post(f"{cluster.url}/data", params={"name": "two.bin"}, data=Sized(SIZE),
                     headers={"Content-Type": "application/octet-stream"}, timeout=1200)
    assert resp.status_code == 201, resp.text
    meta = resp.json()
    assert meta["size"] == SIZE
    task = wait_final(cluster, cluster.publish({"function": f"{DF}:checksum", "args": [{"__data__": meta["id"]}],
                                                "timeout_s": 1200}), timeout=1200)
    assert task["status"] == "succeeded" and task["result"]["sha256"] == meta["sha256"], task
    task = wait_final(cluster, cluster.publish({"function": f"{DF}:write_file", "args": [SIZE >> 20, "two.bin"],
                                                "timeout_s": 1200}), timeout=1200)
    assert task["status"] == "succeeded" and task["result_ref"]["size"] == SIZE, task.get("error")
    digest, size = hashlib.sha256(), 0
    with http.get(f"{cluster.url}/tasks/{task['id']}/result", stream=True, timeout=1200) as down:
        for piece in down.iter_content(1 << 20):
            digest.update(piece)
            size += len(piece)
    assert size == SIZE and digest.hexdigest() == task["result_ref"]["sha256"]

    grew_server, grew_worker = server_rss.stop(), worker_rss.stop()
    print(f"RSS growth: server {grew_server / 2**20:.1f} MB, worker {grew_worker / 2**20:.1f} MB")
    assert grew_server < LIMIT and grew_worker < LIMIT, (grew_server, grew_worker)
