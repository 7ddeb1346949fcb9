"""Resource statistics: the aggregations give the right figures for a handcrafted set of tasks."""
from __future__ import annotations

from datetime import timedelta

import pytest

from fsm.store import server_now
from fsm.store.spec import validate
from scheduler import resources


def attempt(worker, state, seconds, ended_ago_s, now):
    ended = now - timedelta(seconds=ended_ago_s)
    return {"id": f"{worker}-{state}-{seconds}-{ended_ago_s}", "worker": worker, "state": state,
            "started_at": ended - timedelta(seconds=seconds), "ended_at": ended}


@pytest.fixture
def now(store):
    # Given: three workers (two online) and tasks whose attempts were written by hand
    now = server_now(store.db)
    store.db.workers.insert_many([
        {"_id": "w1", "state": "online", "host": "m1", "versions_ready": [["f9", "v1"]], "disk": {"percent": 40}},
        {"_id": "w2", "state": "online", "host": "m2", "versions_ready": []},
        {"_id": "w3", "state": "offline", "host": "m3", "versions_ready": [["f3", "v1"]]},
    ])
    running = {"id": "r", "worker": "w2", "state": "running", "started_at": now, "lease_until": now}
    tasks = [
        ("t1", "f1", [attempt("w1", "succeeded", 10, 60, now)]),
        ("t2", "f1", [attempt("w1", "failed", 2, 120, now), attempt("w2", "succeeded", 4, 100, now)]),
        ("t3", "f1", [attempt("w1", "cancelled", 5, 30, now)]),
        ("t4", "f2", [attempt("w2", "succeeded", 1, 30, now), attempt("w2", "lost", 3, 20, now), running]),
        ("t5", "f4", [attempt("w1", "succeeded", 7, 7200, now)]),  # ran two hours ago
        ("t6", "f5", [attempt("w1", "succeeded", 99, 30 * 86400, now)]),  # outside a 7-day window
    ]
    tasks += [(f"u{i}", "f3", [attempt("w3", "succeeded" if i % 4 else "timed_out", i, 50, now)]) for i in range(1, 21)]
    def task(tid, fn, atts):  # as the store leaves them: final tasks carry finished_at
        live = any(a["state"] == "running" for a in atts)
        status = "running" if live else "succeeded"
        doc = {"_id": tid, "function": fn, "version": "v1", "attempts": atts, "status": status,
               "created_at": atts[0]["started_at"] - timedelta(seconds=1), "priority": 0, "is_enabled": True,
               "open_slots": 0, "rev": 1, "history": [{"from": None, "to": "queued"}, {"from": "queued", "to": "running"}]
               + ([] if live else [{"from": "running", "to": "succeeded"}])}
        if not live:
            doc["finished_at"] = max(a["ended_at"] for a in atts)
        return doc

    store.db.tasks.insert_many([task(tid, fn, atts) for tid, fn, atts in tasks])
    return now


def test_figures_per_function(store, now):
    stats = {r["function"]: r for r in resources.by_function(store, since=now - timedelta(days=7))}
    assert set(stats) == {"f1", "f2", "f3", "f4"}
    f1 = stats["f1"]
    assert (f1["runs"], f1["succeeded"], f1["failed"], f1["cancelled"]) == (3, 2, 1, 1)
    assert f1["success_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert f1["mean_s"] == pytest.approx((10 + 2 + 4) / 3, abs=1e-3)
    assert f1["p95_s"] == pytest.approx(10) and f1["workers"] == ["w1", "w2"]
    f2 = stats["f2"]  # the running attempt is not a run
    assert (f2["runs"], f2["succeeded"], f2["success_rate"], f2["mean_s"], f2["p95_s"]) == (2, 1, 0.5, 2.0, 3.0)
    f3 = stats["f3"]  # durations 1..20 s: nearest-rank p95 is the 19th smallest
    assert (f3["runs"], f3["succeeded"], f3["mean_s"], f3["p95_s"], f3["max_s"]) == (20, 15, 10.5, 19.0, 20.0)
    assert f3["success_rate"] == 0.75
    assert "f5" in {r["function"] for r in resources.by_function(store)}  # no window: all time


def test_figures_per_worker_and_the_service_map(store, now):
    stats = resources.resource_stats(store, window_s=7 * 86400, now=now)
    rows = {r["worker"]: r for r in stats["workers"]}
    w1 = rows["w1"]
    assert (w1["runs"], w1["succeeded"], w1["cancelled"]) == (3, 2, 1)  # t1, t2 failed, t5 (t6 is too old)
    assert w1["mean_s"] == pytest.approx((10 + 2 + 7) / 3, abs=1e-3) and w1["p95_s"] == 10
    assert w1["functions"] == ["f1", "f4"] and w1["host"] == "m1" and w1["disk_percent"] == 40
    w2 = rows["w2"]
    assert (w2["runs"], w2["succeeded"], w2["success_rate"], w2["p95_s"]) == (3, 2, pytest.approx(2 / 3, abs=1e-4), 4)
    assert rows["w3"]["runs"] == 20 and rows["w3"]["state"] == "offline"
    # Served: online workers with a version ready (w1: f9) or a run within the last hour;
    # w3 is offline, and w1's run of f4 is two hours old
    assert stats["service_map"] == {"f1": ["w1", "w2"], "f2": ["w2"], "f9": ["w1"]}
    assert resources.service_map(store, now, recent_s=3 * 3600)["f4"] == ["w1"]


def test_the_api_answers_resource_stats(store, now, db_uri, db_name):
    from tests import apiserver

    api = apiserver.start(store, db_uri, db_name)
    try:
        resp = api.call("GET", "/stats/resources?window_s=604800", "general")
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert {r["function"] for r in body["functions"]} == {"f1", "f2", "f3", "f4"}
        assert body["service_map"]["f1"] == ["w1", "w2"]
        assert api.call("GET", "/stats/resources?window_s=x", "general").status_code == 422
        assert api.call("GET", "/stats/resources").status_code == 401
    finally:
        api.server.stop()


def test_recent_work_queries_read_through_indexes(store):
    from fsm.store.db import server_now as clock

    since = clock(store.db) - timedelta(hours=1)
    store.tasks.insert([store.tasks.document(validate({"function": "noop"}), "t") for _ in range(50)])
    query = {"$or": [{"finished_at": {"$gte": since}}, {"status": "running"}],
             "attempts": {"$elemMatch": {"worker": {"$in": ["w1"]}, "ended_at": {"$gte": since}}}}
    import json

    for q in (query, {"finished_at": {"$gte": since}}):  # the service map; /stats and the portal's counts
        plan = json.dumps(store.db.tasks.find(q).explain()["queryPlanner"]["winningPlan"], default=str)
        assert "IXSCAN" in plan and "COLLSCAN" not in plan
