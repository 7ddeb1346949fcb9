"""Streaming uploads and downloads through the HTTP API, with a progress bar and sha256 checks.

An upload streams the file as the request body (never read whole), hashing as it goes, and
checks the server's sha256 against its own; a download is written to ``FILE.part``, verified
against the object's sha256 (its ETag), then renamed. A connection lost (a server or mongod
restart) is retried: an upload from the start, a download from where it stopped (``Range``).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Callable

import requests

from fsm.errors import SuanwangError
from suanwang.client import Client

PIECE = 1 << 20
TRIES = 5
Progress = Callable[[int], None]


class _Reader:
    """A file as a request body: known length (so Content-Length is sent), hashed and counted."""

    def __init__(self, path: Path, progress: Progress | None):
        self.file = open(path, "rb")
        self.size = os.fstat(self.file.fileno()).st_size
        self.digest = hashlib.sha256()
        self.progress = progress

    def __len__(self) -> int:
        return self.size

    def read(self, n: int = -1) -> bytes:
        piece = self.file.read(PIECE if n is None or n < 0 else n)
        self.digest.update(piece)
        if self.progress and piece:
            self.progress(len(piece))
        return piece

    def close(self) -> None:
        self.file.close()


def refusal(status: int, text: str) -> SuanwangError:
    """The server's refusal (its JSON error, else the start of its text) as one clear error."""
    try:
        err = json.loads(text)["error"]
        return SuanwangError(f"{err['message']} ({status} {err['code']})")
    except (ValueError, KeyError, TypeError):
        return SuanwangError(f"HTTP {status}: {text[:200]}")


def _error(resp: requests.Response) -> SuanwangError:
    return refusal(resp.status_code, resp.text)


def finish_download(part: Path, target: Path, url_path: str, done: int, size: int | None, etag: str | None,
                    digest, sha256: str | None) -> dict:
    """Check what ``part`` received (its size, its sha256 against ``sha256`` or a sha256 ETag) and
    move it to ``target``; a short or corrupt download raises and is never renamed."""
    expected = sha256 or (etag.strip('"') if etag and len(etag.strip('"')) == 64 else None)
    if (size is not None and done != size) or (expected and digest.hexdigest() != expected):
        raise SuanwangError(f"the download of {url_path} is incomplete or corrupt ({done} of {size} bytes, "
                            f"sha256 {digest.hexdigest()}, expected {expected}); nothing was saved")
    os.replace(part, target)
    return {"path": str(target), "size": done, "sha256": digest.hexdigest()}


def _retryable(resp: requests.Response | None) -> bool:
    return resp is None or resp.status_code in (502, 503, 504)


def upload(client: Client, path: Path, name: str | None = None, progress: Progress | None = None,
           reset: Callable[[], None] | None = None) -> dict:
    """Upload a file as a data object; returns its metadata (id, name, size, sha256, ...)."""
    path = Path(path)
    for attempt in range(1, TRIES + 1):
        body = _Reader(path, progress)
        resp = None
        try:
            resp = client.session.post(f"{client.base}/data", params={"name": name or path.name}, data=body,
                                       headers={"Content-Type": "application/octet-stream"}, timeout=None)
        except requests.ConnectionError:
            resp = None
        finally:
            body.close()
        if resp is not None and resp.status_code == 201:
            meta = resp.json()
            if meta["sha256"] != body.digest.hexdigest():
                client.session.delete(f"{client.base}/data/{meta['id']}", timeout=client.timeout)
                raise SuanwangError(f"the server stored sha256 {meta['sha256']} but the file has "
                                    f"{body.digest.hexdigest()}; the copy was deleted, try again")
            return meta
        if not _retryable(resp) or attempt == TRIES:
            raise _error(resp) if resp is not None else SuanwangError(
                f"cannot reach the server at {client.base} (upload of {path} failed {TRIES} times)")
        if reset:
            reset()
        time.sleep(min(2 ** attempt * 0.25, 5))
    raise AssertionError("unreachable")


def download(client: Client, url_path: str, target: Path, progress: Progress | None = None,
             sha256: str | None = None) -> dict:
    """Stream ``GET url_path`` into ``target``; returns ``{"path", "size", "sha256"}``.

    Resumes after a lost connection; a short or corrupt file is never left at ``target``.
    """
    target = Path(target)
    part = target.with_name(target.name + ".part")
    try:
        return _download(client, url_path, target, part, progress, sha256)
    except BaseException:
        part.unlink(missing_ok=True)  # a refused or abandoned download leaves nothing behind
        raise


def _download(client: Client, url_path: str, target: Path, part: Path, progress: Progress | None,
              sha256: str | None) -> dict:
    digest, done, size, etag = hashlib.sha256(), 0, None, None
    with open(part, "wb") as out:
        for attempt in range(1, TRIES + 1):
            headers = {"Range": f"bytes={done}-", "If-Range": etag} if done and etag else {}
            try:
                with client.session.get(client.base + url_path, headers=headers, stream=True, timeout=60) as resp:
                    if resp.status_code not in (200, 206):
                        if not _retryable(resp) or attempt == TRIES:
                            raise _error(resp)
                        continue
                    if resp.status_code == 200 and done:  # the object changed or no range support: restart
                        out.seek(0)
                        out.truncate()
                        digest, done = hashlib.sha256(), 0
                    etag = resp.headers.get("ETag")
                    if size is None:
                        length = resp.headers.get("Content-Length")
                        size = int(length) + done if length is not None else None
                    for piece in resp.iter_content(PIECE):
                        out.write(piece)
                        digest.update(piece)
                        done += len(piece)
                        if progress:
                            progress(len(piece))
                if size is None or done >= size:
                    break
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
                if attempt == TRIES:
                    raise SuanwangError(f"the download of {url_path} was cut off {TRIES} times; nothing was "
                                        "saved") from None
            time.sleep(min(2 ** attempt * 0.25, 5))
    return finish_download(part, target, url_path, done, size, etag, digest, sha256)  # (the caller removes part)
