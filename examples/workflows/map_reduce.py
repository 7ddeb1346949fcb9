"""Map-reduce over a text data set: N chunks counted in parallel, one reduce that depends on them.

Two ways to run it, both publish the same shape (N map tasks, then a reduce with
``depends_on`` whose arguments are ``{"__result__": id}`` of the maps):

* from a program (the SDK does the fan-out)::

      python -m examples.workflows.map_reduce README.md --chunks 8

* from inside a task (``current_task().submit``: the planner returns at once, so it holds no
  slot while the maps run)::

      python -m examples.workflows.map_reduce README.md --chunks 8 --in-task

Run the worker from the repository root (``suanwang up`` there), so it imports
``examples.workflows.map_reduce``; or register the module in the function registry.
"""
from __future__ import annotations

import argparse
import re
import uuid
from collections import Counter

MAP = "examples.workflows.map_reduce:count_words"
REDUCE = "examples.workflows.map_reduce:merge_counts"
WORD = re.compile(r"[^\W\d_]{2,}", re.UNICODE)


def count_words(lines: list[str]) -> dict[str, int]:
    """The map: word counts of one chunk of lines."""
    counts = Counter(w.lower() for line in lines for w in WORD.findall(line))
    return dict(counts)


def merge_counts(*partials: dict[str, int], top: int = 10) -> list[list]:
    """The reduce: add the chunks' counts; the ``top`` words with their counts."""
    total: Counter = Counter()
    for part in partials:
        total.update(part)
    return [[word, n] for word, n in total.most_common(top)]


def chunks(lines: list[str], n: int) -> list[list[str]]:
    size = max(1, -(-len(lines) // n))
    return [lines[i:i + size] for i in range(0, len(lines), size)]


def plan(parts: list[list[str]], top: int = 10) -> dict:
    """Inside a task: publish the maps and the reduce as children, then return (no waiting)."""
    from suanwang import current_task

    task = current_task()
    maps = [task.submit(MAP, part) for part in parts]
    task.progress(1.0, f"published {len(maps)} maps and a reduce")
    reduce_id = task.submit(REDUCE, *[{"__result__": m} for m in maps], top=top, depends_on=maps)
    return {"maps": maps, "reduce": reduce_id}


def run(client, lines: list[str], n: int, top: int = 10, in_task: bool = False) -> list[list]:
    parts = chunks(lines, n)
    if in_task:
        planned = client.submit("examples.workflows.map_reduce:plan", parts, top=top).result(timeout=300)
        return client.task(planned["reduce"]).result(timeout=600)
    prefix = uuid.uuid4().hex[:8]  # client-chosen ids: the reduce names the maps of the same request
    ids = [f"mr-{prefix}-{i}" for i in range(len(parts))]
    bodies = [{"id": i, "function": MAP, "args": [part]} for i, part in zip(ids, parts)]
    bodies.append({"id": f"mr-{prefix}-reduce", "function": REDUCE, "args": [{"__result__": i} for i in ids],
                   "kwargs": {"top": top}, "depends_on": ids})
    return client.submit_many(bodies)[-1].result(timeout=600)


def main() -> None:
    from suanwang import Client

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", help="a text file")
    parser.add_argument("--chunks", type=int, default=8)
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--in-task", action="store_true", help="fan out from inside a task")
    options = parser.parse_args()
    with open(options.path, encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    for word, n in run(Client.from_env(), lines, options.chunks, options.top, options.in_task):
        print(f"{n:8d}  {word}")


if __name__ == "__main__":
    main()
