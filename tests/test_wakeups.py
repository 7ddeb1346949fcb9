"""Wake-up signals reach an idle claimant in the order they were stored, whichever process sent them."""
from bson import ObjectId

from fsm.store import Store


def test_a_signal_from_another_process_is_not_skipped_after_a_reopen(db, monkeypatch):
    """Ids made by the senders order by each process's random bytes within a second: a cursor
    reopened after a signal from a "high" process would skip a later one from a "low" process."""
    server, worker, watcher = Store(db), Store(db), Store(db)
    assert not watcher.wakeups.wait(0.05)  # the cursor starts here
    monkeypatch.setattr(ObjectId, "_ObjectId__random", b"\xff" * 5)  # as if another machine's process
    worker.wakeups.signal("retry")
    assert watcher.wakeups.wait(2)
    monkeypatch.setattr(ObjectId, "_ObjectId__random", b"\x00" * 5)
    server.wakeups.signal(lanes=["cpu"])
    assert watcher.wakeups.wait(0.5)  # another timeout: the cursor is reopened from the last one seen
    assert not watcher.wakeups.wait(0.05)  # and each signal wakes it once
