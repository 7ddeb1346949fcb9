"""The claim: one atomic write, each task to exactly one claimant, in priority order."""
import json
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest

from fsm.errors import InvalidTransition, ValidationError
from fsm.store import Claimant
from fsm.store.schema import CLAIM_INDEX
from fsm.store.spec import validate


def publish(store, bodies, user="tester"):
    return store.tasks.insert([store.tasks.document(validate(b), user) for b in bodies])


def drain(store, who):
    out = []
    while (claim := store.tasks.claim_next(who)) is not None:
        out.append(claim)
        store.tasks.finish_attempt(claim.task_id, claim.attempt_id, "succeeded", result=1, worker=who.name)
    return out


def test_concurrent_threads_and_processes_claim_each_task_once(store, mongo, db_name):
    # Given 2,000 queued tasks
    ids = []
    for chunk in range(4):
        ids += publish(store, [{"function": "noop", "priority": i % 7} for i in range(500)])
    results: dict[str, list] = {}

    # When 8 threads and 4 processes claim and finish concurrently
    def thread_main(n):
        results[f"t{n}"] = [c.task_id for c in drain(store, Claimant(name=f"t{n}", distinct_grace_s=-1))]

    procs = [subprocess.Popen([sys.executable, str(Path(__file__).with_name("claim_worker.py")), mongo.uri,
                               f"p{n}", db_name], stdout=subprocess.PIPE, text=True) for n in range(4)]
    threads = [threading.Thread(target=thread_main, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for n, p in enumerate(procs):
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0
        results[f"p{n}"] = json.loads(out)

    # Then every task was claimed by exactly one claimant and succeeded once
    claimed = Counter(tid for got in results.values() for tid in got)
    assert set(claimed) == set(ids)
    assert max(claimed.values()) == 1
    assert sum(1 for got in results.values() if got) >= 2  # the work really was shared
    assert store.tasks.counts_by_status()["succeeded"] == 2000
    one = store.tasks.get(ids[0])
    assert len(one["attempts"]) == 1 and one["attempts"][0]["state"] == "succeeded"


def test_priority_then_age(store):
    ids = publish(store, [{"function": "echo", "args": [i], "priority": p} for i, p in enumerate([1, 5, 5, -2, 9])])
    order = [c.task_id for c in drain(store, Claimant("w"))]
    assert order == [ids[4], ids[1], ids[2], ids[0], ids[3]]


def test_disabled_tasks_are_not_claimed_until_enabled(store):
    [off] = publish(store, [{"function": "noop", "is_enabled": False, "priority": 100}])
    [on] = publish(store, [{"function": "noop"}])
    assert [c.task_id for c in drain(store, Claimant("w"))] == [on]
    store.tasks.update_fields(off, {"is_enabled": True}, "admin")
    assert [c.task_id for c in drain(store, Claimant("w"))] == [off]


def test_reprioritising_takes_effect_on_next_claim(store):
    a, b = publish(store, [{"function": "noop", "priority": 5}, {"function": "noop", "priority": 1}])
    store.tasks.update_fields(b, {"priority": 10}, "admin")
    assert store.tasks.claim_next(Claimant("w")).task_id == b
    with pytest.raises(ValidationError):
        store.tasks.update_fields(a, {"priority": "high"}, "admin")
    with pytest.raises(ValidationError):
        store.tasks.update_fields(a, {"status": "succeeded"}, "admin")


def test_requirements_are_honoured(store):
    gpu, tagged, plain = publish(store, [{"function": "noop", "requires": {"gpus": 1}},
                                         {"function": "noop", "requires": {"tags": ["big"]}},
                                         {"function": "noop"}])
    cpu_worker = Claimant("cpu", gpus=0, tags=("small",))
    assert [c.task_id for c in drain(store, cpu_worker)] == [plain]
    big = Claimant("big", gpus=0, tags=("big", "x"))
    assert [c.task_id for c in drain(store, big)] == [tagged]
    assert store.tasks.get(gpu)["status"] == "queued"  # no GPU anywhere: it waits
    assert [c.task_id for c in drain(store, Claimant("g", gpus=2))] == [gpu]


def test_claim_and_lease_scan_use_their_indexes(store):
    publish(store, [{"function": "noop", "priority": i % 3} for i in range(50)])
    plan = store.db.tasks.find(store.tasks.claim_filter(Claimant("w"))).sort(
        [("priority", -1), ("created_at", 1)]).hint(CLAIM_INDEX).limit(1).explain()["queryPlanner"]["winningPlan"]
    text = json.dumps(plan)
    assert '"IXSCAN"' in text and '"SORT"' not in text and "COLLSCAN" not in text
    natural = store.db.tasks.find(store.tasks.claim_filter(Claimant("w"))).sort(
        [("priority", -1), ("created_at", 1)]).limit(1).explain()["queryPlanner"]["winningPlan"]
    assert CLAIM_INDEX in json.dumps(natural)  # the planner picks it without a hint too
    from fsm.store.db import server_now
    lease = store.db.tasks.find({"status": "running", "attempts": {"$elemMatch": {
        "state": "running", "lease_until": {"$lt": server_now(store.db)}}}}).explain()["queryPlanner"]["winningPlan"]
    assert "COLLSCAN" not in json.dumps(lease, default=str)


def test_cancel_of_running_task_refuses_the_late_result(store):
    [tid] = publish(store, [{"function": "noop"}])
    claim = store.tasks.claim_next(Claimant("w"))
    store.tasks.cancel(tid, "admin")
    from fsm.errors import LeaseLost
    with pytest.raises(LeaseLost):
        store.tasks.finish_attempt(tid, claim.attempt_id, "succeeded", result=1, worker="w")
    task = store.tasks.get(tid)
    assert task["status"] == "cancelled" and task["attempts"][0]["state"] == "cancelled"
    with pytest.raises(InvalidTransition):
        store.tasks.cancel(tid, "admin")


def test_prefers_versions_already_checked_out_without_starving(store):
    # Given two same-priority tasks, the older one of a version this worker lacks
    cold, warm = publish(store, [{"function": "echo", "version": "2.0"}, {"function": "echo", "version": "1.0"}])
    urgent, = publish(store, [{"function": "echo", "version": "3.0", "priority": 5}])
    who = Claimant("w", prefer_versions=("echo@1.0",))
    # Then a more urgent task still goes first; within a band the ready version is preferred
    assert [store.tasks.claim_next(who).task_id for _ in range(3)] == [urgent, warm, cold]
    # And a task waiting longer than the window is never passed over
    old, fresh = publish(store, [{"function": "echo", "version": "9"}, {"function": "echo", "version": "1.0"}])
    from fsm.store import tasks as tasks_module
    store.db.tasks.update_one({"_id": old}, [{"$set": {"created_at": {"$subtract": [
        "$created_at", (tasks_module.PREFER_WINDOW_S + 5) * 1000]}}}])
    assert store.tasks.claim_next(who).task_id == old


def test_heartbeat_queries_read_only_running_tasks_through_an_index(store):
    publish(store, [{"function": "noop"} for _ in range(30)])
    claim = store.tasks.claim_next(Claimant("w"))
    assert store.tasks.still_held("w", [claim.attempt_id, "gone"]) == {claim.attempt_id}
    query = {"status": "running", "attempts": {"$elemMatch": {"worker": "w", "state": "running"}}}
    plan = json.dumps(store.db.tasks.find(query).explain()["queryPlanner"]["winningPlan"], default=str)
    assert "IXSCAN" in plan and "COLLSCAN" not in plan  # the query still_held and renew_leases make
    store.tasks.cancel(claim.task_id, "admin")
    assert store.tasks.still_held("w", [claim.attempt_id]) == set()
