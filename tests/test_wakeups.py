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


def test_a_publish_wakes_workers_first_and_is_acknowledged_once_durable(store):
    import pytest
    from pymongo.errors import AutoReconnect

    from fsm.store import server_now
    from fsm.store.spec import validate

    # The wake-up goes out as soon as the primary has the task; the majority wait comes after
    order = []
    made_durable = store.tasks._made_durable
    store.tasks._made_durable = lambda ids, at: (order.append(("durable", ids)), made_durable(ids, at))
    doc = store.tasks.document(validate({"function": "noop"}), "tester")
    assert store.tasks.insert([doc], on_stored=lambda: order.append("woken")) == [doc["_id"]]
    assert order == ["woken", ("durable", [doc["_id"]])]
    # A task gone before the wait (rolled back by a failover) is never acknowledged: a retryable error
    with pytest.raises(AutoReconnect, match="lost in a failover"):
        made_durable([doc["_id"], "never-stored"], server_now(store.db))
    # and a duplicate id still wakes for the others, makes them durable, then names the duplicate
    order.clear()
    again, fresh = dict(doc), store.tasks.document(validate({"function": "noop"}), "tester")
    with pytest.raises(Exception, match="already exist"):
        store.tasks.insert([again, fresh], on_stored=lambda: order.append("woken"))
    assert order == ["woken", ("durable", [fresh["_id"]])]
