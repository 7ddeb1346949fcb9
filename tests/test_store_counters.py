"""The counters behind /metrics equal what a full scan of the tasks says, after every kind of change."""
from __future__ import annotations

from collections import Counter
from datetime import timedelta

from fsm.store import Claimant
from fsm.store.spec import validate


def publish(store, body, n=1):
    return store.tasks.insert([store.tasks.document(validate(body), "t") for _ in range(n)])


def scanned(store):
    """The old /metrics definitions, by scanning every task and unwinding every attempt."""
    final, ended, timed = Counter(), Counter(), Counter()
    for doc in store.tasks.tasks.find():
        if doc["status"] in ("succeeded", "failed", "cancelled"):
            final[(doc["function"], doc["status"])] += 1
        if doc.get("started_at"):  # each time a started task reached a final status (a counter: requeues stay)
            timed[doc["function"]] += sum(h["to"] in ("succeeded", "failed", "cancelled") for h in doc["history"])
        for attempt in doc.get("attempts", []) + doc.get("previous_attempts", []):
            if attempt["state"] != "running":
                ended[(doc["function"], attempt["state"])] += 1
    return final, ended, timed


def counted(store):
    final, ended, timed = Counter(), Counter(), Counter()
    for doc in store.tasks.counters.all():
        for status, n in (doc.get("final") or {}).items():
            if n:
                final[(doc["_id"], status)] += n
        for state, n in (doc.get("attempts") or {}).items():
            ended[(doc["_id"], state)] += n
        timed[doc["_id"]] += sum((doc.get("duration") or {}).values())
    return final, ended, +timed


def test_counters_follow_every_change(store):
    ok = publish(store, {"function": "echo"}, 5)
    flaky = publish(store, {"function": "fail", "max_retries": 1, "retry_backoff_s": 0})[0]
    pair = publish(store, {"function": "noop", "redundancy": 2, "quorum": 2})[0]
    doomed = publish(store, {"function": "noop"}, 2)
    w1, w2 = Claimant("w1", distinct_grace_s=-1), Claimant("w2", distinct_grace_s=-1)

    def lose_lease(task_id):  # the lease moved into the past; the reaper decides
        store.tasks.tasks.update_one({"_id": task_id}, {"$set": {
            "attempts.$[a].lease_until": store.now() - timedelta(seconds=5)}}, array_filters=[{"a.state": "running"}])
        assert store.tasks.requeue_expired() == 1

    store.tasks.cancel(doomed[0], "t")  # a queued task cancelled
    flaky_runs = 0
    while (claim := store.tasks.claim_next(w1)) is not None:
        if claim.task_id in ok:
            store.tasks.finish_attempt(claim.task_id, claim.attempt_id, "succeeded", result=1, worker="w1")
        elif claim.task_id == flaky:
            flaky_runs += 1
            if flaky_runs == 1:  # an error, retried at once; then a lost lease exhausts the retries
                store.tasks.finish_attempt(flaky, claim.attempt_id, "failed", error="boom", worker="w1")
            else:
                lose_lease(flaky)
        elif claim.task_id == pair:
            store.tasks.finish_attempt(pair, claim.attempt_id, "succeeded", result=1, worker="w1")
        else:
            store.tasks.cancel(claim.task_id, "t")  # a running task cancelled: its attempt ends
    claim = store.tasks.claim_next(w2)  # the pair's second slot: a different result, so disputed
    store.tasks.finish_attempt(pair, claim.attempt_id, "succeeded", result=2, worker="w2")
    assert store.tasks.get(flaky)["status"] == "failed"
    store.tasks.requeue(flaky, "admin")  # failed -> queued: leaves the failed count
    store.tasks.requeue(doomed[0], "admin")

    assert store.tasks.get(pair)["reason"] == "disputed"
    assert counted(store) == scanned(store)
    final, ended, _ = counted(store)
    assert final[("echo", "succeeded")] == 5 and final[("noop", "failed")] == 1 and final[("fail", "failed")] == 0
    assert ended[("fail", "lost")] == 1 and ended[("noop", "cancelled")] == 1


def counts_by_scan(store):
    """Tasks per status, by reading every task (the definition /stats keeps)."""
    counts = dict.fromkeys(("pending", "queued", "running", "succeeded", "failed", "cancelled"), 0)
    for doc in store.tasks.tasks.find({}, {"status": 1}):
        counts[doc["status"]] += 1
    return counts


def test_stats_counts_come_from_the_counters_and_equal_the_tasks_after_a_mixed_workload(store):
    from scheduler import service

    ok = publish(store, {"function": "echo"}, 6)
    publish(store, {"function": "later", "run_after": "2099-01-01T00:00:00Z"}, 2)
    flaky = publish(store, {"function": "fail", "max_retries": 0})[0]
    doomed = publish(store, {"function": "noop"}, 3)
    store.tasks.cancel(doomed[0], "t")
    who = Claimant("w1", distinct_grace_s=-1)
    running = []
    while (claim := store.tasks.claim_next(who)) is not None:
        if claim.task_id in ok[:5]:
            store.tasks.finish_attempt(claim.task_id, claim.attempt_id, "succeeded", result=1, worker="w1")
        elif claim.task_id == flaky:
            store.tasks.finish_attempt(flaky, claim.attempt_id, "failed", error="boom", worker="w1")
        elif claim.task_id == doomed[1]:
            store.tasks.cancel(claim.task_id, "t")
        else:
            running.append(claim.task_id)
    store.tasks.requeue(flaky, "admin")  # failed -> queued
    store.tasks.requeue(doomed[0], "admin")  # cancelled -> queued
    # Retention moves two finished tasks out and deletes one: they leave the counts too
    store.tasks.tasks.update_many({"_id": {"$in": ok[:3]}}, {"$set": {"finished_at": store.now() - timedelta(days=9)}})
    assert store.retention.archive_finished(7 * 86400, "archive", batch=2, max_batches=1) == 2
    assert store.retention.archive_finished(7 * 86400, "delete") == 1

    expected = counts_by_scan(store)
    assert expected["succeeded"] == 2 and expected["cancelled"] == 1 and expected["pending"] == 2
    assert expected["queued"] == 2 and expected["running"] == len(running) == 2
    assert store.reads._counts_from_counters() == expected  # the flat path answers, and rightly
    stats = service.stats(store)
    assert stats["counts"] == expected and stats["total"] == sum(expected.values()) == 9
    assert stats["queue_depth"] == expected["queued"] + expected["pending"]


def test_counters_that_do_not_add_up_fall_back_to_counting_and_are_rebuilt_at_start(store, db_uri):
    from scheduler.config import ServerConfig
    from scheduler.server import Server

    ok = publish(store, {"function": "echo"}, 4)
    who = Claimant("w1", distinct_grace_s=-1)
    claims = [store.tasks.claim_next(who) for _ in ok]
    for claim in claims[:3]:
        store.tasks.finish_attempt(claim.task_id, claim.attempt_id, "succeeded", result=1, worker="w1")
    assert store.reads.ensure_counters() is False  # in step: nothing to do
    # A task finished by a process killed before its counter's increment
    store.tasks.tasks.update_one({"_id": claims[3].task_id}, {"$set": {"status": "succeeded"}, "$push": {
        "history": {"from": "running", "to": "succeeded", "at": store.now(), "by": "w1"}}})
    expected = counts_by_scan(store)
    assert expected["succeeded"] == 4
    assert store.reads._counts_from_counters() is None  # they no longer add up to the collection...
    assert store.reads.status_counts() == expected  # ...so /stats counts from the index: still right
    assert store.reads.ensure_counters() is True
    assert store.reads._counts_from_counters() == expected  # recounted: the flat path again

    # An upgrade: tasks but no counters. A server's start recounts them.
    store.tasks.counters.counters.drop()
    assert store.reads._counts_from_counters() is None
    Server(ServerConfig(mongo_uri=db_uri, admin_token="counters-test-admin", run_scheduler=False, port=0), store).stop()
    assert store.reads._counts_from_counters() == expected
    assert counted(store)[0] == scanned(store)[0]
