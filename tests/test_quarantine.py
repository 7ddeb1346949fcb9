"""Machines judged by their results: a worker that keeps failing a function others run is
quarantined for it (claims skip it, /stats/resources and the whoami show it, an alert fires)."""
from datetime import timedelta

from fsm.health import HealthPolicy
from fsm.store import Claimant
from fsm.store.db import server_now
from fsm.store.spec import validate
from scheduler import notify
from scheduler.notify import Notifier, NotifyConfig
from tests.procs import wait_for

FN = "tests.chaos_functions:broken_on"
POLICY = HealthPolicy(consecutive_failures=3, cooldown_s=60)


def publish(store, *bodies):
    return store.tasks.insert([store.tasks.document(validate(b), "tester") for b in bodies])


def test_quarantine_needs_a_peer_that_succeeds(store):
    # A function failing on every machine is the code's fault: nobody is quarantined
    assert store.machines.record("a", [("f", False, 0.1)] * 5, POLICY) == []
    # Once another machine succeeds at it, the failing one is
    store.machines.record("b", [("f", True, 0.1)], POLICY)
    (q,) = store.machines.record("a", [("f", False, 0.1)], POLICY)
    assert q["function"] == "f" and "failed attempts in a row" in q["reason"]
    assert [d["function"] for d in store.machines.quarantined("a")] == ["f"]
    assert store.machines.quarantined("b") == []
    # While quarantined, its claims skip the function and take other work
    bad_fn, other = publish(store, {"function": "f"}, {"function": "noop", "priority": -1})
    claim = store.tasks.claim_next(Claimant("a", avoid_functions=("f",)))
    assert claim.task_id == other
    assert store.tasks.claim_next(Claimant("b")).task_id == bad_fn


def test_slow_machine_leaves_fresh_tasks_to_a_faster_peer(store):
    store.machines.record("fast", [("f", True, 0.1)] * 3, POLICY)
    store.machines.record("slow", [("f", True, 1.0)] * 3, POLICY)
    assert store.machines.slow_functions("slow", {"fast", "slow"}) == ["f"]
    assert store.machines.slow_functions("fast", {"fast", "slow"}) == []
    assert store.machines.slow_functions("slow", {"slow"}) == []  # the faster one is offline: no yielding
    (tid,) = publish(store, {"function": "f", "priority": 5})
    publish(store, {"function": "noop", "priority": 1})
    slow = Claimant("slow", slow_functions=("f",))
    assert store.tasks.claim_next(slow) is None  # fresh: left to the faster machine, and nothing lower taken
    wait_for(lambda: (c := store.tasks.claim_next(slow)) is not None and c.task_id == tid, timeout=5,
             what="the slow machine takes the task once it waited")


def test_a_broken_machine_stops_taking_the_function(cluster):
    # Given two workers, one of which fails every attempt of the function
    cluster.start_server()
    cluster.start_worker("good", concurrency=1, heartbeat=0.3)
    cluster.start_worker("bad", concurrency=1, heartbeat=0.3)
    http = cluster.http()
    # When tasks of it run on both
    first = cluster.publish([{"function": FN, "args": ["bad", 0.05], "max_retries": 20, "retry_backoff_s": 0}
                             for _ in range(12)])
    wait_for(lambda: all(http.get(f"{cluster.url}/tasks/{t}").json()["status"] == "succeeded" for t in first),
             timeout=90, what="the first batch")
    # Then the bad machine is quarantined for it: visible in the resources and the worker
    def quarantined():
        rows = http.get(f"{cluster.url}/stats/resources").json()["workers"]
        return {r["worker"]: r.get("quarantined") for r in rows}

    wait_for(lambda: [q["function"] for q in quarantined()["bad"]] == [FN], timeout=30, what="the quarantine")
    assert quarantined()["good"] == []
    assert "failed attempts in a row" in http.get(f"{cluster.url}/workers/bad").json()["quarantined"][0]["reason"]
    # and later tasks of the function run only on the good machine, while bad still takes other work
    later = cluster.publish([{"function": FN, "args": ["bad", 0.05], "max_retries": 0} for _ in range(6)])
    other = cluster.publish([{"function": "tests.chaos_functions:whoami", "args": [0.3]} for _ in range(4)])
    wait_for(lambda: all(http.get(f"{cluster.url}/tasks/{t}").json()["status"] in ("succeeded", "failed")
                         for t in later + other), timeout=60, what="the later tasks")
    for t in later:
        task = http.get(f"{cluster.url}/tasks/{t}").json()
        assert task["status"] == "succeeded" and [a["worker"] for a in task["attempts"]] == ["good"]
    ran_other = {http.get(f"{cluster.url}/tasks/{t}").json()["result"] for t in other}
    assert "bad" in ran_other


def test_quarantine_raises_an_alert(store):
    now = server_now(store.db)
    store.db.workers.insert_one({"_id": "m1", "state": "online", "quarantined": [
        {"function": "f", "until": now + timedelta(minutes=5), "reason": "3 failed attempts in a row"}]})
    notify.subscribe(store, {"event": "worker.quarantined", "channel": {"type": "webhook",
                                                                        "url": "https://hooks.example.org/x"}},
                     {"_id": "admin", "role": "admin"})
    notifier = Notifier(store, NotifyConfig(check_s=0.1))
    assert notifier.check_once(now) == 1
    (delivery,) = store.db.deliveries.find({})
    assert delivery["payload"]["subject"] == "m1:f" and delivery["payload"]["detail"]["reason"].startswith("3 failed")
    assert notifier.check_once(now + timedelta(seconds=30)) == 0  # one alert per episode


def test_one_flush_stores_every_functions_outcomes_and_starts_the_quarantine(store):
    from fsm.states import AttemptState
    from worker.health import HealthTracker

    store.machines.record("peer", [("flaky", True, 0.2)], POLICY)  # another machine succeeds at it
    tracker = HealthTracker("w1", POLICY)
    for function, state, seconds in [("flaky", AttemptState.FAILED, 0.1), ("fine", AttemptState.SUCCEEDED, 0.5),
                                     ("flaky", AttemptState.FAILED, 0.1), ("fine", AttemptState.SUCCEEDED, 1.5),
                                     ("other", AttemptState.SUCCEEDED, 2.0), ("flaky", AttemptState.FAILED, 0.1),
                                     ("fine", AttemptState.LOST, 9.0)]:  # a lost attempt is not the machine's verdict
        tracker.note(function, state, seconds)

    # One flush writes all three functions' records and starts the quarantine the third failure earns
    avoid, _slow = tracker.flush(store)
    assert avoid == ("flaky",)
    stats = {d["function"]: d for d in store.machines.coll.find({"worker": "w1"})}  # (local reads: w:1 writes)
    assert set(stats) == {"flaky", "fine", "other"}
    assert (stats["fine"]["attempts"], stats["fine"]["successes"], stats["fine"]["mean_s"]) == (2, 2, 1.0)
    assert stats["other"]["attempts"] == 1 and stats["flaky"]["quarantine_reason"]
    assert [q["function"] for q in tracker.view()] == ["flaky"]

    # Nothing new and nothing ending: the next heartbeat's flush reads and writes nothing
    assert tracker.flush(store) is None
    # A new outcome is written by the next flush, without re-reading the quarantines
    tracker.note("other", AttemptState.SUCCEEDED, 1.0)
    assert tracker.flush(store) is None
    assert store.machines.coll.find_one({"worker": "w1", "function": "other"})["attempts"] == 2
