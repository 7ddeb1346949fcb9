"""``AsyncClient``'s uploads and downloads on aiohttp: streamed, checked by sha256, retried.

An upload hashes the file first (in a thread), then streams it with ``X-Content-SHA256`` so the
server refuses a body that arrives different (nothing is stored then). A download is written to
``FILE.part``, resumed with ``Range`` after a lost connection, verified against the object's
sha256 and renamed; a failed one leaves nothing behind. Files are read and written in threads:
the event loop never waits on the disk.
"""
from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from fsm.errors import SuanwangError
from suanwang.transfer import PIECE, TRIES, finish_download, refusal

#: No total limit for a transfer of any size; a silent connection fails after this.
READ_TIMEOUT_S = 60


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while piece := f.read(PIECE):
            digest.update(piece)
    return digest.hexdigest()


def _timeout():
    import aiohttp

    return aiohttp.ClientTimeout(total=None, sock_connect=READ_TIMEOUT_S, sock_read=READ_TIMEOUT_S)


async def _refused(resp) -> SuanwangError:
    return refusal(resp.status, await resp.text())


async def upload(session, base: str, path: Path, name: str | None = None) -> dict:
    """Stream ``path`` into the data store; returns its metadata."""
    import aiohttp

    sha256 = await asyncio.to_thread(_sha256, path)
    for attempt in range(1, TRIES + 1):
        try:
            with open(path, "rb") as body:  # aiohttp reads it in a thread and sends its length
                async with session.post(f"{base}/data", params={"name": name or path.name}, data=body,
                                        headers={"Content-Type": "application/octet-stream",
                                                 "X-Content-SHA256": sha256}, timeout=_timeout()) as resp:
                    if resp.status == 201:
                        return await resp.json()
                    if resp.status not in (502, 503, 504) or attempt == TRIES:
                        raise await _refused(resp)
        except (aiohttp.ClientConnectionError, asyncio.TimeoutError):
            if attempt == TRIES:
                raise SuanwangError(f"cannot reach the server at {base} (upload of {path} failed {TRIES} times)")
        await asyncio.sleep(min(2 ** attempt * 0.25, 5))
    raise AssertionError("unreachable")


async def download(session, base: str, url_path: str, target: Path, sha256: str | None = None) -> dict:
    """Stream ``GET url_path`` into ``target``; returns ``{"path", "size", "sha256"}``."""
    part = target.with_name(target.name + ".part")
    try:
        return await _download(session, base, url_path, target, part, sha256)
    except BaseException:
        part.unlink(missing_ok=True)
        raise


async def _download(session, base: str, url_path: str, target: Path, part: Path, sha256: str | None) -> dict:
    import aiohttp

    digest, done, size, etag = hashlib.sha256(), 0, None, None
    out = await asyncio.to_thread(open, part, "wb")
    try:
        for attempt in range(1, TRIES + 1):
            headers = {"Range": f"bytes={done}-", "If-Range": etag} if done and etag else {}
            try:
                async with session.get(base + url_path, headers=headers, timeout=_timeout()) as resp:
                    if resp.status not in (200, 206):
                        if resp.status not in (502, 503, 504) or attempt == TRIES:
                            raise await _refused(resp)
                        continue
                    if resp.status == 200 and done:  # the object changed or no range support: restart
                        await asyncio.to_thread(lambda: (out.seek(0), out.truncate()))
                        digest, done = hashlib.sha256(), 0
                    etag = resp.headers.get("ETag")
                    if size is None and resp.content_length is not None:
                        size = resp.content_length + done
                    async for piece in resp.content.iter_chunked(PIECE):
                        await asyncio.to_thread(out.write, piece)
                        digest.update(piece)
                        done += len(piece)
                if size is None or done >= size:
                    break
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, asyncio.TimeoutError):
                if attempt == TRIES:
                    raise SuanwangError(f"the download of {url_path} was cut off {TRIES} times; nothing was "
                                        "saved") from None
            await asyncio.sleep(min(2 ** attempt * 0.25, 5))
    finally:
        await asyncio.to_thread(out.close)
    return finish_download(part, target, url_path, done, size, etag, digest, sha256)
