"""Claim lanes: a worker's claim walks only the lanes it can serve, in strict priority order."""
import json
from datetime import datetime, timezone

from fsm.lanes import can_serve, lane_of, lane_requires, mem_class
from fsm.store import Claimant, ensure_indexes
from fsm.store.schema import CLAIM_INDEX
from fsm.store.spec import validate
from tests.procs import wait_for

SORT = [("priority", -1), ("created_at", 1)]


def publish(store, bodies, user="tester"):
    return store.tasks.insert([store.tasks.document(validate(b), user) for b in bodies])


def test_lane_names_and_service_rules():
    assert mem_class(0) == 0 and mem_class(0.5) == 0 and mem_class(1) == 1 and mem_class(3) == 2
    assert mem_class(8) == 8 and mem_class(15.9) == 8
    assert lane_of({}) == "g0/m0/" and lane_of({"gpus": 1, "mem_gb": 12, "tags": ["b", "a", "a"]}) == "g1/m8/a+b"
    gpu_lane = lane_requires({"gpus": 1})
    assert not can_serve(gpu_lane, gpus=0, mem_gb=64, tags=())
    assert can_serve(gpu_lane, gpus=2, mem_gb=64, tags=())
    tagged = lane_requires({"tags": ["cuda"]})
    assert not can_serve(tagged, gpus=4, mem_gb=64, tags=("fast",)) and can_serve(tagged, gpus=0, mem_gb=1, tags=("cuda",))
    assert not can_serve(lane_requires({"mem_gb": 4}), gpus=0, mem_gb=3.5, tags=())


def test_unclaimable_work_ahead_is_not_read(store):
    # Given 2,000 GPU-only tasks at a higher priority than one plain task
    publish(store, [{"function": "noop", "priority": 9, "requires": {"gpus": 1}} for _ in range(2000)])
    (plain,) = publish(store, [{"function": "noop", "priority": 1}])
    cpu = Claimant("cpu", gpus=0)
    # When a CPU worker's claim query is explained
    stats = store.db.tasks.find(store.tasks.claim_filter(cpu)).sort(SORT).hint(CLAIM_INDEX).limit(1) \
        .explain()["executionStats"]
    # Then MongoDB examined only the claimable task, not the 2,000 ahead of it
    assert stats["totalDocsExamined"] <= 2 and stats["totalKeysExamined"] <= 3, stats
    assert store.tasks.claim_next(cpu).task_id == plain


def test_priority_order_holds_across_lanes(store):
    # Given tasks in three lanes a worker serves, interleaved by priority, and one it does not serve
    bodies = []
    for prio in range(12):
        bodies.append({"function": "noop", "priority": prio, "id": f"p{prio:02d}",
                       "requires": [{}, {"tags": ["a"]}, {"mem_gb": 2}][prio % 3]})
    bodies.append({"function": "noop", "priority": 100, "id": "gpu", "requires": {"gpus": 1}})
    publish(store, bodies)
    who = Claimant("w", tags=("a",), mem_gb=4, distinct_grace_s=-1)
    plan = json.dumps(store.db.tasks.find(store.tasks.claim_filter(who)).sort(SORT).hint(CLAIM_INDEX).limit(1)
                      .explain()["queryPlanner"]["winningPlan"])
    assert "SORT_MERGE" in plan and '"SORT"' not in plan  # the lanes' ranges merged, no in-memory sort
    order = []
    while (claim := store.tasks.claim_next(who)) is not None:
        order.append(claim.task_id)
        store.tasks.finish_attempt(claim.task_id, claim.attempt_id, "succeeded", result=1, worker="w")
    assert order == [f"p{p:02d}" for p in range(11, -1, -1)]


def test_a_new_lane_is_seen_by_a_running_claimant(store):
    who = Claimant("w", tags=("new",))
    publish(store, [{"function": "noop"}])
    assert store.tasks.claim_next(who) is not None  # lanes now cached for this claimant
    (tid,) = publish(store, [{"function": "noop", "requires": {"tags": ["new"]}}])
    claims = []
    wait_for(lambda: claims.append(store.tasks.claim_next(who)) or claims[-1] is not None, timeout=5)
    assert claims[-1].task_id == tid


def test_a_wake_up_naming_a_new_lane_makes_the_next_claim_see_it(store, db):
    """A publish's wake-up names its tasks' lanes: a claimant that has not read one re-reads the
    lanes at once (no wait for the cache to expire); one that knows them all keeps its cache."""
    from fsm.store import Store

    worker = Store(db)  # the worker's own store: its lane cache and its wake-up cursor
    who = Claimant("w", gpus=1)
    assert worker.tasks.claim_next(who) is None  # lanes now cached: the empty queue's only lane
    worker.wakeups.wait(0.05)  # the cursor starts here
    (tid,) = publish(store, [{"function": "noop", "requires": {"gpus": 1}}])
    assert worker.tasks.claim_next(who) is None  # cached: the new lane is not read yet
    store.wakeups.signal(lanes=[lane_of({"gpus": 1})])
    assert worker.wakeups.wait(2)
    claim = worker.tasks.claim_next(who)
    assert claim is not None and claim.task_id == tid
    listed = worker.tasks.lanes._served
    worker.tasks.lanes.heard_of([lane_of({"gpus": 1})])  # known: the cache stays
    assert worker.tasks.lanes._served is listed


def test_distinct_hosts_never_runs_twice_on_one_machine(store):
    (tid,) = publish(store, [{"function": "noop", "redundancy": 2, "distinct_hosts": True}])
    first = store.tasks.claim_next(Claimant("w1", host="box-a", distinct_grace_s=0))
    assert first.task_id == tid
    # another worker on the same machine, even past the grace for repeats, gets nothing
    assert store.tasks.claim_next(Claimant("w2", host="box-a", distinct_grace_s=0)) is None
    assert store.tasks.claim_next(Claimant("w1", host="box-a", distinct_grace_s=0)) is None
    second = store.tasks.claim_next(Claimant("w3", host="box-b"))
    assert second.task_id == tid
    assert store.tasks.get(tid)["hosts"] == ["box-a", "box-b"]


def test_a_failed_attempts_machine_may_try_again(store):
    (tid,) = publish(store, [{"function": "noop", "distinct_hosts": True, "retry_backoff_s": 0}])
    claim = store.tasks.claim_next(Claimant("w1", host="box-a"))
    store.tasks.finish_attempt(tid, claim.attempt_id, "failed", error="boom", worker="w1")
    assert store.tasks.get(tid)["hosts"] == []
    assert store.tasks.claim_next(Claimant("w1", host="box-a")).task_id == tid


def test_tasks_from_before_lanes_get_one(db):
    # Given a database with the old claim index and a queued task without a lane
    db.tasks.create_index([("is_enabled", 1), ("priority", -1), ("created_at", 1)], name="claim",
                          partialFilterExpression={"open_slots": {"$gt": 0}})
    db.tasks.insert_one({"_id": "old", "function": "noop", "version": "builtin", "args": [], "kwargs": {},
                         "status": "queued", "is_enabled": True, "priority": 0, "open_slots": 1,
                         "requires": {"gpus": 0, "mem_gb": 0, "tags": ["x"]}, "workers": [], "attempts": [],
                         "history": [{"from": None, "to": "queued", "by": "old"}], "rev": 0, "redundancy": 1,
                         "quorum": 1, "timeout_s": 60, "max_retries": 0, "failures": 0,
                         "created_at": datetime.now(timezone.utc)})
    # When a process connects
    ensure_indexes(db)
    # Then the task has its lane, the old index is gone and a worker claims it
    assert db.tasks.find_one({"_id": "old"})["lane"] == "g0/m0/x"
    assert "claim" not in db.tasks.index_information()
    from fsm.store import Store
    assert Store(db).tasks.claim_next(Claimant("w", tags=("x",))).task_id == "old"
