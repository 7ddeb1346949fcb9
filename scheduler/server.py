"""``suanwang server``: the app under waitress (a production WSGI server) plus the leader loop.

``serve(config)`` runs one server process until SIGTERM or SIGINT: it ensures the indexes
and the admin user, serves HTTP with ``config.threads`` threads and, unless
``run_scheduler`` is off, competes for the scheduler lease (``scheduler.leader_loop.Leader``).
It prints nothing: ``ready(server)`` is called once it listens, for the CLI to print the URL
and, on a first start, the new admin token (``Server.new_admin_token``).

``Server`` is the same thing as an object, for tests and embedding: ``start()`` serves in a
background thread, ``stop()`` ends it. Bodies over ``max_body_bytes`` are refused by
waitress from their Content-Length header, before the body is read, with the same JSON error
the API gives; the app checks the limit again for bodies without a Content-Length.

While MongoDB is unreachable, requests answer 503 after ``mongo_timeout_s`` and /healthz
after two seconds; the leader stops its jobs before its lease can expire. Everything works
again once MongoDB is back; nothing needs restarting.
"""
from __future__ import annotations

import copy
import json
import logging
import signal
import socket
import threading
import time
from typing import Callable, Iterable

from waitress import wasyncore
from waitress.parser import HTTPRequestParser
from waitress.server import BaseWSGIServer, create_server
from waitress.task import ErrorTask

from fsm.store import Store
from scheduler.app import create_app, open_store
from scheduler.config import ServerConfig
from scheduler.leader_loop import Leader
from scheduler.upload_stream import StreamingUploadChannel, streams_allowed

log = logging.getLogger("suanwang.server")
#: Response bytes buffered per connection before the app waits for the client to read.
OUTBUF_BYTES = 4 << 20
#: Kernel send buffer asked for on each connection; Linux doubles it to 4 MiB, the ceiling its
#: own tuning would reach (tcp_wmem), so a distant client is not slowed. waitress reads it back
#: as the size of each ``send``: the default 16 KiB made a large download thousands of rounds
#: of Python and of waitress's loop per 100 MB.
SEND_BUFFER_BYTES = 2 << 20
#: Bytes asked of the socket per read (waitress's default is 8 KiB).
RECV_BYTES = 256 << 10
#: How long ``stop()`` lets requests in flight finish before closing connections.
STOP_GRACE_S = 3.0


class JSONErrorTask(ErrorTask):
    """waitress's own errors (413 body too large, 400 unparsable request, 431, 501) as API JSON."""

    CODES = {400: "bad_request", 413: "too_large", 431: "headers_too_large", 501: "not_implemented"}

    def execute(self):
        error = self.request.error
        message = error.reason.lower()
        if error.code == 413:
            limit = getattr(self.request, "adj", self.channel.adj).max_request_body_size - 1  # data uploads: theirs
            message = f"the request body is too large (limit {limit} bytes)"
        elif error.body:
            message = f"{message}: {error.body}"
        body = json.dumps({"error": {"code": self.CODES.get(error.code, "bad_request"), "message": message}})
        body = body.encode()
        self.status = f"{error.code} {error.reason}"
        self.response_headers.extend([("Content-Type", "application/json"), ("Connection", "close"),
                                      ("Content-Length", str(len(body)))])
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class JSONErrorChannel(StreamingUploadChannel):
    error_task_class = JSONErrorTask


#: The one route whose body may be larger than ``max_body_bytes`` (up to ``max_data_bytes``).
DATA_UPLOAD_PATH = "/api/v1/data"


class DataUploadParser(HTTPRequestParser):
    """Data uploads get the data limit (``data_adj``); every other body keeps ``max_body_bytes``.

    waitress reads the limit from ``self.adj`` right after the headers are parsed. A chunked
    upload is spooled to a temporary file past ``inbuf_overflow``; one with a Content-Length
    is streamed to the app.
    """

    data_adj = None
    #: The body goes to the app as it arrives (``scheduler.upload_stream``): a data upload
    #: with a Content-Length.
    streamable = False

    def parse_header(self, header_plus):
        super().parse_header(header_plus)
        if self.data_adj is not None and self.command == "POST" and self.path.rstrip("/") == DATA_UPLOAD_PATH:
            self.adj = self.data_adj
            self.streamable = not self.chunked and self.content_length > 0


def http_server(app, config: ServerConfig):
    """A waitress server for ``app`` (not yet running) that refuses big bodies before reading them."""
    server = create_server(app, host=config.host, port=config.port, threads=config.threads, ident="suanwang",
                           # waitress refuses Content-Length >= this, so the limit itself is allowed
                           max_request_body_size=config.max_body_bytes + 1, clear_untrusted_proxy_headers=True,
                           # a streamed download stays in memory (up to the high watermark, where
                           # the app waits for the client) instead of passing through temp files
                           outbuf_overflow=OUTBUF_BYTES, outbuf_high_watermark=OUTBUF_BYTES,
                           # a large upload arrives in fewer rounds of the loop than 8 KiB reads
                           recv_bytes=RECV_BYTES)
    send_buffer = (socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
    for listener in listeners(server):
        if send_buffer not in listener.adj.socket_options:  # set on each accepted connection
            listener.adj.socket_options = [*listener.adj.socket_options, send_buffer]
        data_adj = copy.copy(listener.adj)
        data_adj.max_request_body_size = max(config.max_data_bytes, config.max_body_bytes) + 1
        parser = type("Parser", (DataUploadParser,), {"data_adj": data_adj})
        listener.channel_class = type("Channel", (JSONErrorChannel,), {"parser_class": parser})
        listener.upload_streams = streams_allowed(config.threads)
    return server


def socket_map(server) -> dict:
    """waitress's socket map (one per server; a multi-address server shares it among listeners)."""
    return server._map if isinstance(server, BaseWSGIServer) else server.map


def listeners(server) -> list[BaseWSGIServer]:
    return [s for s in list(socket_map(server).values()) if isinstance(s, BaseWSGIServer)]


def ensure_admin(store: Store, config: ServerConfig) -> str | None:
    """Make sure the user ``admin`` exists (and that ``config.admin_token`` works for it).

    Returns a new token only when this call created the admin without a given token;
    otherwise None (the admin's tokens are never shown again).
    """
    if config.admin_token:
        store.users.ensure_admin("admin", config.admin_token)
        return None
    if store.users.exists("admin"):
        return None
    token = store.users.ensure_admin("admin")
    try:
        store.users.by_token(token)
    except Exception:  # noqa: BLE001 - another server created the admin at the same moment
        return None
    return token


class Server:
    """One server process's parts: store, app, HTTP server and (optional) leader."""

    def __init__(self, config: ServerConfig, store: Store | None = None, extensions: Iterable = ()):
        self.config = config.validate()
        self.store = store or open_store(config)  # ensures the indexes
        self.store.reads.ensure_counters()  # missing or out of step (an upgrade, a restore): recounted
        self._own_store = store is None
        #: The admin's token when this start created the admin (for the CLI to print once).
        self.new_admin_token = ensure_admin(self.store, config)
        self.app = create_app(config, self.store, extensions)
        self.http = http_server(self.app, config)
        self.leader = Leader(self.store, lease_s=config.leader_lease_s) if config.run_scheduler else None
        if self.leader is not None:  # the leader's jobs: housekeeping, schedules, notifications
            from scheduler import housekeeping, notify, schedules

            housekeeping.install(self.leader, interval_s=config.housekeeping_s,
                                 offline_after_s=config.offline_after_s)
            schedules.install(self.leader)
            notify.install(self.leader, notify.NotifyConfig.from_server_config(config))
            from scheduler import data_retention

            data_retention.install(self.leader, config)
            from scheduler import retention

            retention.install(self.leader, retention.RetentionPolicy.from_server_config(config))
            from scheduler import credits

            credits.install(self.leader, config.credits_settle_s)
            from scheduler import quotas

            quotas.install(self.leader)
        self._first = listeners(self.http)[0]
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._running = threading.Event()

    @property
    def port(self) -> int:
        return self._first.effective_port

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:8080`` (the API is under ``/api/v1``)."""
        host = self._first.effective_host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    def run(self) -> None:
        """Serve in this thread until ``stop()``; then stop the leader and close the store."""
        self._running.set()
        if self.leader is not None:
            self.leader.start()
        log.info("serving on %s (API under /api/v1)", self.url)
        try:
            self.http.run()
        finally:
            self.http.task_dispatcher.shutdown(cancel_pending=True, timeout=STOP_GRACE_S)
            if self.leader is not None:
                self.leader.stop()
            if self._own_store:
                self.store.close()
            self._stopped.set()
            log.info("server stopped")

    def start(self) -> "Server":
        """Serve in a background thread (tests, embedding)."""
        self._thread = threading.Thread(target=self.run, name="suanwang-http", daemon=True)
        self._running.set()
        self._thread.start()
        return self

    def stop(self, timeout: float = 30) -> None:
        """Let requests in flight finish (a few seconds at most), close every connection, wait for ``run()``."""
        if not self._running.is_set():  # never served: just close
            self._stopping.set()
            wasyncore.close_all(socket_map(self.http))
            self.http.task_dispatcher.shutdown(timeout=1)
            if self._own_store:
                self.store.close()
            return
        if not self._stopping.is_set():
            self._stopping.set()
            dispatcher = self.http.task_dispatcher
            deadline = time.monotonic() + STOP_GRACE_S
            while (dispatcher.active_count or dispatcher.queue) and time.monotonic() < deadline:
                time.sleep(0.02)
            # Close every socket in the loop's own thread (the trigger runs the callable there);
            # the loop then finds its map empty and ``run()`` returns.
            sockets = socket_map(self.http)
            try:
                self._first.trigger.pull_trigger(lambda: wasyncore.close_all(sockets))
            except OSError:  # the loop already ended and closed its trigger: nothing runs the callable
                wasyncore.close_all(sockets)
        if threading.current_thread() is not self._thread:
            self._stopped.wait(timeout)

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def serve(config: ServerConfig, ready: Callable[[Server], None] | None = None, extensions: Iterable = ()) -> int:
    """Run a server until SIGTERM or SIGINT; returns 0 after a clean stop (``extensions``: see ``create_app``)."""
    server = Server(config, extensions=extensions)

    def ask_stop(signum, frame):
        log.info("signal %s: stopping", signum)
        # Not from the handler itself: it runs in the serving thread, between two of its steps.
        threading.Thread(target=server.stop, name="suanwang-stop", daemon=True).start()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, ask_stop)
        signal.signal(signal.SIGINT, ask_stop)
    if ready is not None:
        ready(server)
    server.run()
    return 0
