"""Task functions of the workflow tests (``tests.flow_functions:NAME``); each runs in an executor child."""
from __future__ import annotations

import asyncio
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

from suanwang import current_task


def add(a, b):
    return a + b


def total(*parts):
    return sum(parts)


def whoami():
    task = current_task()
    return {"id": task.id, "attempt": task.attempt, "worker": task.worker}


def fail(message="broken on purpose"):
    raise RuntimeError(message)


def slow_progress(marker, steps=40, step_s=0.1):
    """Report progress and log a line each step; wait for ``marker`` to exist before the last step."""
    task = current_task()
    for i in range(steps):
        task.progress((i + 1) / steps, f"step {i + 1} of {steps}")
        task.logger.info("working on step %d", i + 1)
        time.sleep(step_s)
    while not Path(marker).exists():
        time.sleep(0.05)
    return steps


async def fetch_many(url, n=100):
    """``n`` concurrent GETs on aiohttp; returns how many answered 200 and the peak concurrency seen."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async def one(i):
            async with session.get(f"{url}?i={i}") as resp:
                return resp.status, await resp.json()
        answers = await asyncio.gather(*(one(i) for i in range(n)))
    return {"ok": sum(1 for status, _ in answers if status == 200),
            "peak": max(body["peak"] for _, body in answers)}


def _square(x):
    return x * x, os.getpid()


def pool_squares(n=8):
    with multiprocessing.Pool(2) as pool:
        pairs = pool.map(_square, range(n))
    return {"squares": [p[0] for p in pairs], "pids": len({p[1] for p in pairs}), "me": os.getpid()}


def process_pool_sum(n=6):
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(2) as pool:
        return sum(x for x, _ in pool.map(_square, range(n)))


def spawn_and_hang(marker):
    """Start a grandchild that leaves the session (setsid) and a Pool, record their pids, then hang."""
    escaped = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    pool = multiprocessing.Pool(2)
    pool_pids = [p.pid for p in pool._pool]
    Path(marker).write_text(" ".join(map(str, [os.getpid(), escaped.pid, *pool_pids])))
    time.sleep(600)


def fan_out(n, marker=None):
    """Submit ``n`` children and a gather that depends on them and sums their results, then return."""
    task = current_task()
    kids = [task.submit("tests.flow_functions:add", i, i) for i in range(n)]
    gather = task.submit("tests.flow_functions:total", *[{"__result__": k} for k in kids], depends_on=kids)
    return {"children": kids, "gather": gather}


def fan_out_bulk(n):
    """Children and their gather in one request; a refused request raises for the task to see."""
    task = current_task()
    ids = task.submit_many([{"id": f"{task.id}-{i}", "function": "tests.flow_functions:add", "args": [i, 1]}
                            for i in range(n)])
    gather = task.submit("tests.flow_functions:total", *[{"__result__": k} for k in ids], depends_on=ids)
    try:
        task.submit("echo", depends_on=["no-such-task"])
    except Exception as exc:  # SubmitFailed: the server's 422 message
        refused = str(exc)
    return {"children": ids, "gather": gather, "refused": refused}


def submit_and_hang(marker):
    """Submit a long child, then hang until cancelled."""
    task = current_task()
    child = task.submit("sleep", 600)
    Path(marker).write_text(child)
    time.sleep(600)
