"""``suanwang submit --wait``: follow a task until it ends, with a progress bar (rich).

The bar shows the task's ``progress`` (``current_task().progress(fraction, message)``, stored
within a heartbeat); before the task reports any, it shows the status and the attempts.
"""
from __future__ import annotations

import time
from typing import Callable

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from suanwang.sdk import Outage, attempt

FINAL = {"succeeded", "failed", "cancelled"}


def describe(task: dict) -> str:
    """One line: status, attempts, and the progress message if any."""
    attempts = task.get("attempts") or []
    running = sum(1 for a in attempts if a.get("state") == "running")
    text = f"{task['status']}"
    if task.get("reason") and task["status"] != "succeeded":
        text += f" ({task['reason']})"
    text += f"  attempts {len(attempts)} (running {running})"
    message = (task.get("progress") or {}).get("message")
    return f"{text}  {message}" if message else text


def follow(get_task: Callable[[str], dict], task_id: str, poll_s: float = 0.1, console: Console | None = None,
           max_poll_s: float = 1.0) -> dict:
    """Poll ``get_task(task_id)`` until the task is final, drawing its progress; returns the last read."""
    console = console or Console(stderr=True)
    columns = (TextColumn(f"task {task_id}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
               TimeElapsedColumn(), TextColumn("{task.description}"))
    with Progress(*columns, console=console, transient=False) as bar:
        row = bar.add_task("queued", total=1.0)
        outage = Outage()
        while True:
            task = attempt(get_task, task_id)
            if isinstance(task, Exception):  # a server restart is waited out (sdk.RECONNECT_S), others raised
                outage.endure(task)
                bar.update(row, description=f"server not answering, retrying ({str(task)[:60]})")
                time.sleep(max_poll_s)
                continue
            outage.over()
            fraction = (task.get("progress") or {}).get("fraction")
            done = task["status"] == "succeeded"
            bar.update(row, description=describe(task), completed=1.0 if done else (fraction or 0.0))
            if task["status"] in FINAL:
                return task
            time.sleep(poll_s)
            poll_s = min(poll_s * 1.5, max_poll_s)
