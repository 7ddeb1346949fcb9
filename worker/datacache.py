"""The worker's cache of data objects, keyed by sha256, shared by every slot and daemon on a machine.

Layout under ``root``: ``objects/<sha256>`` (read-only files), ``locks/<sha256>`` (one lock
file per object). A download holds the object's lock exclusively (``fcntl.flock``), so when
several slots (or daemons) want the same object at once it is fetched once and the others
wait, then find it. Bytes are written to an unnamed temporary file (``O_TMPFILE``; a named
``.part`` file where the filesystem lacks it), checked against the sha256, made read-only and
only then linked into place: a worker killed mid-download leaves no half file.

An attempt holds a shared lock on each object it uses (``use``); eviction (least recently
used first, by modification time, refreshed on each use) skips objects someone holds, so a
running function never sees its input vanish. ``fetch(store, data_id)`` is the one-call form
for other worker code (e.g. resolving ``{"__result__": id}``).
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import queue
import threading
import time
from pathlib import Path
from typing import Iterator

from fsm.errors import ChecksumMismatch
from fsm.references import DATA, references, substitute
from fsm.store.data import TRANSIENT_ERRORS

log = logging.getLogger("suanwang.worker.data")

#: Default cache size limit.
DEFAULT_LIMIT_BYTES = 20 << 30
#: Tries of one download (a mongod restart, a checksum mismatch) before giving up.
FETCH_TRIES = 3


#: Pieces (1 MiB each) read ahead of the disk writes.
READ_AHEAD = 8


class DataCache:
    """Objects under ``root``, at most ``limit_bytes`` of them (older ones evicted first)."""

    def __init__(self, root: str | os.PathLike, limit_bytes: int = DEFAULT_LIMIT_BYTES):
        self.root = Path(root)
        self.objects = self.root / "objects"
        self.locks = self.root / "locks"
        self.limit_bytes = limit_bytes
        for folder in (self.objects, self.locks):
            folder.mkdir(parents=True, exist_ok=True)
        self._unnamed = _can_link_unnamed(self.objects)
        self._sweep_parts()
        self._durable = self._since_boot()

    # ------------------------------------------------------------- use
    def path(self, sha256: str) -> Path:
        return self.objects / sha256

    @contextlib.contextmanager
    def use(self, store, data_ids: list[str]) -> Iterator[dict[str, Path]]:
        """Local read-only paths of these objects, fetched when missing, held while inside."""
        with contextlib.ExitStack() as held:
            paths = {}
            for data_id in dict.fromkeys(data_ids):
                paths[data_id] = held.enter_context(self._held(store, data_id))
            yield paths

    @contextlib.contextmanager
    def _held(self, store, data_id: str) -> Iterator[Path]:
        meta = store.data.get(data_id)  # DataNotFound for an unknown id
        sha, size = meta["sha256"], meta["size"]
        target = self.path(sha)
        fd = os.open(self.locks / sha, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            if not _complete(target, size):
                fcntl.flock(fd, fcntl.LOCK_EX)  # one downloader; the others wait here, then find it
                if not _complete(target, size):
                    self._make_room(size)
                    self._download(store, data_id, sha, size, target)
                fcntl.flock(fd, fcntl.LOCK_SH)
            os.utime(target)  # least recently used goes first
            yield target
        finally:
            os.close(fd)  # releases the lock

    def fetch(self, store, data_id: str) -> Path:
        """Fetch one object (if needed) and return its path, without holding it."""
        with self._held(store, data_id) as path:
            return path

    def resolve(self, store, args: list, kwargs: dict, paths: dict[str, Path]) -> tuple[list, dict]:
        """``args`` and ``kwargs`` with each ``{"__data__": id}`` replaced by its local Path."""
        resolvers = {DATA: lambda ident: paths[ident]}
        return substitute(args, resolvers), substitute(kwargs, resolvers)

    # --------------------------------------------------------- download
    def _download(self, store, data_id: str, sha: str, size: int, target: Path) -> None:
        for attempt in range(1, FETCH_TRIES + 1):
            try:
                self._download_once(store, data_id, sha, size, target)
                return
            except (ChecksumMismatch, OSError) as exc:
                log.warning("data %s: download %d/%d failed: %s", data_id, attempt, FETCH_TRIES, exc)
                if attempt == FETCH_TRIES:
                    raise
            except Exception as exc:  # noqa: BLE001 - MongoDB went away mid-download: try again
                if attempt == FETCH_TRIES or not _transient(exc):
                    raise
                log.warning("data %s: download %d/%d interrupted: %s", data_id, attempt, FETCH_TRIES, exc)
            time.sleep(0.5 * attempt)

    def _download_once(self, store, data_id: str, sha: str, size: int, target: Path) -> None:
        fd, part = _temporary(self.objects, self._unnamed)
        try:
            digest, written = hashlib.sha256(), 0
            for piece in _read_ahead(store.data.read(data_id), digest):
                written += len(piece)
                view = memoryview(piece)
                while view:
                    view = view[os.write(fd, view):]
            if written != size or digest.hexdigest() != sha:
                raise ChecksumMismatch(f"data {data_id}: downloaded {written} bytes with sha256 "
                                       f"{digest.hexdigest()}, expected {size} bytes with {sha}")
            if not self._durable:  # (else a crash of the machine empties the cache at the next start)
                os.fsync(fd)
            os.fchmod(fd, 0o444)
            staged = self.objects / f".{sha}.{os.getpid()}.link"
            if part is None:
                os.link(f"/proc/self/fd/{fd}", staged, follow_symlinks=True)
            else:
                os.replace(part, staged)
                part = None
            os.replace(staged, target)  # atomic: readers see nothing or the whole file
        finally:
            os.close(fd)
            if part is not None:
                with contextlib.suppress(OSError):
                    os.unlink(part)

    def _since_boot(self) -> bool:
        """Forget the objects when the machine restarted since they were written; True when that
        check is possible, so downloads need no fsync (a process kill loses no written byte; only
        a machine crash can leave a file whose tail never reached the disk)."""
        boot = _boot_id()
        if boot is None:
            return False
        marker = self.root / "boot_id"
        try:
            seen = marker.read_text().strip()
        except OSError:
            seen = None
        if seen != boot:
            if seen is not None:
                log.warning("data cache %s: the machine restarted since it was filled; emptying it", self.root)
            for path in self.objects.iterdir():
                with contextlib.suppress(OSError):
                    path.unlink()
            tmp = self.root / f".boot_id.{os.getpid()}"
            tmp.write_text(boot)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())  # the marker itself must outlive a crash
            os.replace(tmp, marker)
        return True

    # ---------------------------------------------------------- eviction
    def _make_room(self, incoming: int) -> None:
        """Evict least recently used objects nobody holds until ``incoming`` bytes fit."""
        entries = []
        for path in self.objects.iterdir():
            if path.name.startswith("."):
                continue
            with contextlib.suppress(FileNotFoundError):
                st = path.stat()
                entries.append((st.st_mtime, st.st_size, path))
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total + incoming <= self.limit_bytes:
                return
            if self._evict(path):
                total -= size
        if total + incoming > self.limit_bytes:
            log.warning("data cache %s: %d bytes in use exceed the limit of %d", self.root, total + incoming,
                        self.limit_bytes)

    def _evict(self, path: Path) -> bool:
        fd = os.open(self.locks / path.name, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False  # in use by an attempt (or being downloaded)
        try:
            path.unlink()
            log.info("data cache: evicted %s", path.name)
            return True
        except FileNotFoundError:
            return False
        finally:
            os.close(fd)

    def _sweep_parts(self) -> None:
        """Named partial files of downloads whose process died (only where O_TMPFILE is missing)."""
        for path in self.objects.glob(".*"):
            pid = path.name.rsplit(".", 2)[-2] if path.name.count(".") >= 3 else ""
            if pid.isdigit() and not _pid_alive(int(pid)):
                with contextlib.suppress(OSError):
                    path.unlink()

    def data_ids(self, args: list, kwargs: dict) -> list[str]:
        return [ident for marker, ident in references([args, kwargs]) if marker == DATA]


def _read_ahead(pieces: Iterator[bytes], digest, depth: int = READ_AHEAD) -> Iterator[bytes]:
    """``pieces``, read and hashed by a thread of its own while the caller writes the previous
    ones: the driver's socket reads, sha256 and the disk writes all release the GIL, so they
    overlap (at most ``depth`` pieces wait in memory)."""
    ahead: queue.Queue = queue.Queue(maxsize=depth)
    quit_ = threading.Event()
    done = object()

    def put(item) -> bool:
        while not quit_.is_set():
            try:
                ahead.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for piece in pieces:
                digest.update(piece)
                if not put(piece):
                    return
            put(done)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, raised there
            put(exc)
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()

    reader = threading.Thread(target=read, name="suanwang-data-read", daemon=True)
    reader.start()
    try:
        while True:
            item = ahead.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        quit_.set()
        reader.join(10)


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def _complete(target: Path, size: int) -> bool:
    try:
        return target.stat().st_size == size
    except FileNotFoundError:
        return False


def _temporary(folder: Path, unnamed: bool) -> tuple[int, str | None]:
    """An unnamed file in ``folder`` (vanishes if we die), else a named ``.part`` file."""
    if unnamed:
        return os.open(folder, os.O_TMPFILE | os.O_WRONLY, 0o600), None
    part = str(folder / f".{os.urandom(4).hex()}.{os.getpid()}.part")
    return os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), part


def _can_link_unnamed(folder: Path) -> bool:
    """Whether this filesystem can create an unnamed file and link it in (not every one can)."""
    probe = folder / f".probe.{os.getpid()}.link"
    try:
        fd = os.open(folder, os.O_TMPFILE | os.O_WRONLY, 0o600)
    except (AttributeError, OSError):
        return False
    try:
        os.link(f"/proc/self/fd/{fd}", probe, follow_symlinks=True)
        probe.unlink()
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _transient(exc: Exception) -> bool:
    return isinstance(exc, TRANSIENT_ERRORS)


_default: dict[str, DataCache] = {}


def fetch(store, data_id: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """The local read-only path of a data object (fetched into the machine's cache when missing)."""
    from worker.config import DEFAULT_CACHE_DIR

    root = str(Path(cache_dir or DEFAULT_CACHE_DIR) / "data")
    cache = _default.get(root) or _default.setdefault(root, DataCache(root))
    return cache.fetch(store, data_id)
