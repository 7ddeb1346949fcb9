"""Data uploads handed to the app as their bytes arrive, instead of after waitress spooled them.

waitress reads a whole request body (to a temporary file past 512 KiB) before it starts the
app, so a 1 GiB upload was written to disk, read back, and only then sent to GridFS: the two
steps took turns instead of overlapping. For ``POST /api/v1/data`` with a Content-Length,
``StreamingUploadChannel`` starts the app as soon as the headers are in and feeds the body
through a ``BodyPipe`` (a few MiB at most: the channel stops reading from the socket while the
pipe is full). Chunked uploads and every other request keep waitress's own behaviour.

Nothing changes for the app: it reads ``wsgi.input`` as before. A client that disconnects or
stalls mid-body (``STALL_S``) makes that read raise, so the upload aborts and nothing is stored.
If the app answers before reading the whole body (a refused upload), the rest is read and
dropped, so the client still gets the answer and the connection stays usable. A streamed
upload holds one of the server's threads while its body arrives, so at most half of them
stream at once (``upload_streams`` on the listener); further uploads are spooled as before,
and slow or stalled clients can never take every thread.
"""
from __future__ import annotations

import threading
import time
from collections import deque

from waitress.channel import ClientDisconnected, HTTPChannel

#: Body bytes held between the socket and the app: the channel stops reading above it.
PIPE_HIGH_BYTES = 4 << 20
#: A streamed body that sends nothing for this long fails the upload (the thread is freed).
STALL_S = 30.0


def streams_allowed(threads: int) -> threading.BoundedSemaphore:
    """The room for uploads streamed at once (half the threads): put on each listener as ``upload_streams``."""
    return threading.BoundedSemaphore(max(1, threads // 2))


class BodyPipe:
    """A request body that the server's loop thread appends to and the app's thread reads.

    It stands in for waitress's body buffer (``append``, ``__len__``, ``getfile``, ``close``) and
    is the app's ``wsgi.input`` (``read``, ``readinto``).
    """

    def __init__(self, wake, stall_s: float, done=lambda: None):
        self._pieces: deque[bytes] = deque()
        self._held = 0
        self._received = 0
        self._cond = threading.Condition()
        self._wake = wake  # wakes the loop after a read makes room (it may have stopped reading)
        self._stall_s = stall_s
        self.ended = False  # every byte arrived
        self._failed: str | None = None  # the client went away
        self._dropping = False  # the app is done with the body: what still comes is dropped
        self._done = done  # called once: every byte arrived, the client went away, or the app is done

    # ------------------------------------------------ waitress's side (loop thread)
    def append(self, data: bytes) -> None:
        with self._cond:
            self._received += len(data)
            if self._dropping:
                return
            self._pieces.append(bytes(data))
            self._held += len(data)
            self._cond.notify()

    def __len__(self) -> int:
        return self._received

    def getfile(self) -> "BodyPipe":
        return self

    def full(self) -> bool:
        return self._held >= PIPE_HIGH_BYTES

    def end(self) -> None:
        with self._cond:
            self.ended = True
            self._cond.notify()
        self._finished()

    def fail(self, why: str) -> None:
        with self._cond:
            if not self.ended:
                self._failed = why
            self._cond.notify()
        self._finished()

    def _finished(self) -> None:
        done, self._done = self._done, None
        if done is not None:
            done()

    def close(self) -> None:
        """The request is over for the app (waitress calls this when its task ends)."""
        with self._cond:
            self._dropping = True
            self._pieces.clear()
            self._held = 0
        self._finished()
        self._wake()

    def prune(self) -> None:  # waitress's buffer interface; nothing to give back
        pass

    # ---------------------------------------------------------- the app's side
    def read(self, size: int = -1) -> bytes:
        with self._cond:
            deadline = time.monotonic() + self._stall_s
            while not self._pieces and not self.ended:
                if self._failed:
                    raise ClientDisconnected(self._failed)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ClientDisconnected(f"the client sent nothing for {self._stall_s:g} s mid-body")
                self._cond.wait(left)
            was_full = self.full()
            out = []
            want = self._held if size is None or size < 0 else size
            got = 0
            while self._pieces and got < want:
                piece = self._pieces.popleft()
                if got + len(piece) > want:
                    cut = want - got
                    self._pieces.appendleft(piece[cut:])
                    piece = piece[:cut]
                out.append(piece)
                got += len(piece)
            self._held -= got
        if was_full and not self.full():
            self._wake()
        return b"".join(out)

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


class StreamingUploadChannel(HTTPChannel):
    """waitress's channel, with uploads that the parser marks ``streamable`` streamed to the app."""

    _pipe: BodyPipe | None = None  # the streamed request's body while it still arrives

    def readable(self) -> bool:
        pipe = self._pipe
        if pipe is not None:  # the app is reading this body: keep reading it, as fast as it goes
            return not (self.will_close or self.close_when_flushed or pipe.full())
        return super().readable()

    def received(self, data) -> bool:
        """waitress's own loop over one read, plus: a streamable request starts the app once its
        headers are in, and is never queued a second time when its body completes."""
        if not data:
            return False
        with self.requests_lock:
            if self.will_close or self.close_when_flushed:
                return False
            while data:
                if self.request is None:
                    self.request = self.parser_class(self.adj)
                request = self.request
                n = request.received(data)
                if (request.expect_continue and request.headers_finished and not self.requests
                        and not self.sent_continue):
                    self.send_continue()
                if (self._pipe is None and request.headers_finished and not request.completed
                        and getattr(request, "streamable", False) and not self.requests
                        and request.body_bytes_received == 0 and self._stream_room()):
                    self._pipe = BodyPipe(self.server.pull_trigger, min(STALL_S, float(self.adj.channel_timeout)),
                                          self.server.upload_streams.release)
                    request.body_rcv.buf = self._pipe
                    self.requests.append(request)
                    self.server.add_task(self)
                if request.completed:
                    self.sent_continue = False
                    if request.body_rcv is not None and request.body_rcv.buf is self._pipe:
                        self._pipe.end()  # already with the app
                        self._pipe = None
                    elif not request.empty:
                        self.requests.append(request)
                        if len(self.requests) == 1:
                            self.server.add_task(self)
                    self.request = None
                if n >= len(data):
                    break
                data = data[n:]
        return True

    def _stream_room(self) -> bool:
        room = getattr(self.server, "upload_streams", None)
        return room is not None and room.acquire(blocking=False)

    def handle_close(self) -> None:
        pipe = self._pipe
        if pipe is not None:
            pipe.fail("the client disconnected before it sent the whole body")
            self._pipe = None
        super().handle_close()
