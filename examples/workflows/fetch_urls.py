"""An I/O task: fetch many URLs concurrently with aiohttp, in one ``async def`` task.

The worker awaits the coroutine on an event loop in the executor child; the task reports
its progress as answers arrive. From a program::

    python -m examples.workflows.fetch_urls https://example.org/ https://www.python.org/ ...

Run the worker from the repository root so it imports ``examples.workflows.fetch_urls``.
"""
from __future__ import annotations

import asyncio
import sys
import time

FETCH = "examples.workflows.fetch_urls:fetch_all"


async def fetch_all(urls: list[str], concurrency: int = 50, timeout_s: float = 30.0) -> list[dict]:
    """GET every URL, at most ``concurrency`` at a time: ``[{url, status, bytes, seconds, error}]`` in order."""
    import aiohttp

    from suanwang import current_task

    task = current_task()
    limit = asyncio.Semaphore(concurrency)
    done = 0

    async def one(session, url):
        nonlocal done
        async with limit:
            began = time.monotonic()
            try:
                async with session.get(url) as resp:
                    body = await resp.read()
                    answer = {"url": url, "status": resp.status, "bytes": len(body), "error": None}
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                answer = {"url": url, "status": None, "bytes": 0, "error": f"{type(exc).__name__}: {exc}"}
            answer["seconds"] = round(time.monotonic() - began, 3)
            done += 1
            if done % max(1, len(urls) // 20) == 0 or done == len(urls):
                task.progress(done / len(urls), f"{done} of {len(urls)} fetched")
            return answer

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
        results = await asyncio.gather(*(one(session, url) for url in urls))
    task.logger.info("fetched %d URLs, %d failed", len(results), sum(1 for r in results if r["error"]))
    return results


def main() -> None:
    from suanwang import Client

    urls = sys.argv[1:]
    if not urls:
        sys.exit("usage: python -m examples.workflows.fetch_urls URL [URL ...]")
    for row in Client.from_env().submit(FETCH, urls).result(timeout=600):
        print(f"{row['status'] or 'ERR':>4}  {row['bytes']:>9}  {row['seconds']:>7.3f}s  {row['url']}"
              + (f"  {row['error']}" if row["error"] else ""))


if __name__ == "__main__":
    main()
