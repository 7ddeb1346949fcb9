"""What this machine looks like right now: psutil and NVML readings in, one plain dict out.

``collect()`` never raises: a reading that fails is left out (or empty) and said once in the
log. Without an NVIDIA driver, ``gpus`` is ``[]`` and ``gpu_note`` says why.
"""
from __future__ import annotations

import logging
import os
import platform
import socket
import threading
from pathlib import Path
from typing import Any

import psutil

log = logging.getLogger("suanwang.worker.stats")

_nvml_lock = threading.Lock()
_nvml: dict[str, Any] = {"tried": False, "ok": False, "note": None}
_warned: set[str] = set()


def _once(key: str, message: str, *args) -> None:
    """Log a degraded reading the first time only."""
    if key not in _warned:
        _warned.add(key)
        log.info(message, *args)


def _nvml_init():
    """Initialise NVML once per process; returns the module, or None with ``_nvml['note']`` set."""
    with _nvml_lock:
        if not _nvml["tried"]:
            _nvml["tried"] = True
            try:
                import pynvml

                pynvml.nvmlInit()
                _nvml["ok"] = True
            except ImportError:
                _nvml["note"] = "nvidia-ml-py is not installed"
            except Exception as exc:  # pynvml.NVMLError_LibraryNotFound, _DriverNotLoaded, ...
                _nvml["note"] = f"no NVIDIA GPU readings: {type(exc).__name__}: {exc}".rstrip(": ")
            if _nvml["note"]:
                log.info("GPUs: none (%s)", _nvml["note"])
        if not _nvml["ok"]:
            return None
        import pynvml

        return pynvml


def _text(value) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def gpus() -> list[dict[str, Any]]:
    """One entry per NVIDIA GPU: index, name, util (%), mem_used and mem_total (bytes), temp (°C)."""
    nvml = _nvml_init()
    if nvml is None:
        return []
    found = []
    try:
        count = nvml.nvmlDeviceGetCount()
    except Exception as exc:
        _once("gpu-count", "GPU count unreadable: %s", exc)
        return []
    for index in range(count):
        entry: dict[str, Any] = {"index": index, "name": None, "util": None, "mem_used": None,
                                 "mem_total": None, "temp": None}
        try:
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            entry["name"] = _text(nvml.nvmlDeviceGetName(handle))
            mem = nvml.nvmlDeviceGetMemoryInfo(handle)
            entry.update(mem_used=int(mem.used), mem_total=int(mem.total))
            entry["util"] = int(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            entry["temp"] = int(nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))
        except Exception as exc:  # one unsupported query must not hide the device
            _once(f"gpu-{index}", "GPU %d: some readings unavailable: %s", index, exc)
        found.append(entry)
    return found


def gpu_count() -> int:
    return len(gpus())


def gpu_memory_gb() -> list[float]:
    """Each NVIDIA GPU's total memory in GB, by index (empty without NVML)."""
    return [round((g.get("mem_total") or 0) / 2**30, 2) or float(1 << 20) for g in gpus()]


def hottest(snapshot: dict[str, Any]) -> tuple[str, float] | None:
    """The hottest CPU sensor or GPU of a snapshot, as (name, °C); None without readings."""
    readings = [(f"cpu {name}", v) for name, v in (snapshot.get("temps") or {}).items()]
    readings += [(f"gpu {g.get('index')}", g.get("temp")) for g in snapshot.get("gpus") or []]
    readings = [(name, float(v)) for name, v in readings if isinstance(v, (int, float))]
    return max(readings, key=lambda item: item[1]) if readings else None


def gpu_note() -> str | None:
    """Why there are no GPU readings (None when NVML works)."""
    _nvml_init()
    return _nvml["note"]


def addresses() -> list[str]:
    """The host's non-loopback IPv4 addresses."""
    found = []
    try:
        for addrs in psutil.net_if_addrs().values():
            for addr in addrs:
                if addr.family == socket.AF_INET and addr.address and not addr.address.startswith("127."):
                    found.append(addr.address)
    except Exception as exc:
        _once("addresses", "network addresses unreadable: %s", exc)
    return sorted(set(found))


def temperatures() -> dict[str, float]:
    """{sensor: celsius}; ``{}`` where the platform exposes none."""
    reader = getattr(psutil, "sensors_temperatures", None)
    if reader is None:
        return {}
    try:
        sensors = reader() or {}
    except Exception as exc:
        _once("temps", "temperatures unreadable: %s", exc)
        return {}
    temps = {}
    for chip, entries in sensors.items():
        for i, entry in enumerate(entries):
            label = entry.label or (chip if len(entries) == 1 else str(i))
            key = chip if label == chip else f"{chip}/{label}"
            if entry.current is not None:
                temps[key.replace(".", "_")] = round(float(entry.current), 1)  # no dots in Mongo keys
    return temps


def _disk(path: str | None) -> dict[str, Any]:
    target = Path(path) if path else Path("/")
    while not target.exists() and target != target.parent:
        target = target.parent  # the cache may not exist yet: report the filesystem it will be on
    usage = psutil.disk_usage(str(target))
    return {"path": str(target), "total": usage.total, "used": usage.used, "free": usage.free,
            "percent": usage.percent}


def _section(name: str, reader, default):
    try:
        return reader()
    except Exception as exc:
        _once(name, "%s unreadable: %s", name, exc)
        return default


def _boot_id() -> str | None:
    """This machine's current boot (Linux): a worker record with it and a pid not running is stale."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


BOOT_ID = _boot_id()


def left_by_a_dead_daemon(record: dict) -> bool:
    """A worker document written on this very boot of this machine by a process that is gone
    (the daemon was killed): its name may be taken over at once."""
    return (BOOT_ID is not None and record.get("boot_id") == BOOT_ID and isinstance(record.get("pid"), int)
            and record["pid"] != os.getpid() and not psutil.pid_exists(record["pid"]))


def collect(cache_dir: str | None = None) -> dict[str, Any]:
    """A snapshot of this machine for the worker's whoami (JSON/BSON data only)."""
    def cpu():
        return {"percent": psutil.cpu_percent(interval=None),
                "per_core": psutil.cpu_percent(interval=None, percpu=True),
                "count": psutil.cpu_count() or os.cpu_count() or 1}

    def mem():
        vm = psutil.virtual_memory()
        return {"total": vm.total, "used": vm.used, "available": vm.available, "percent": vm.percent}

    snapshot = {
        "host": socket.gethostname(),
        "addresses": addresses(),
        "pid": os.getpid(),
        "boot_id": BOOT_ID,
        "python": platform.python_version(),
        "cpu": _section("cpu", cpu, {}),
        "load": _section("load", lambda: [round(x, 2) for x in os.getloadavg()], []),
        "mem": _section("memory", mem, {}),
        "disk": _section("disk", lambda: _disk(cache_dir), {}),
        "temps": temperatures(),
        "gpus": gpus(),
    }
    note = gpu_note()
    if not snapshot["gpus"]:
        snapshot["gpu_note"] = note or "no NVIDIA GPU found"
    return snapshot


def sample(snapshot: dict[str, Any]) -> dict[str, Any]:
    """The few numbers of a snapshot kept as history for the charts."""
    return {
        "cpu": snapshot.get("cpu", {}).get("percent"),
        "mem": snapshot.get("mem", {}).get("percent"),
        "load": (snapshot.get("load") or [None])[0],
        "gpus": [{"index": g["index"], "util": g["util"], "mem_used": g["mem_used"], "temp": g["temp"]}
                 for g in snapshot.get("gpus", [])],
    }
