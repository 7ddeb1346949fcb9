"""Retention: finished tasks move to the archive (or are deleted) by age, lists are capped,
archived tasks are still found by id over HTTP."""
import time

import pytest

from fsm.store import Claimant
from fsm.store.spec import validate
from scheduler.config import ServerConfig
from scheduler.leader_loop import Leader
from scheduler.retention import RetentionPolicy, install
from tests.procs import wait_for


def finished(store, n: int, state: str = "succeeded") -> list[str]:
    ids = store.tasks.insert([store.tasks.document(validate({"function": "echo", "args": [i], "max_retries": 50}),
                                                   "alice") for i in range(n)])
    for _ in ids:
        claim = store.tasks.claim_next(Claimant("w", lease_s=30, distinct_grace_s=-1))
        store.tasks.finish_attempt(claim.task_id, claim.attempt_id, state, result=1, error="x", worker="w")
    return ids


def test_finished_tasks_older_than_the_age_move_to_the_archive_in_batches(store):
    old = finished(store, 25)
    live = store.tasks.insert([store.tasks.document(validate({"function": "echo"}), "alice")])
    time.sleep(0.3)
    young = finished(store, 3)
    moved = store.retention.archive_finished(0.25, "archive", batch=10, max_batches=2)
    assert moved == 20  # bounded: two batches of ten
    assert store.retention.archive_finished(0.25, "archive", batch=10) == 5
    assert store.retention.archive_finished(0.25, "archive", batch=10) == 0
    assert store.db.tasks_archive.count_documents({}) == 25
    assert {d["_id"] for d in store.db.tasks.find({}, {"_id": 1})} == set(live + young)
    assert store.retention.get(old[0])["status"] == "succeeded"


def test_a_move_interrupted_after_the_copy_is_completed_by_the_next_run(store):
    ids = finished(store, 3)
    store.db.tasks_archive.insert_one(store.tasks.get(ids[0]))  # copied, not yet deleted
    time.sleep(0.05)
    assert store.retention.archive_finished(0.01, "archive") == 3
    assert store.db.tasks_archive.count_documents({}) == 3 and store.db.tasks.count_documents({}) == 0


def test_delete_mode_deletes(store):
    finished(store, 4)
    time.sleep(0.05)
    assert store.retention.archive_finished(0.01, "delete") == 4
    assert store.db.tasks.count_documents({}) == 0 and store.db.tasks_archive.count_documents({}) == 0


def test_lists_of_finished_tasks_are_capped_newest_kept_with_a_count(store):
    [tid] = store.tasks.insert([store.tasks.document(validate({"function": "echo", "max_retries": 50,
                                                               "retry_backoff_s": 0}), "alice")])
    for n in range(6):  # six failed attempts, then a success
        claim = store.tasks.claim_next(Claimant(f"w{n}", lease_s=30, distinct_grace_s=-1))
        store.tasks.finish_attempt(tid, claim.attempt_id, "failed", error=f"boom {n}", worker=f"w{n}")
    claim = store.tasks.claim_next(Claimant("last", lease_s=30, distinct_grace_s=-1))
    store.tasks.finish_attempt(tid, claim.attempt_id, "succeeded", result="ok", worker="last")
    before = store.tasks.get(tid)
    assert len(before["attempts"]) == 7 and len(before["history"]) > 4
    [other] = finished(store, 1)
    assert store.retention.cap_lists(history_cap=4, attempts_cap=3, batch=1) == 1
    after = store.tasks.get(tid)
    assert after["attempts"] == before["attempts"][-3:] and after["attempts_dropped"] == 4
    assert after["history"] == before["history"][-4:]
    assert after["history_dropped"] == len(before["history"]) - 4
    assert after["result"] == "ok" and "previous_attempts" not in after
    assert len(store.tasks.get(other)["history"]) == 3  # short lists untouched
    assert "history_dropped" not in store.tasks.get(other)
    assert store.retention.cap_lists(history_cap=4, attempts_cap=3) == 0  # a second run: nothing new


def test_the_leader_runs_the_job_and_the_api_finds_an_archived_task(store, db_uri, db_name):
    from tests.apiserver import start

    ids = finished(store, 2)
    leader = Leader(store, lease_s=3)
    install(leader, RetentionPolicy(older_than_days=0.05 / 86400, every_s=0.5))
    leader.start()
    try:
        wait_for(lambda: store.db.tasks_archive.count_documents({}) == 2, 30, what="the job to archive both")
    finally:
        leader.stop()
    api = start(store, db_uri, db_name)
    try:
        resp = api.call("GET", f"/tasks/{ids[0]}", "admin")
        assert resp.status_code == 200, resp.text
        assert resp.json()["archived"] is True and resp.json()["status"] == "succeeded"
        missing = api.call("GET", "/tasks/nope", "admin")
        assert missing.status_code == 404 and missing.json()["error"]["code"]
    finally:
        api.server.stop()


@pytest.mark.parametrize("bad", [{"retention_days": 0}, {"retention_mode": "shred"}, {"history_cap": 0}])
def test_bad_retention_settings_are_refused(bad):
    from fsm.errors import ConfigError

    with pytest.raises(ConfigError):
        ServerConfig(mongo_uri="mongodb://h:1/", **bad).validate()
