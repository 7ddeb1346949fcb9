#!/usr/bin/env python3
"""What the JSON depth check (scheduler.request_guard) costs per request body, against parsing
the same body with json.loads, measured in the same run.

    .venv/bin/python scripts/bench_json_depth.py
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scheduler.request_guard import check_depth  # noqa: E402


def best_of(fn, arg, rounds: int = 5) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn(arg)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    bodies = {
        "one task": {"function": "echo", "args": [{"x": 1, "y": [1, 2, 3]}], "priority": 5},
        "bulk of 10,000 tasks": [{"function": "echo", "args": [i, {"k": "v" * 20}]} for i in range(10_000)],
        "1 MiB of strings with brackets": {"function": "echo", "args": ["[{" * 1000 + '\\"' * 10] * 250},
        "deep 64 (at the limit)": json.loads("[" * 64 + "]" * 64),
    }
    print(f"{'body':<32} {'bytes':>10} {'depth check':>12} {'json.loads':>12} {'ratio':>7}")
    for name, body in bodies.items():
        raw = json.dumps(body).encode()
        check = best_of(check_depth, raw)
        parse = best_of(json.loads, raw)
        print(f"{name:<32} {len(raw):>10,} {check * 1e3:>10.3f}ms {parse * 1e3:>10.3f}ms {check / parse:>7.2f}")


if __name__ == "__main__":
    main()
