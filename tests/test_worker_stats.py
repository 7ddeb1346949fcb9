"""The machine snapshot and the worker's settings: no MongoDB needed."""
from __future__ import annotations

import json
import logging
import os

import bson
import pytest

from fsm.errors import ConfigError
from worker import stats
from worker.config import WorkerConfig

URI = "mongodb://127.0.0.1:27017/suanwang"


def has_nvidia_gpu() -> bool:
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml.nvmlDeviceGetCount() > 0
    except Exception:
        return False


def test_collect_gives_every_section_as_plain_data(tmp_path):
    snap = stats.collect(str(tmp_path / "not-yet" / "cache"))

    assert {"host", "addresses", "pid", "python", "cpu", "load", "mem", "disk", "temps", "gpus"} <= set(snap)
    assert snap["pid"] == os.getpid()
    assert snap["cpu"]["count"] >= 1 and len(snap["cpu"]["per_core"]) >= 1
    assert len(snap["load"]) == 3
    assert {"total", "used", "available", "percent"} <= set(snap["mem"])
    assert {"total", "used", "free", "percent"} <= set(snap["disk"])
    assert isinstance(snap["temps"], dict)
    assert not any(a.startswith("127.") for a in snap["addresses"])
    json.dumps(snap)
    bson.encode(snap)  # what the heartbeat stores


@pytest.mark.skipif(has_nvidia_gpu(), reason="this machine has an NVIDIA GPU")
def test_no_gpu_degrades_to_an_empty_list_said_once(caplog):
    # Given a machine without the NVIDIA library (pynvml raises NVMLError_LibraryNotFound)
    stats._nvml.update(tried=False, ok=False, note=None)
    caplog.set_level(logging.INFO, logger="suanwang.worker.stats")

    # When the snapshot is taken several times
    snaps = [stats.collect() for _ in range(3)]

    # Then there are no GPUs, a note says why, and the log says it once
    assert all(s["gpus"] == [] for s in snaps)
    assert "NVML" in snaps[0]["gpu_note"] or "nvidia" in snaps[0]["gpu_note"].lower()
    assert sum("GPUs: none" in r.getMessage() for r in caplog.records) == 1
    assert stats.gpu_count() == 0


def test_sample_keeps_the_chart_numbers():
    sample = stats.sample(stats.collect())
    assert set(sample) == {"cpu", "mem", "load", "gpus"}


def test_config_defaults_follow_the_machine_and_the_heartbeat(tmp_path):
    config = WorkerConfig(URI, heartbeat_s=0.5, cache_dir=str(tmp_path)).validate()

    assert config.lease_s == 1.5
    assert config.concurrency == (os.cpu_count() or 1)
    assert config.name
    assert config.gpus == stats.gpu_count()
    assert config.mem_gb > 0
    assert config.poll_max_s == 3.0 and config.drain_timeout_s == 30 and config.distinct_grace_s == 30
    assert WorkerConfig(URI, tags="b, a,a").tags == ("a", "b")
    assert WorkerConfig(URI).cache_dir.endswith(os.path.join(".suanwang", "cache"))


def test_config_hides_the_password_when_described():
    text = WorkerConfig("mongodb://alice:s3cret@db:27017/x").describe()
    assert "s3cret" not in text and "alice:***@" in text


@pytest.mark.parametrize("changes, words", [
    ({"mongo_uri": "http://db"}, "mongo_uri"),
    ({"name": "has space"}, "worker name"),
    ({"tags": ("ok", "bad tag")}, "tag"),
    ({"concurrency": 0}, "concurrency"),
    ({"heartbeat_s": 0}, "heartbeat_s"),
    ({"heartbeat_s": 2.0, "lease_s": 3.0}, "lease_s"),
    ({"poll_max_s": -1}, "poll_max_s"),
    ({"drain_timeout_s": -1}, "drain_timeout_s"),
    ({"gpus": -1}, "gpus"),
    ({"db_name": "a/b"}, "db_name"),
])
def test_config_validate_names_the_bad_setting(changes, words):
    config = WorkerConfig(**{"mongo_uri": URI, **changes})
    with pytest.raises(ConfigError, match=words):
        config.validate()


def test_config_is_frozen():
    config = WorkerConfig(URI)
    with pytest.raises(AttributeError):
        config.concurrency = 3
