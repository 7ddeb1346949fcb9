"""Schedules: exactly one firing per fire time across competing scheduler processes, missed
runs caught up once after a restart, and clear errors that write nothing for bad input."""
from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from datetime import timedelta

import pytest

from fsm.store import Store, database, server_now
from fsm.store.spec import validate
from scheduler import schedules
from scheduler import housekeeping
from scheduler.leader_loop import Leader
from tests.procs import Proc, wait_for

ADMIN = {"_id": "admin", "role": "admin"}
LEASE_S = 1.5


def scheduler_main(uri: str, db_name: str) -> None:
    """A scheduler process: competes for the lease and, while leading, runs the schedules."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(name)s: %(message)s")
    store = Store(database(uri, db_name))
    leader = Leader(store, lease_s=LEASE_S)
    housekeeping.install(leader, interval_s=1.0)
    schedules.install(leader)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    leader.start()
    while not stop.wait(0.2):
        pass
    leader.stop()


def start_scheduler(db_uri: str, db_name: str, log) -> Proc:
    code = f"from tests.test_schedules import scheduler_main; scheduler_main({db_uri!r}, {db_name!r})"
    return Proc([sys.executable, "-c", code], log)


def leader_holder(store: Store) -> str | None:
    doc = store.db.locks.find_one({"_id": "scheduler", "expires_at": {"$gt": server_now(store.db)}})
    return doc and doc["holder"]


def scheduled_tasks(store: Store, sid: str) -> list[dict]:
    return list(store.db.tasks.find({"schedule_id": sid}).sort("scheduled_for", 1))


@pytest.fixture
def admin_user(store):
    """The schedules' owner: a firing publishes as its owner, who must exist."""
    store.users.ensure_admin()


@pytest.fixture
def procs():
    started: list[Proc] = []
    yield started
    for p in started:
        p.kill()


def test_four_schedulers_fire_a_cron_schedule_exactly_once_per_second(admin_user, store, db_uri, db_name, tmp_path, procs):
    # Given four scheduler processes competing for the lease, one of them leading
    procs += [start_scheduler(db_uri, db_name, tmp_path / f"s{i}.log") for i in range(4)]
    wait_for(lambda: leader_holder(store), 60, what="a leader")
    # When a schedule fires every second for ten seconds (without coalescing missed runs)
    t0 = server_now(store.db).replace(microsecond=0) + timedelta(seconds=3)
    schedules.create(store, {"id": "tick", "trigger": {
        "type": "cron", "second": "*", "start_date": t0.isoformat(), "end_date": (t0 + timedelta(seconds=9)).isoformat()},
        "task": {"function": "echo", "args": ["tick"]}, "coalesce": False, "misfire_grace_s": 60}, ADMIN)
    # ... and the leader is stopped half-way, so another process takes over
    wait_for(lambda: len(scheduled_tasks(store, "tick")) >= 4, 30, what="four firings")
    # (the schedule document is the whole state: its next fire time, no APScheduler job store)
    assert store.db.schedules.find_one({"_id": "tick"})["next_fire_at"] is not None
    assert not [c for c in store.db.list_collection_names() if c.startswith("apscheduler")]
    holder = leader_holder(store)
    leader = next(p for p in procs if holder and holder.split(":")[1] == str(p.pid))
    leader.stop()
    wait_for(lambda: leader_holder(store) not in (None, holder), 30, what="a new leader")
    # Then exactly ten tasks exist, one per fire time, with the deterministic ids
    expected = {schedules.task_id("tick", t0 + timedelta(seconds=i)) for i in range(10)}
    wait_for(lambda: {t["_id"] for t in scheduled_tasks(store, "tick")} == expected, 40,
             what="the ten fire times")
    time.sleep(1.5)  # the end date has passed: nothing more may come, not even a duplicate
    tasks = scheduled_tasks(store, "tick")
    assert len(tasks) == 10 and {t["_id"] for t in tasks} == expected
    assert all(t["status"] == "queued" and t["function"] == "echo" and t["version"] == "builtin" for t in tasks)
    assert store.db.schedules.find_one({"_id": "tick"})["fired"] == 10
    # The finished schedule has no next fire time, so no round reads it again
    assert store.db.schedules.find_one({"_id": "tick"})["next_fire_at"] is None


def test_a_restarted_scheduler_runs_missed_firings_once(admin_user, store, db_uri, db_name, tmp_path, procs):
    # Given a scheduler process and a schedule every 2 seconds that coalesces missed runs
    procs.append(start_scheduler(db_uri, db_name, tmp_path / "a.log"))
    wait_for(lambda: leader_holder(store), 60, what="a leader")
    start = server_now(store.db).replace(microsecond=0) + timedelta(seconds=1)
    schedules.create(store, {"id": "every2", "trigger": {"type": "interval", "seconds": 2,
                                                          "start_date": start.isoformat()},
                             "task": {"function": "noop"}, "misfire_grace_s": 120}, ADMIN)
    first = wait_for(lambda: scheduled_tasks(store, "every2"), 30, what="the first firing")
    # When the scheduler is killed right after a firing and is down across the next two or more
    procs[0].kill()
    last_before = scheduled_tasks(store, "every2")[-1]["scheduled_for"]
    time.sleep(5)
    procs.append(start_scheduler(db_uri, db_name, tmp_path / "b.log"))
    after = wait_for(lambda: [t for t in scheduled_tasks(store, "every2") if t["scheduled_for"] > last_before],
                     60, what="a firing after the restart")
    procs[1].stop()
    # Then the missed firings produced exactly one task (the latest one missed), the others none
    caught_up = after[0]["scheduled_for"]
    missed = int((caught_up - last_before).total_seconds() // 2) - 1
    assert missed >= 1, "the scheduler was not down across a firing"
    times = [t["scheduled_for"] for t in scheduled_tasks(store, "every2")]
    assert len(times) == len(set(times))
    assert [t for t in times if last_before < t < caught_up] == []
    assert first[0]["_id"] == schedules.task_id("every2", first[0]["scheduled_for"])


def test_the_documents_follow_pause_resume_change_and_the_leader_fires_only_due_ones(admin_user, store):
    # Given a schedule in Shanghai time, every five minutes
    schedules.create(store, {"id": "s1", "cron": "*/5 * * * *", "timezone": "Asia/Shanghai",
                             "task": {"function": "echo", "args": [1]}}, ADMIN)
    doc = store.db.schedules.find_one({"_id": "s1"})
    now = server_now(store.db)
    # Then its document holds its next fire time, from APScheduler's CronTrigger in its time zone
    trigger = schedules.build_trigger(doc["trigger"])
    assert str(trigger.timezone) == "Asia/Shanghai" and doc["next_fire_at"] == trigger.get_next_fire_time(
        None, now).replace(microsecond=0) and doc["next_fire_at"].minute % 5 == 0
    # When it is paused, it has none (and is never due); resumed, it has one again
    schedules.set_paused(store, "s1", True, ADMIN)
    assert store.db.schedules.find_one({"_id": "s1"})["next_fire_at"] is None
    resumed = schedules.set_paused(store, "s1", False, ADMIN)
    assert resumed["rev"] == 3 and resumed["next_fire_at"] == doc["next_fire_at"]
    changed = schedules.update(store, "s1", {"interval_s": 3600}, ADMIN)
    assert changed["trigger"]["type"] == "interval" and changed["next_fire_at"] > now
    # A round reads only due schedules (the next_fire index) and fires each once
    plan = store.db.schedules.find({"next_fire_at": {"$lte": now}}).sort("next_fire_at", 1).explain()
    assert "IXSCAN" in str(plan["queryPlanner"]["winningPlan"])
    start = (now + timedelta(seconds=30)).replace(microsecond=0)
    schedules.create(store, {"id": "s2", "trigger": {"type": "interval", "seconds": 60, "start_date": start.isoformat()},
                             "task": {"function": "noop"}}, ADMIN)
    due = store.db.schedules.find_one({"_id": "s2"})["next_fire_at"]
    assert due == start
    assert schedules.run_due(store) is not None and store.db.tasks.count_documents({}) == 0  # not yet due
    # (the clock passed in: a round at the fire time fires it and moves next_fire_at one interval on)
    assert schedules.run_due(store, now=due) == 60
    assert [t["_id"] for t in scheduled_tasks(store, "s2")] == [schedules.task_id("s2", due)]
    assert store.db.schedules.find_one({"_id": "s2"})["next_fire_at"] == due + timedelta(seconds=60)
    # Firing the same time twice creates one task
    when = server_now(store.db).replace(microsecond=0)
    assert schedules.fire_once(store, "s2", when) == f"s2@{when:%Y%m%dT%H%M%S}Z"
    assert schedules.fire_once(store, "s2", when) is None
    assert store.db.tasks.count_documents({"schedule_id": "s2"}) == 2
    # Removed (or changed directly in MongoDB by another server): nothing more is read for it
    schedules.remove(store, "s2", ADMIN)
    assert schedules.run_due(store) is not None and store.db.tasks.count_documents({"schedule_id": "s2"}) == 2


def test_a_schedule_stored_before_next_fire_at_existed_gets_one(admin_user, store):
    schedules.create(store, {"id": "old", "interval_s": 60, "task": {"function": "noop"}}, ADMIN)
    store.db.schedules.update_one({"_id": "old"}, {"$unset": {"next_fire_at": ""}})
    assert schedules.backfill(store) == 1 and store.db.schedules.find_one({"_id": "old"})["next_fire_at"]
    assert schedules.backfill(store) == 0


BAD = [
    ({"cron": "61 * * * *", "task": {"function": "echo"}}, 422, "cron"),
    ({"cron": "* * *", "task": {"function": "echo"}}, 422, "5 fields"),
    ({"cron": "* * * * *", "timezone": "Mars/Olympus", "task": {"function": "echo"}}, 422, "unknown time zone"),
    ({"cron": "* * * * *", "task": {"function": "no_such_function"}}, 404, "unknown function"),
    ({"cron": "* * * * *", "task": {"function": "echo", "version": "v9"}}, 404, "only version"),
    ({"cron": "* * * * *", "task": {"function": "echo", "priority": "high"}}, 422, "priority"),
    ({"cron": "* * * * *", "task": {"function": "echo", "id": "x"}}, 422, "own id"),
    ({"cron": "* * * * *"}, 422, "needs 'task'"),
    ({"task": {"function": "echo"}}, 422, "needs a trigger"),
    ({"run_at": "2001-01-01T00:00:00", "task": {"function": "echo"}}, 422, "in the past"),
    ({"interval_s": 0, "task": {"function": "echo"}}, 422, "at least 1 second"),
    ({"cron": "* * * * *", "interval_s": 5, "task": {"function": "echo"}}, 422, "give one of"),
    ({"cron": "* * * * *", "task": {"function": "echo"}, "misfire_grace_s": -1}, 422, "misfire_grace_s"),
    ({"cron": "* * * * *", "task": {"function": "echo"}, "id": "a b"}, 422, "'id'"),
    ({"cron": "* * * * *", "task": {"function": "echo"}, "colour": "red"}, 422, "unknown field"),
    ({"trigger": {"type": "weekly"}, "task": {"function": "echo"}}, 422, "trigger.type"),
    ({"trigger": {"type": "cron", "second": "*", "end_date": "2001-01-01T00:00:00"},
      "task": {"function": "echo"}}, 422, "never fires"),
]


@pytest.fixture
def api(store, db_uri, db_name):
    from tests import apiserver

    server = apiserver.start(store, db_uri, db_name)
    yield server
    server.server.stop()


def test_bad_schedules_get_clear_errors_and_write_nothing(api, store):
    for body, status, words in BAD:
        resp = api.call("POST", "/schedules", "admin", json=body)
        assert resp.status_code == status, (body, resp.text)
        assert words in resp.json()["error"]["message"], (body, resp.text)
    assert store.db.schedules.count_documents({}) == 0
    resp = api.call("POST", "/schedules", "admin", data="cron", headers={"Content-Type": "text/plain"})
    assert resp.status_code == 415
    assert api.call("POST", "/schedules", "general", json={"cron": "* * * * *", "task": {
        "function": "echo"}}).status_code == 403
    assert store.db.schedules.count_documents({}) == 0


def test_schedules_api_roles_and_changes(api, store):
    made = api.call("POST", "/schedules", "business", json={
        "id": "nightly", "cron": "0 3 * * *", "timezone": "Asia/Shanghai", "task": {"function": "echo", "args": [1]}})
    assert made.status_code == 201, made.text
    view = made.json()
    assert view["id"] == "nightly" and view["owner"] == "u-business" and view["next_run_time"].endswith("19:00:00+00:00")
    # Another business user sees nothing of it; a super-user sees and may change it
    assert api.call("GET", "/schedules", "general").json()["total"] == 0
    assert api.call("GET", "/schedules/nightly", "general").status_code == 404
    assert api.call("GET", "/schedules", "super").json()["total"] == 1
    assert api.call("PATCH", "/schedules/nightly", "business", json={"cron": "99 * * * *"}).status_code == 422
    patched = api.call("PATCH", "/schedules/nightly", "super", json={"interval_s": 600, "coalesce": False}).json()
    assert patched["trigger"]["type"] == "interval" and patched["coalesce"] is False and patched["rev"] == 2
    paused = api.call("POST", "/schedules/nightly/pause", "business").json()
    assert paused["paused"] is True and paused["next_run_time"] is None
    assert api.call("POST", "/schedules/nightly/resume", "business").json()["paused"] is False
    assert api.call("GET", "/schedules/nightly", "business").json()["recent_tasks"] == []
    assert api.call("DELETE", "/schedules/nightly", "general").status_code == 404
    assert api.call("DELETE", "/schedules/nightly", "business").json() == {"id": "nightly", "deleted": True}
    assert store.db.schedules.count_documents({}) == 0
    # A duplicate id is a conflict
    body = {"id": "dup", "interval_s": 60, "task": {"function": "noop"}}
    assert api.call("POST", "/schedules", "admin", json=body).status_code == 201
    assert api.call("POST", "/schedules", "admin", json=body).status_code == 409


def test_schedule_cli(api, store):
    from click.testing import CliRunner

    from suanwang.cli import main

    opts = ["--server-url", api.base, "--token", api.tokens["admin"]]
    runner = CliRunner()
    out = runner.invoke(main, ["schedule", "add", "echo", '{"x": 1}', "--cron", "*/10 * * * *", "--tz", "Europe/Paris",
                               "--id", "ten", *opts])
    assert out.exit_code == 0, out.output
    assert "ten" in out.output and "Europe/Paris" in out.output
    doc = store.db.schedules.find_one({"_id": "ten"})
    assert doc["task"]["args"] == [{"x": 1}] and doc["trigger"]["minute"] == "*/10"
    out = runner.invoke(main, ["schedule", "add", "echo", "--every", "5m", *opts])
    assert out.exit_code == 0, out.output
    assert "ten" in runner.invoke(main, ["schedule", "list", *opts]).output
    assert "paused" in runner.invoke(main, ["schedule", "pause", "ten", *opts]).output
    assert store.db.schedules.find_one({"_id": "ten"})["paused"] is True
    assert "next" in runner.invoke(main, ["schedule", "resume", "ten", *opts]).output
    assert runner.invoke(main, ["schedule", "remove", "ten", *opts]).exit_code == 0
    assert store.db.schedules.count_documents({}) == 1
    bad = runner.invoke(main, ["schedule", "add", "echo", "--cron", "* * *", *opts])
    assert bad.exit_code == 2 and "5 fields" in bad.output
    bad = runner.invoke(main, ["schedule", "add", "echo", "--every", "5m", "--tz", "Nowhere/Land", *opts])
    assert bad.exit_code == 2 and "unknown time zone" in bad.output
    assert store.db.schedules.count_documents({}) == 1
    # a service's schedule: its arguments follow, and the listing names the service
    resp = api.call("POST", "/services", "admin", json={"name": "greet", "function": "echo", "version": "builtin"})
    assert resp.status_code == 201, resp.text
    out = runner.invoke(main, ["schedule", "add", "--service", "greet", "hi", "--every", "1h", "--id", "hourly",
                               *opts])
    assert out.exit_code == 0, out.output
    assert store.db.schedules.find_one({"_id": "hourly"})["task"] == {"service": "greet", "args": ["hi"]}
    assert "service greet" in runner.invoke(main, ["schedule", "list", *opts]).output
    bad = runner.invoke(main, ["schedule", "add", "--service", "nope", "--every", "1h", *opts])
    assert bad.exit_code == 2 and "nope" in bad.output
    assert runner.invoke(main, ["schedule", "add", "--every", "1h", *opts]).exit_code == 2


def test_task_ids_with_at_are_reserved_for_schedule_firings(api, store):
    # Given a schedule whose next firing's id anyone can compute
    assert api.call("POST", "/schedules", "business", json={"id": "daily", "cron": "0 3 * * *",
                                                             "task": {"function": "noop"}}).status_code == 201
    due = store.db.schedules.find_one({"_id": "daily"})["next_fire_at"]
    taken = schedules.task_id("daily", due)
    before = api.snapshot()
    # When a user publishes a task with that id (alone, or inside a bulk request), or any id with '@'
    answers = [api.call("POST", "/tasks", "business", json={"function": "noop", "id": taken}),
               api.call("POST", "/tasks", "super", json=[{"function": "noop", "id": "fine"},
                                                          {"function": "noop", "id": "x@y"}])]
    # Then each is refused with 422 naming the rule, and nothing is written
    for resp in answers:
        assert resp.status_code == 422, resp.text
        error = resp.json()["error"]
        assert error["field"] == "id" and error["grammar"] == "scheduled_task_id"
        assert "'@' is reserved for the tasks of schedule firings" in error["message"]
    assert answers[1].json()["error"]["index"] == 1
    assert api.snapshot() == before
    # ... and the firing publishes its task
    assert schedules.fire_once(store, "daily", due) == taken


def test_a_firing_whose_id_is_taken_records_last_error_and_raises_an_alert(api, store):
    from scheduler import notify
    from tests.test_notify import fast

    # Given a schedule, an admin subscribed to schedule errors, and a task stored before '@' was reserved
    # that holds the id of the schedule's next firing
    assert api.call("POST", "/schedules", "business", json={"id": "nightly", "cron": "0 2 * * *",
                                                             "task": {"function": "noop"}}).status_code == 201
    due = store.db.schedules.find_one({"_id": "nightly"})["next_fire_at"]
    squatter = store.tasks.document(validate({"function": "echo", "id": schedules.task_id("nightly", due)}), "mallory")
    store.tasks.insert([squatter])
    notify.subscribe(store, {"event": "schedule.error", "channel": {"type": "webhook", "url": "https://h.example/x"}},
                     ADMIN)
    # When the firing comes
    assert schedules.fire_once(store, "nightly", due) is None
    # Then the schedule says why in last_error, and the alert is queued once
    doc = store.db.schedules.find_one({"_id": "nightly"})
    assert "is taken by a task this schedule did not create (submitted by mallory)" in doc["last_error"]
    assert doc["last_error_at"] is not None
    shown = api.call("GET", "/schedules/nightly", "business").json()
    assert shown["last_error"] == doc["last_error"]
    notifier = notify.Notifier(store, fast())
    now = server_now(store.db)
    assert notifier.check_once(now) == 1 and notifier.check_once(now) == 0
    (delivery,) = store.db.deliveries.find({"event": "schedule.error"})
    assert delivery["payload"]["subject"] == "schedule:nightly"
    assert delivery["payload"]["detail"]["error"] == doc["last_error"]
    # ... the schedules page shows it; the next firing that publishes clears it (and the alert)
    assert doc["last_error"] in _page(api, "/schedules")
    assert schedules.fire_once(store, "nightly", due + timedelta(days=1))
    assert store.db.schedules.find_one({"_id": "nightly"})["last_error"] is None
    notifier.check_once(now)
    assert store.db.alerts.count_documents({}) == 0


def _page(api, path: str) -> str:
    import requests

    return requests.get(f"{api.base}{path}", headers={"Authorization": f"Bearer {api.tokens['admin']}"},
                        timeout=30).text


def test_a_firing_publishes_as_the_owner_and_stops_when_the_owner_is_gone(store):
    # Given a business user's schedule
    store.users.add("carol", "business")
    carol = store.users.find("carol")
    schedules.create(store, {"id": "c1", "cron": "0 * * * *", "task": {"function": "echo", "args": [1]}}, carol)
    when = server_now(store.db).replace(microsecond=0)
    # Then a firing is a task published by carol, with her role
    tid = schedules.fire_once(store, "c1", when)
    task = store.db.tasks.find_one({"_id": tid})
    assert task["submitted_by"] == "carol" and task["submitted_role"] == "business" and task["schedule_id"] == "c1"
    # and once carol is removed, a firing publishes nothing and the schedule says why
    store.users.remove("carol")
    assert schedules.fire_once(store, "c1", when + timedelta(hours=1)) is None
    assert "owner 'carol' no longer exists" in store.db.schedules.find_one({"_id": "c1"})["last_error"]
