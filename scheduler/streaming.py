"""Streamed response bodies that waitress sends without copying them into its output buffer.

waitress copies every piece an app yields into a per-connection buffer (``BytesIO``), then
copies it out again in ``send``-sized slices. For a download of hundreds of MiB those two
copies are a third of the server's work. A piece handed over as a ``ReadOnlyFileBasedBuffer``
(what waitress uses for ``wsgi.file_wrapper``) is queued as it is; ``Piece`` is one over a
``bytes`` object, and waitress sends memoryview slices of it straight to the socket. The
high watermark still applies: the app waits while more than ``outbuf_high_watermark`` bytes
are queued, so memory stays bounded.

Under any other WSGI server (Flask's test client) the pieces pass through unchanged.
"""
from __future__ import annotations

from typing import Iterable, Iterator

from waitress.buffers import ReadOnlyFileBasedBuffer


class Piece(ReadOnlyFileBasedBuffer):
    """One piece of a body, sent by waitress from its own bytes (a memoryview, no copy)."""

    def __init__(self, data: bytes):  # noqa: D107 - no file: the bytes are the buffer
        self.view = memoryview(data)
        self.pos, self.remain = 0, len(data)

    def __len__(self) -> int:
        return self.remain

    def __getitem__(self, key: slice):
        """waitress trims a body to its Content-Length with ``data[:n]``: whole, this piece."""
        if isinstance(key, slice) and key.start is None and key.step is None and (
                key.stop is None or key.stop >= self.remain):
            return self
        return bytes(self.view[self.pos:self.pos + self.remain][key])  # (a body longer than it said)

    def prepare(self, size=None) -> int:
        return self.remain

    def get(self, numbytes: int = -1, skip: bool = False) -> memoryview:
        if numbytes < 0 or numbytes > self.remain:
            numbytes = self.remain
        chunk = self.view[self.pos:self.pos + numbytes]
        if skip:
            self.skip(numbytes)
        return chunk

    def skip(self, numbytes: int, allow_prune: bool = False) -> None:
        if numbytes > self.remain:
            raise ValueError(f"can't skip {numbytes} bytes in a piece of {self.remain}")
        self.pos += numbytes
        self.remain -= numbytes

    def close(self) -> None:
        self.view, self.remain = memoryview(b""), 0  # drop the bytes (a slice may still be in send)

    def __iter__(self) -> Iterator[bytes]:
        yield bytes(self.view[self.pos:self.pos + self.remain])


def pieces_for(environ: dict, pieces: Iterable[bytes]) -> Iterable:
    """``pieces`` as waitress sends them fastest (``Piece`` objects); unchanged elsewhere."""
    if environ.get("wsgi.file_wrapper") is not ReadOnlyFileBasedBuffer:
        return pieces
    return _wrapped(pieces)


def _wrapped(pieces: Iterable[bytes]) -> Iterator:
    try:
        for piece in pieces:
            if piece:
                yield Piece(piece)
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()
