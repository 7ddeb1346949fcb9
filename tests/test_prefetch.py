"""Claiming ahead and group commit: several short tasks per round trip, written together, and
unstarted ones handed back without counting a failure."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest

from fsm.decide import decide_release
from fsm.errors import InvalidTransition
from fsm.states import AttemptState, Status
from fsm.store import Claimant, Success
from fsm.store.spec import validate
from worker.config import WorkerConfig
from worker.daemon import Daemon
from worker.prefetch import MIN_RUNS, SHORT_S, WINDOW_S, ShortFunctions
from tests.procs import wait_for

TF = "tests.task_functions"
WHO = Claimant(name="w1", host="h1", distinct_grace_s=-1)


def publish(store, bodies, user="tester") -> list[str]:
    ids = store.tasks.insert([store.tasks.document(validate(b), user) for b in bodies])
    store.wakeups.signal()
    return ids


# ------------------------------------------------------------------ pure decisions
def test_only_functions_measured_short_are_claimed_ahead():
    short = ShortFunctions(prefetch=8)
    short.note("quick", 5.0)  # the first run imports the code: not counted
    for _ in range(MIN_RUNS - 1):
        short.note("quick", 0.001)
    assert short.ahead("quick") == (0, [])  # not enough runs yet
    short.note("quick", 0.001)
    for _ in range(MIN_RUNS + 1):
        short.note("slow", 10 * SHORT_S)
    assert short.ahead("quick") == (7, ["quick"])
    assert short.ahead("slow") == (0, [])  # a long task never brings others with it
    # a short function near the limit bounds how many wait behind one another
    for _ in range(MIN_RUNS + 1):
        short.note("medium", SHORT_S * 0.9)
    assert short.ahead("quick") == (int(WINDOW_S / (SHORT_S * 0.9)), ["medium", "quick"])
    assert ShortFunctions(prefetch=1).ahead("quick") == (0, [])


def running_task(*attempts, **fields) -> dict:
    return {"_id": "t", "status": "running", "open_slots": 0, "failures": 1, "workers": [a["worker"] for a in attempts],
            "attempts": list(attempts), **fields}


def test_a_released_attempt_queues_its_task_again_without_counting_a_failure():
    task = running_task({"id": "a1", "worker": "w1", "host": "h1", "state": "running"}, distinct_hosts=True,
                        hosts=["h1"])
    plan = decide_release(task, "a1", "handed back unstarted by worker w1")
    assert plan.to == Status.QUEUED and plan.reason == "handed back unstarted"
    assert plan.attempts["a1"]["state"] == AttemptState.RELEASED.value and plan.ended == {"a1"}
    assert plan.fields == {"workers": [], "open_slots": 1, "hosts": []}  # no "failures": unchanged


def test_a_released_attempt_beside_a_running_one_leaves_the_task_running():
    task = running_task({"id": "a1", "worker": "w1", "state": "running"},
                        {"id": "a2", "worker": "w2", "state": "running"})
    plan = decide_release(task, "a1", "why")
    assert plan.to is None and plan.fields["open_slots"] == 1 and plan.fields["workers"] == ["w2"]


def test_only_a_running_attempt_of_a_running_task_can_be_released():
    with pytest.raises(InvalidTransition):
        decide_release(running_task({"id": "a1", "worker": "w1", "state": "succeeded"}), "a1", "why")
    with pytest.raises(InvalidTransition):
        decide_release({**running_task({"id": "a1", "worker": "w1", "state": "running"}), "status": "queued"},
                       "a1", "why")


# ---------------------------------------------------------------------- the store
def test_claim_ahead_takes_the_next_tasks_while_they_are_short_and_simple(store):
    # Given plain noop tasks, an echo between them, a capped owner's task last, a GPU task above all
    plain = publish(store, [{"function": "noop", "priority": p} for p in (1, 5, 3)])
    [echo] = publish(store, [{"function": "echo", "priority": 2}])
    publish(store, [{"function": "noop", "priority": 0}], user="capped")
    publish(store, [{"function": "noop", "priority": 9, "requires": {"gpus": 1}}])  # not this worker's

    # When a worker claims ahead for noop, with an owner at a running quota
    claims = store.tasks.claim_ahead(WHO, 10, ["noop"], stop_owners=["capped"])

    # Then it gets the noop tasks up to the first task it may not claim ahead: nothing urgent is passed over
    assert [c.task_id for c in claims] == [plain[1], plain[2]]
    for claim in claims:
        stored = store.tasks.get(claim.task_id)
        assert stored["status"] == Status.RUNNING and stored["workers"] == ["w1"]
        assert [a["id"] for a in stored["attempts"]] == [claim.attempt_id]
        assert claim.task["attempts"] == [{"id": claim.attempt_id, "number": 1}]
        assert claim.task["function"] == "noop" and claim.task["status"] == "running" and "rev" not in claim.task
    assert store.tasks.claim_ahead(WHO, 10, ["noop"], stop_owners=["capped"]) == []  # the echo comes next
    assert store.tasks.claim_next(WHO).task_id == echo
    assert [c.task_id for c in store.tasks.claim_ahead(WHO, 10, ["noop"], stop_owners=["capped"])] == [plain[0]]
    assert store.tasks.claim_ahead(WHO, 10, ["noop"], stop_owners=["capped"]) == []
    assert len(store.tasks.claim_ahead(WHO, 10, ["noop"])) == 1  # the capped owner's, once allowed

    # Tasks that must run alone in a worker are never claimed ahead
    for body in ({"redundancy": 2}, {"requires": {"cpus": 2}}, {"distinct_hosts": True, "redundancy": 2}):
        publish(store, [{"function": "noop", "priority": 9, **body}])
        assert store.tasks.claim_ahead(WHO, 10, ["noop"]) == []
        assert store.tasks.claim_next(WHO) is not None
    assert store.tasks.claim_ahead(WHO, 0, ["noop"]) == [] and store.tasks.claim_ahead(WHO, 5, []) == []


def test_concurrent_claims_ahead_never_take_a_task_twice(store):
    ids = publish(store, [{"function": "noop", "priority": i % 3} for i in range(300)])
    taken: dict[str, list[str]] = {}

    def claimer(name):
        who = Claimant(name=name, distinct_grace_s=-1)
        mine = taken[name] = []
        while True:
            got = store.tasks.claim_ahead(who, 7, ["noop"])
            first = store.tasks.claim_next(who)
            got += [first] if first else []
            if not got:
                return
            mine += [c.task_id for c in got]

    threads = [threading.Thread(target=claimer, args=(f"c{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everyone = [task for mine in taken.values() for task in mine]
    assert sorted(everyone) == sorted(ids)  # each exactly once
    for name, mine in taken.items():
        for task_id in mine[:20]:
            assert store.tasks.get(task_id)["workers"] == [name]


def test_finish_successes_writes_a_group_and_returns_what_it_could_not(store):
    # Given three claimed run-once tasks, a redundant one and one whose lease has ended
    publish(store, [{"function": "noop"}, {"function": "echo"}, {"function": "echo"}, {"function": "echo"}])
    publish(store, [{"function": "echo", "priority": -1, "redundancy": 2}])
    claims = [store.tasks.claim_next(WHO) for _ in range(5)]
    expired = claims[3]
    store.db.tasks.update_one({"_id": expired.task_id}, {"$set": {
        "attempts.0.lease_until": datetime.now(timezone.utc) - timedelta(seconds=5)}})
    before = store.db.task_counters.find_one({"_id": "echo"}) or {}

    # When their successes are recorded together
    ends = [Success(c.task_id, c.attempt_id, result=i, logs="out" if i == 1 else None,
                    usage={"cpu_s": 0.01, "gpu_s": 0}) for i, c in enumerate(claims)]
    left = store.tasks.finish_successes(ends, "w1")

    # Then the plain ones succeeded with their results; the others are left to the one-by-one way
    assert [e.task_id for e in left] == [expired.task_id, claims[4].task_id]
    for i, claim in enumerate(claims[:3]):
        task = store.tasks.get(claim.task_id)
        assert task["status"] == Status.SUCCEEDED and task["result"] == i and task["finished_at"]
        attempt = task["attempts"][0]
        assert attempt["state"] == "succeeded" and attempt["cpu_s"] == 0.01 and attempt["ended_at"]
        assert task["history"][-1]["to"] == "succeeded" and task["history"][-1]["by"] == "w1"
    assert store.tasks.get(claims[1].task_id)["attempts"][0]["logs"] == "out"
    assert store.tasks.get(expired.task_id)["status"] == Status.RUNNING
    # and the counters moved once per task written
    after = store.db.task_counters.find_one({"_id": "echo"})
    assert after["final"]["succeeded"] - (before.get("final") or {}).get("succeeded", 0) == 2
    assert store.db.task_counters.find_one({"_id": "noop"})["final"]["succeeded"] == 1
    assert store.tasks.finish_successes([], "w1") == []
    # A second try of the same group writes nothing twice
    assert {e.task_id for e in store.tasks.finish_successes(ends[:3], "w1")} == {c.task_id for c in claims[:3]}
    assert store.db.task_counters.find_one({"_id": "noop"})["final"]["succeeded"] == 1


def test_finish_successes_stores_any_json_result_as_given(store):
    odd = [{"$set": {"status": "failed"}, "a.b": "$status", "": None}, "$$NOW", [1.5, None, {"$literal": 2}]]
    publish(store, [{"function": "echo"} for _ in odd])
    claims = [store.tasks.claim_next(WHO) for _ in odd]
    assert store.tasks.finish_successes([Success(c.task_id, c.attempt_id, result=r) for c, r in zip(claims, odd)],
                                        "w1") == []
    for claim, result in zip(claims, odd):
        task = store.tasks.get(claim.task_id)
        assert task["status"] == "succeeded" and task["result"] == result == task["attempts"][0]["result"]
        assert "_end" not in task and "_aid" not in task


def test_finish_successes_releases_dependents(store):
    [first] = publish(store, [{"function": "noop"}])
    [second] = publish(store, [{"function": "noop", "depends_on": [first]}])
    claim = store.tasks.claim_next(WHO)
    assert claim.task_id == first
    assert store.tasks.finish_successes([Success(first, claim.attempt_id, result=None)], "w1") == []
    assert store.tasks.get(second)["status"] == Status.QUEUED


def test_a_released_attempt_is_claimable_again_and_costs_no_retry(store):
    [task_id] = publish(store, [{"function": "noop", "max_retries": 0}])
    [claim] = store.tasks.claim_ahead(WHO, 3, ["noop"])
    plan = store.tasks.release_attempt(task_id, claim.attempt_id, "w1", "handed back unstarted by worker w1")
    assert plan.to == Status.QUEUED
    task = store.tasks.get(task_id)
    assert task["status"] == Status.QUEUED and task.get("failures", 0) == 0 and task["open_slots"] == 1
    assert task["attempts"][0]["state"] == "released" and task["workers"] == []
    # The same worker may claim it again, and it runs as the second attempt
    again = store.tasks.claim_next(WHO)
    assert again.task_id == task_id
    store.tasks.finish_attempt(task_id, again.attempt_id, "succeeded", result=None, worker="w1")
    assert store.tasks.get(task_id)["status"] == Status.SUCCEEDED
    # An attempt that no longer runs has nothing to hand back
    assert store.tasks.release_attempt(task_id, claim.attempt_id, "w1", "again") is None
    assert store.tasks.release_attempt("no-such-task", "x", "w1", "gone") is None
    assert store.db.task_counters.find_one({"_id": "noop"})["attempts"]["released"] == 1


def test_a_lost_lease_of_a_task_claimed_ahead_is_not_counted_once(store):
    # Given a task that may not be retried, claimed ahead by a worker that then dies
    [task_id] = publish(store, [{"function": "noop", "max_retries": 0}])
    [claim] = store.tasks.claim_ahead(WHO, 3, ["noop"])
    assert store.tasks.get(task_id)["attempts"][0]["ahead"] is True

    def expire():
        store.db.tasks.update_one({"_id": task_id, "attempts.state": "running"}, {"$set": {
            "attempts.$.lease_until": datetime.now(timezone.utc) - timedelta(seconds=5)}})
        return store.tasks.requeue_expired()

    # When its lease expires, the task is queued again at once, no failure counted
    assert expire() == 1
    task = store.tasks.get(task_id)
    assert task["status"] == Status.QUEUED and task.get("failures", 0) == 0 and task["workers"] == []
    assert task["attempts"][0]["state"] == "lost" and "lease expired" in task["attempts"][0]["error"]
    assert "not counted" in task["history"][-1]["reason"]
    # It is never claimed ahead again: its next attempt is a plain claim, and that loss counts
    assert store.tasks.claim_ahead(WHO, 3, ["noop"]) == []
    again = store.tasks.claim_next(WHO)
    assert again.task_id == task_id and "ahead" not in store.tasks.get(task_id)["attempts"][1]
    assert expire() == 1
    task = store.tasks.get(task_id)
    assert task["status"] == Status.FAILED and task["failures"] == 1 and task["reason"] == "retries_exhausted"


# --------------------------------------------------------------------- the worker
def make_config(db_uri, tmp_path, **overrides) -> WorkerConfig:
    options = dict(mongo_uri=db_uri, name="w1", concurrency=2, heartbeat_s=0.2, burst=False,
                   cache_dir=str(tmp_path / "cache"), drain_timeout_s=10, poll_max_s=0.2)
    options.update(overrides)
    return WorkerConfig(**options)


class Counting:
    """Counts the tasks a daemon's store claims ahead (the real call underneath)."""

    def __init__(self, store):
        self.claimed = 0
        self._real = store.tasks.claim_ahead
        store.tasks.claim_ahead = self

    def __call__(self, *args, **kwargs):
        got = self._real(*args, **kwargs)
        self.claimed += len(got)
        return got


def test_a_busy_worker_claims_short_tasks_ahead_and_runs_them_all(store, db_uri, tmp_path):
    daemon = Daemon(make_config(db_uri, tmp_path), store)
    counting = Counting(store)
    runner = threading.Thread(target=daemon.run, daemon=True)
    runner.start()
    try:
        # Once it has measured noop and echo as short ...
        warm = publish(store, [{"function": "noop"}] * 4 + [{"function": "echo", "args": [i]} for i in range(4)])
        wait_for(lambda: all(store.tasks.get(t)["status"] == Status.SUCCEEDED for t in warm), what="warm-up")
        # ... a burst of 300 runs with tasks claimed ahead, each once, with its own result
        ids = publish(store, [{"function": "echo", "args": [i]} for i in range(300)])
        wait_for(lambda: store.db.tasks.count_documents({"_id": {"$in": ids}, "status": "succeeded"}) == 300,
                 timeout=60, what="the burst")
    finally:
        daemon.stop()
        runner.join(30)
    assert counting.claimed > 0
    for task in store.db.tasks.find({"_id": {"$in": ids}}):
        assert task["result"] == ids.index(task["_id"]) and [a["state"] for a in task["attempts"]] == ["succeeded"]
    assert store.db.task_counters.find_one({"_id": "echo"})["final"]["succeeded"] == 304


def test_a_draining_worker_hands_back_what_it_claimed_ahead(store, db_uri, tmp_path):
    # Given a worker with one slot that takes sleep_marked for a short function
    marker = tmp_path / "started"
    daemon = Daemon(make_config(db_uri, tmp_path, concurrency=1), store)
    function = f"{TF}:sleep_marked"
    for _ in range(MIN_RUNS + 1):
        daemon.short.note(function, 0.001)
    runner = threading.Thread(target=daemon.run, daemon=True)
    runner.start()
    try:
        warm = publish(store, [{"function": "noop"}])  # its last claim found work: the next claims ahead
        wait_for(lambda: store.tasks.get(warm[0])["status"] == Status.SUCCEEDED, what="warm-up")
        ids = publish(store, [{"function": function, "args": [str(marker), 0.2], "max_retries": 0}] * 4)
        # the first is claimed alone after an idle wait; the slot's next claim takes the rest ahead
        wait_for(marker.exists, what="the first task to start")
        wait_for(lambda: len(daemon.running_ids()) >= 2, 10, what="tasks claimed ahead behind a running one")
    finally:
        daemon.stop()  # drain: the running one finishes, the others go back
        runner.join(30)
    tasks = [store.tasks.get(t) for t in ids]
    finished = [t for t in tasks if t["status"] == Status.SUCCEEDED]
    assert finished, "the running attempt finished during the drain"
    handed_back = [t for t in tasks if t["attempts"] and t["attempts"][-1]["state"] == "released"]
    for task in handed_back:
        assert task["status"] == Status.QUEUED and task.get("failures", 0) == 0 and task["open_slots"] == 1
        assert "handed back unstarted by worker w1" in task["attempts"][-1]["error"]
    assert all(t["status"] in (Status.SUCCEEDED, Status.QUEUED) for t in tasks)
    assert handed_back, "tasks claimed ahead were handed back"


def test_a_killed_worker_loses_none_of_the_tasks_it_claimed_ahead(store, cluster, tmp_path):
    # Given tasks that may not be retried: quick ones first (the worker measures the function as
    # short), then one that blocks its only slot, then ten more it claims ahead meanwhile
    def body(marker, seconds, priority):
        return {"function": f"{TF}:sleep_once", "args": [str(tmp_path / marker), seconds], "priority": priority,
                "max_retries": 0}

    quick = publish(store, [body(f"warm{i}", 0, 9) for i in range(5)])
    [blocker] = publish(store, [body("blocker", 60, 5)])
    after = publish(store, [body(f"after{i}", 0, 1) for i in range(10)])
    w1 = cluster.start_worker("w1", concurrency=1)
    wait_for((tmp_path / "blocker").exists, 30, what="the blocking task to start")
    ahead = lambda: store.db.tasks.count_documents({"_id": {"$in": after}, "attempts.ahead": True})  # noqa: E731
    wait_for(lambda: ahead() > 0, 10, what="tasks claimed ahead behind the blocking one")
    held = ahead()

    # When the worker is killed, and its leases end
    w1.kill()
    wait_for(lambda: store.tasks.requeue_expired() == 0 and
             store.db.tasks.count_documents({"status": "running"}) == 0, 20, what="the leases to end")

    # Then another worker runs every task: none failed for the attempts the dead one held
    cluster.start_worker("w2", concurrency=1)
    everything = quick + [blocker] + after
    wait_for(lambda: store.db.tasks.count_documents({"_id": {"$in": everything}, "status": "succeeded"}) == 16,
             60, what="every task to succeed")
    assert held >= 1
    assert store.tasks.get(blocker)["result"] == "done on retry"
    lost = list(store.db.tasks.find({"attempts.state": "lost"}))
    assert len(lost) >= held and all(t.get("failures", 0) == 0 for t in lost)
    assert all(t["attempts"][-1]["worker"] == "w2" for t in lost)
