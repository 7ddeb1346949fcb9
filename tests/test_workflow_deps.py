"""Dependencies between tasks over the real API and a real mongod: waiting, release, failure, repair."""
import pytest

from fsm.decide_deps import decide_dependency_failed
from fsm.store import Claimant
from fsm.store.spec import validate
from scheduler.housekeeping import tick
from tests.apiserver import api  # noqa: F401 - the fixture


def run(store, task_id, *, ok=True, result=None):
    """Claim the task as a worker and end its attempt."""
    claim = store.tasks.claim_next(Claimant("w1"))
    assert claim is not None and claim.task_id == task_id, claim
    if ok:
        store.tasks.finish_attempt(task_id, claim.attempt_id, "succeeded", result=result, worker="w1")
    else:
        store.tasks.finish_attempt(task_id, claim.attempt_id, "failed", error="boom", worker="w1")


def status(store, task_id):
    doc = store.tasks.get(task_id)
    return doc["status"], doc["reason"]


def chain(api, n=3, role="admin", **extra):
    body = [{"id": "a", "function": "echo", "args": [1], "max_retries": 0, **extra}]
    for i in range(1, n):
        prev, me = chr(ord("a") + i - 1), chr(ord("a") + i)
        body.append({"id": me, "function": "echo", "args": [{"__result__": prev}], "depends_on": [prev]})
    resp = api.call("POST", "/tasks", role, json=body)
    assert resp.status_code == 201, resp.text
    return [item["id"] for item in resp.json()["items"]]


def test_a_chain_waits_and_is_released_one_edge_at_a_time(api):
    a, b, c = chain(api)
    # Then only the first runs; the others wait, saying why
    assert status(api.store, a) == ("queued", None)
    assert status(api.store, b) == status(api.store, c) == ("pending", "waiting_for_dependencies")
    got = api.call("GET", f"/tasks/{b}", "admin").json()
    assert got["depends_on"] == ["a"] and got["reason"] == "waiting_for_dependencies"
    # Only a task something depends on settles dependents when it ends (the rest skip that query)
    flags = {t: api.store.tasks.get(t).get("has_dependents", False) for t in (a, b, c)}
    assert flags == {a: True, b: True, c: False}
    # When a succeeds, b is queued (c still waits); when b succeeds, c is queued
    run(api.store, a, result=1)
    assert status(api.store, b) == ("queued", None) and status(api.store, c)[0] == "pending"
    run(api.store, b, result=2)
    assert status(api.store, c) == ("queued", None)
    history = api.store.tasks.get(c)["history"]
    assert [(h["from"], h["to"]) for h in history] == [(None, "pending"), ("pending", "queued")]
    assert history[1]["by"] == "dependency b"


def test_a_failure_cancels_every_dependent_transitively(api):
    a, b, c = chain(api)
    extra = api.publish({"function": "echo", "depends_on": ["a", "c"]})["id"]
    run(api.store, a, ok=False)
    assert status(api.store, a) == ("failed", "retries_exhausted")
    for task_id in (b, c, extra):
        assert status(api.store, task_id) == ("cancelled", "upstream_failed")
        assert api.store.tasks.get(task_id)["history"][-1]["reason"] == "upstream_failed"
    # A cancelled dependency counts as not succeeded too
    x = api.publish({"function": "echo"})["id"]
    y = api.publish({"function": "echo", "depends_on": [x]})["id"]
    assert api.call("POST", f"/tasks/{x}/cancel", "admin").status_code == 200
    assert status(api.store, y) == ("cancelled", "upstream_failed")


def test_a_dependent_of_an_ended_task_is_resolved_at_publish(api):
    done = api.publish({"function": "echo"})["id"]
    run(api.store, done, result="x")
    broken = api.publish({"function": "echo", "max_retries": 0})["id"]
    run(api.store, broken, ok=False)
    assert api.publish({"function": "echo", "depends_on": [done]})["status"] == "pending"
    later = api.store.tasks.get(api.store.db.tasks.find_one({"depends_on": done})["_id"])
    assert later["status"] == "queued"
    dead = api.publish({"function": "echo", "depends_on": [broken]})["id"]
    assert status(api.store, dead) == ("cancelled", "upstream_failed")


@pytest.mark.parametrize("body, words", [
    ([{"function": "echo", "depends_on": ["nope"]}], "unknown task(s): nope"),
    ([{"id": "p", "function": "echo", "depends_on": ["q"]}, {"id": "q", "function": "echo", "depends_on": ["p"]}],
     "cycle"),
    ([{"id": "p", "function": "echo", "depends_on": ["p"]}], "itself"),
    ([{"function": "echo", "depends_on": [f"t{i}" for i in range(1001)]}], "at most 1000"),
    ([{"function": "echo", "depends_on": "a"}], "must be a list"),
    ([{"id": "p", "function": "echo"}, {"function": "echo", "args": [{"__result__": "p"}]}], "not in 'depends_on'"),
    ([{"id": "p", "function": "echo"}, {"function": "echo", "depends_on": ["p"], "delay_s": 5}], "run_after"),
])
def test_bad_dependencies_are_refused_whole_and_nothing_is_written(api, body, words):
    before = api.snapshot()
    resp = api.call("POST", "/tasks", "admin", json=[{"id": "ok-1", "function": "echo"}, *body])
    assert resp.status_code == 422, resp.text
    assert words in resp.json()["error"]["message"] and resp.json()["error"]["code"] == "invalid"
    assert api.snapshot() == before


def test_a_business_user_cannot_depend_on_another_users_task(api):
    theirs = api.publish({"function": "echo"}, role="super")["id"]
    resp = api.call("POST", "/tasks", "business", json={"function": "echo", "depends_on": [theirs]})
    assert resp.status_code == 422 and "unknown" in resp.json()["error"]["message"]


#: The history a queued task gains by running to success (the database checks the status follows it).
RAN = [{"from": "queued", "to": "running", "by": "test"}, {"from": "running", "to": "succeeded", "by": "test"}]


def test_the_sweep_repairs_a_crash_between_the_final_write_and_the_release(api):
    a, b, c = chain(api)
    # Given a finished as if the process died before settling its dependents
    api.store.db.tasks.update_one({"_id": a}, {"$set": {"status": "succeeded", "result": 1},
                                               "$push": {"history": {"$each": RAN}}})
    assert status(api.store, b)[0] == "pending"
    # When housekeeping runs (twice: the second changes nothing)
    tick(api.store, offline_after_s=60)
    tick(api.store, offline_after_s=60)
    assert status(api.store, b) == ("queued", None) and status(api.store, c)[0] == "pending"
    assert [h["to"] for h in api.store.tasks.get(b)["history"]] == ["pending", "queued"]


def test_cancelling_a_parent_cancels_its_live_children_and_the_list_filters_by_parent(api):
    parent = api.publish({"function": "echo"})["id"]
    tasks = api.store.tasks
    kids = tasks.insert([tasks.document(validate({"function": "echo", "priority": i % 2}), "admin", parent)
                         for i in range(3)])
    grandkid = tasks.insert([tasks.document(validate({"function": "echo"}), "admin", kids[0])])[0]
    run(api.store, kids[1], result=None)  # one child already ended: it stays succeeded
    listed = api.call("GET", f"/tasks?parent={parent}", "admin").json()
    assert sorted(t["id"] for t in listed["items"]) == sorted(kids) and listed["items"][0]["parent"] == parent
    assert api.call("POST", f"/tasks/{parent}/cancel", "admin").status_code == 200
    assert status(api.store, kids[0]) == status(api.store, kids[2]) == ("cancelled", "parent_cancelled")
    assert status(api.store, grandkid) == ("cancelled", "parent_cancelled")
    assert status(api.store, kids[1])[0] == "succeeded"


def test_the_failure_decision_is_idempotent():
    task = {"_id": "t", "status": "pending", "reason": "waiting_for_dependencies", "depends_on": ["a", "b"],
            "deps_done": ["a"]}
    assert decide_dependency_failed({**task, "status": "queued"}, "a") is None  # no longer waiting
    assert decide_dependency_failed({**task, "status": "cancelled"}, "a") is None
    assert decide_dependency_failed(task, "x") is None  # not a dependency
    plan = decide_dependency_failed(task, "b")
    assert plan.to.value == "cancelled" and plan.fields["reason"] == "upstream_failed"


def test_counting_an_edge_twice_changes_nothing(api):
    a = api.publish({"function": "echo"})["id"]
    other = api.publish({"function": "echo", "priority": -1})["id"]
    both = api.publish({"function": "echo", "depends_on": [a, other]})["id"]
    run(api.store, a, result=1)
    before = api.store.tasks.get(both)
    assert before["deps_done"] == [a] and before["status"] == "pending"
    assert api.store.tasks.flow.settle(a) == 0  # settled already: the edge is counted once
    after = api.store.tasks.get(both)
    assert after["rev"] == before["rev"] and after["deps_done"] == [a] and len(after["history"]) == 1


def test_the_sweep_goes_round_every_waiting_task_in_bounded_rounds(api):
    store = api.store
    firsts = [api.publish({"function": "echo"})["id"] for _ in range(7)]
    waiting = store.tasks.insert([store.tasks.document(validate({"function": "echo", "depends_on": [f]}), "admin")
                                  for f in firsts])
    store.db.tasks.update_many({"_id": {"$in": firsts}}, {"$set": {"status": "succeeded"},  # crashed mid-way
                                                           "$push": {"history": {"$each": RAN}}})
    rounds = 0
    while any(store.tasks.get(t)["status"] == "pending" for t in waiting):
        assert store.tasks.flow.sweep(limit=3) <= 3
        rounds += 1
        assert rounds <= 3
    assert rounds == 3 and {store.tasks.get(t)["status"] for t in waiting} == {"queued"}
