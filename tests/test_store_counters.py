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
