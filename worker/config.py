"""The worker daemon's settings: each defined once, here, with its default; one frozen, validated
object built at the edge (the CLI, whose option defaults are ``default(name)``).

Fields left at ``None`` are filled in ``__post_init__`` from the others or from the machine
(``lease_s`` from ``heartbeat_s``; ``gpus`` from NVML, ``mem_gb`` from psutil), so a config
printed in the log says exactly what the daemon runs with.
"""
from __future__ import annotations

import os
import re
import socket
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

from fsm.errors import ConfigError
from fsm.identifiers import TAG, WORKER_NAME

#: Defaults, in one place.
HEARTBEAT_S = 2.0
LEASE_HEARTBEATS = 3.0
POLL_MAX_S = 3.0
DRAIN_TIMEOUT_S = 30.0
DISTINCT_GRACE_S = 30.0
SAMPLE_EVERY_S = 10.0
#: the shortest MongoDB call timeout (a loaded machine answers slower than a short heartbeat)
MIN_IO_TIMEOUT_S = 1.0
QUARANTINE_FAILURES = 3
QUARANTINE_COOLDOWN_S = 300.0
DEFAULT_CACHE_DIR = str(Path.home() / ".suanwang" / "cache")
MAX_CONCURRENCY = 1024
INLINE_RESULT_BYTES = 256 << 10
DATA_CACHE_BYTES = 20 << 30
#: most tasks a slot claims at once when they are measured as short (``worker.prefetch``)
PREFETCH = 32
MAX_PREFETCH = 64



def _hostname() -> str:
    return socket.gethostname() or "worker"


def _cpu_count() -> int:
    return os.cpu_count() or 1


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker daemon needs; only ``mongo_uri`` is required."""

    mongo_uri: str
    #: database name; None: the URI's path, else ``suanwang``
    db_name: str | None = None
    name: str = field(default_factory=_hostname)
    tags: tuple[str, ...] = ()
    #: slots: attempts run at once, one child process each
    concurrency: int = field(default_factory=_cpu_count)
    heartbeat_s: float = HEARTBEAT_S
    #: None: LEASE_HEARTBEATS x heartbeat_s
    lease_s: float | None = None
    #: the idle wait's cap when no wake-up signal arrives
    poll_max_s: float = POLL_MAX_S
    #: on SIGTERM/SIGINT, how long running attempts may go on before they are killed
    drain_timeout_s: float = DRAIN_TIMEOUT_S
    #: exit once nothing is claimable and nothing runs (tests, batch jobs)
    burst: bool = False
    #: after this long, a redundant task may run again on a worker that already ran it (< 0: never)
    distinct_grace_s: float = DISTINCT_GRACE_S
    #: mirrors and checkouts of registered function versions
    cache_dir: str | None = None
    #: None: detected (NVML devices; total physical memory)
    gpus: int | None = None
    mem_gb: float | None = None
    #: cores the worker offers (None: the larger of concurrency and the machine's cores) and each
    #: GPU's memory in GB (None: read by NVML; GPUs given by ``gpus`` alone count as unbounded)
    cpus: float | None = None
    gpu_mem_gb: tuple[float, ...] | None = None
    #: no new claims while a CPU or GPU reading is at or above this (°C; None: no guard)
    max_temp_c: float | None = None
    #: how often a resource sample is stored for the charts
    sample_every_s: float = SAMPLE_EVERY_S
    #: quarantine for a function after this many failed attempts in a row (while others succeed at it)
    quarantine_failures: int = QUARANTINE_FAILURES
    #: how long a quarantine lasts
    quarantine_cooldown_s: float = QUARANTINE_COOLDOWN_S
    #: JSON results larger than this are stored in GridFS (``result_ref``) instead of inline
    inline_result_bytes: int = INLINE_RESULT_BYTES
    #: size limit of the data cache (``cache_dir/data``: inputs by sha256, least recently used evicted)
    data_cache_bytes: int = DATA_CACHE_BYTES
    #: most tasks one slot claims in one go, when their functions are measured as short (1: one at a time)
    prefetch: int = PREFETCH

    def __post_init__(self) -> None:
        def put(name, value):
            object.__setattr__(self, name, value)

        tags = self.tags.split(",") if isinstance(self.tags, str) else list(self.tags or ())
        tags = [t.strip() if isinstance(t, str) else t for t in tags]
        try:
            put("tags", tuple(sorted({t for t in tags if t != ""})))
        except TypeError:  # not all strings: validate() names the bad one
            put("tags", tuple(tags))
        if self.lease_s is None and isinstance(self.heartbeat_s, (int, float)):
            put("lease_s", LEASE_HEARTBEATS * float(self.heartbeat_s))
        if self.cache_dir is None:
            put("cache_dir", DEFAULT_CACHE_DIR)
        else:
            put("cache_dir", str(Path(self.cache_dir).expanduser()))
        if self.gpus is None:
            from worker.stats import gpu_count

            put("gpus", gpu_count())
        if self.cpus is None and isinstance(self.concurrency, int):
            put("cpus", float(max(self.concurrency, _cpu_count())))
        if isinstance(self.gpu_mem_gb, list):
            put("gpu_mem_gb", tuple(self.gpu_mem_gb))
        if self.gpu_mem_gb is None and isinstance(self.gpus, int):
            from worker.stats import gpu_memory_gb

            found = gpu_memory_gb()
            put("gpu_mem_gb", tuple(found[:self.gpus]) + (float(1 << 20),) * max(0, self.gpus - len(found)))
        if self.mem_gb is None:
            import psutil

            put("mem_gb", round(psutil.virtual_memory().total / 2**30, 2))

    def validate(self) -> "WorkerConfig":
        """Raise ``ConfigError`` naming the first bad setting; returns self."""
        if not isinstance(self.mongo_uri, str) or not self.mongo_uri.startswith(("mongodb://", "mongodb+srv://")):
            raise ConfigError(f"mongo_uri must be a MongoDB URI (mongodb://host:port/...), got {self.mongo_uri!r}")
        if self.db_name is not None and (not isinstance(self.db_name, str) or not self.db_name
                                         or any(c in self.db_name for c in '/\\. "$')):
            raise ConfigError(f"db_name {self.db_name!r} is not a valid MongoDB database name")
        if not WORKER_NAME.match(self.name):
            raise ConfigError(f"worker name {self.name!r} must be {WORKER_NAME.rule}")
        bad = [t for t in self.tags if not TAG.match(t)]
        if bad:
            raise ConfigError(f"tag {bad[0]!r} must be {TAG.rule} (the tags a task's requires.tags names)")
        if isinstance(self.concurrency, bool) or not isinstance(self.concurrency, int) \
                or not 1 <= self.concurrency <= MAX_CONCURRENCY:
            raise ConfigError(f"concurrency must be an integer from 1 to {MAX_CONCURRENCY}, got {self.concurrency!r}")
        for name in ("heartbeat_s", "lease_s", "poll_max_s", "sample_every_s"):
            value = getattr(self, name)
            if not _number(value) or value <= 0:
                raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")
        if self.lease_s < 2 * self.heartbeat_s:
            raise ConfigError(f"lease_s ({self.lease_s:g}) must be at least twice heartbeat_s "
                              f"({self.heartbeat_s:g}), or one late heartbeat loses every lease")
        if not _number(self.drain_timeout_s) or self.drain_timeout_s < 0:
            raise ConfigError(f"drain_timeout_s must be a number >= 0, got {self.drain_timeout_s!r}")
        if not _number(self.distinct_grace_s):
            raise ConfigError(f"distinct_grace_s must be a number of seconds, got {self.distinct_grace_s!r}")
        if isinstance(self.gpus, bool) or not isinstance(self.gpus, int) or self.gpus < 0:
            raise ConfigError(f"gpus must be an integer >= 0, got {self.gpus!r}")
        if not _number(self.mem_gb) or self.mem_gb < 0:
            raise ConfigError(f"mem_gb must be a number >= 0, got {self.mem_gb!r}")
        if isinstance(self.quarantine_failures, bool) or not isinstance(self.quarantine_failures, int) \
                or self.quarantine_failures < 1:
            raise ConfigError(f"quarantine_failures must be an integer >= 1, got {self.quarantine_failures!r}")
        if not _number(self.quarantine_cooldown_s) or self.quarantine_cooldown_s < 0:
            raise ConfigError(f"quarantine_cooldown_s must be a number of seconds >= 0, got "
                              f"{self.quarantine_cooldown_s!r}")
        for name in ("inline_result_bytes", "data_cache_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive number of bytes, got {value!r}")
        if isinstance(self.prefetch, bool) or not isinstance(self.prefetch, int) \
                or not 1 <= self.prefetch <= MAX_PREFETCH:
            raise ConfigError(f"prefetch must be an integer from 1 to {MAX_PREFETCH}, got {self.prefetch!r}")
        if not _number(self.cpus) or self.cpus <= 0:
            raise ConfigError(f"cpus must be a positive number, got {self.cpus!r}")
        if not isinstance(self.gpu_mem_gb, tuple) or len(self.gpu_mem_gb) != self.gpus \
                or not all(_number(m) and m > 0 for m in self.gpu_mem_gb):
            raise ConfigError(f"gpu_mem_gb must give one positive memory size per GPU ({self.gpus}), got "
                              f"{self.gpu_mem_gb!r}")
        if self.max_temp_c is not None and (not _number(self.max_temp_c) or not 20 <= self.max_temp_c <= 150):
            raise ConfigError(f"max_temp_c must be from 20 to 150 °C, got {self.max_temp_c!r}")
        if not isinstance(self.burst, bool):
            raise ConfigError(f"burst must be true or false, got {self.burst!r}")
        return self

    def io_timeout_s(self) -> float:
        """How long one MongoDB call may block: under half a lease, so the heartbeat can still renew
        after a failed call, and about one heartbeat, so a lost connection shows within two."""
        return min(self.lease_s / 2, max(self.heartbeat_s, MIN_IO_TIMEOUT_S))

    def mongo_timeouts(self) -> dict:
        """The worker's MongoDB client options: no call blocks without end (socket, connect and
        server selection all time out within ``io_timeout_s``); the driver checks the replica set
        twice a second, so a new primary is found soon after it is writable."""
        io_ms = int(self.io_timeout_s() * 1000)
        return {"socketTimeoutMS": io_ms, "connectTimeoutMS": io_ms, "serverSelectionTimeoutMS": io_ms,
                "heartbeatFrequencyMS": 500}

    def fence_margin_s(self) -> float:
        """How long before its lease ends (by this machine's monotonic clock) an attempt that could
        not be renewed is killed, so two machines never run it at once."""
        return min(self.heartbeat_s, self.lease_s / 4)

    def quarantine_policy(self):
        from fsm.health import HealthPolicy

        return HealthPolicy(consecutive_failures=self.quarantine_failures, cooldown_s=self.quarantine_cooldown_s)

    def describe(self) -> str:
        """One log line; the URI's password is hidden."""
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        shown["mongo_uri"] = re.sub(r"//([^:/@]+):[^@/]*@", r"//\1:***@", self.mongo_uri)
        return ", ".join(f"{k}={v!r}" for k, v in shown.items())


def default(name: str):
    """The default of the ``WorkerConfig`` field ``name`` (the CLI's option defaults); a default
    the machine decides (name, concurrency, gpus, mem_gb, lease_s) is None here."""
    spec = {f.name: f for f in fields(WorkerConfig)}[name]
    if spec.default is not MISSING:
        return spec.default
    return None


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
