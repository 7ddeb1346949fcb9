"""The worker's own lease deadlines (pure: monotonic times given), and its client timeouts."""
import logging

from worker.config import WorkerConfig
from worker.daemon import Trouble
from worker.fence import Fence


def test_an_attempt_expires_lease_minus_margin_after_its_last_covering_send():
    fence = Fence(lease_s=3.0, margin_s=0.75, on_expired=lambda *_: None)
    fence.hold("a", 100.0)
    fence.hold("b", 101.0)
    assert fence.expired(now=102.2) == []
    fence.renewed(["a"], 102.0)  # a renewal sent at 102 covered a only
    fence.renewed(["gone"], 102.0)  # an attempt not held is never added
    assert [(aid, round(s, 2)) for aid, s in fence.expired(now=103.3)] == [("b", 2.3)]
    assert fence.deadline("a") == 102.0 + 3.0 - 0.75
    assert [a for a, _ in fence.expired(now=104.3)] == ["a"]
    assert fence.deadline("a") is None and fence.expired(now=1e9) == []


def test_the_watch_thread_calls_back_once():
    import threading

    hit = threading.Event()
    calls = []
    fence = Fence(lease_s=0.3, margin_s=0.1, on_expired=lambda aid, s: (calls.append(aid), hit.set()))
    fence.start()
    try:
        import time

        fence.hold("x", time.monotonic())
        assert hit.wait(5)
    finally:
        fence.stop()
    assert calls == ["x"]


def test_client_timeouts_are_shorter_than_a_lease():
    for heartbeat in (0.5, 1.0, 2.0, 10.0):
        config = WorkerConfig("mongodb://h:1/", heartbeat_s=heartbeat, gpus=0, mem_gb=1)
        options = config.mongo_timeouts()
        for key in ("socketTimeoutMS", "connectTimeoutMS", "serverSelectionTimeoutMS"):
            assert options[key] <= config.lease_s * 1000 / 2
        assert config.fence_margin_s() < config.lease_s


def test_reachable_again_counts_from_the_last_success(caplog, monkeypatch):
    clock = iter([0.0, 5.0, 9.0, 12.0])
    monkeypatch.setattr("worker.daemon.time.monotonic", lambda: next(clock))
    trouble = Trouble()  # last success: 0
    with caplog.at_level(logging.INFO, "suanwang.worker"):
        trouble.failed("heartbeat", OSError("timed out"))  # first error seen at 5
        trouble.ok()  # back at 9
    assert "5.0 s after the last successful call" in caplog.text
    assert "reachable again after 9.0 s" in caplog.text
