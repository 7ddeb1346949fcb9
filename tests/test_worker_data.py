"""Data through a real worker daemon (in this process, children forked) and the real mongod:
{"__data__"} arguments as local paths, large results in GridFS, permanent failures."""
from __future__ import annotations

import hashlib
import json
import os
import stat

from fsm.store.spec import validate
from worker.config import WorkerConfig
from worker.daemon import Daemon

DF = "tests.data_functions"


def publish(store, *bodies) -> list[str]:
    ids = store.tasks.insert([store.tasks.document(validate(body), "ann") for body in bodies])
    store.wakeups.signal()
    return ids


def run_burst(db_uri, tmp_path, **overrides):
    options = dict(mongo_uri=db_uri, name="w1", concurrency=2, heartbeat_s=0.2, burst=True,
                   cache_dir=str(tmp_path / "cache"), drain_timeout_s=5, poll_max_s=0.2)
    options.update(overrides)
    Daemon(WorkerConfig(**options)).run()


def test_data_argument_reaches_the_function_as_a_read_only_path(store, db_uri, tmp_path):
    data = os.urandom(3 << 20)
    meta = store.data.put_bytes(data, name="in.bin", owner="ann")
    a, b = publish(store, {"function": f"{DF}:checksum", "args": [{"__data__": meta["id"]}]},
                   {"function": f"{DF}:checksum", "kwargs": {"path": {"__data__": meta["id"]}, "label": "kw"}})
    run_burst(db_uri, tmp_path)
    for task_id in (a, b):
        task = store.tasks.get(task_id)
        assert task["status"] == "succeeded", task
        assert task["result"]["is_path"] and task["result"]["mode"] == 0o444
        assert task["result"]["sha256"] == hashlib.sha256(data).hexdigest() == meta["sha256"]
    cached = tmp_path / "cache" / "data" / "objects" / meta["sha256"]
    assert cached.read_bytes() == data and not cached.stat().st_mode & stat.S_IWUSR


def test_large_json_and_path_results_go_to_gridfs(store, db_uri, tmp_path):
    big, path, small = publish(store, {"function": f"{DF}:big_json", "args": [2]},
                               {"function": f"{DF}:write_file", "args": [3, "model.bin"]},
                               {"function": f"{DF}:big_json", "args": [0]})
    run_burst(db_uri, tmp_path)
    task = store.tasks.get(big)
    assert task["status"] == "succeeded" and task["result"] is None, task.get("error")
    ref = task["result_ref"]
    stored = b"".join(store.data.read(ref["id"]))
    assert json.loads(stored) == {"rows": [f"{i:08d}" + "x" * 1016 for i in range(2048)]}
    assert ref["sha256"] == hashlib.sha256(stored).hexdigest() == task["attempts"][0]["digest"]
    assert ref["content_type"] == "application/json" and ref["size"] == len(stored)
    assert "result" not in task["attempts"][0] or task["attempts"][0]["result"] is None
    meta = store.data.get(ref["id"])
    assert meta["owner"] == "ann" and meta["task_id"] == big

    task = store.tasks.get(path)
    assert task["status"] == "succeeded", task.get("error")
    block = hashlib.sha256(b"model.bin").digest() * (1 << 15)
    assert task["result_ref"]["size"] == 3 << 20
    assert b"".join(store.data.read(task["result_ref"]["id"])) == block * 3
    assert store.data.get(task["result_ref"]["id"])["name"] == "model.bin"
    assert store.tasks.get(small)["result"] == {"rows": []}  # small results stay inline
    assert store.tasks.get(small).get("result_ref") is None
    assert not list((tmp_path / "cache").glob("**/work-*"))


def test_redundant_large_result_agrees_by_digest(store, db_uri, tmp_path):
    [task_id] = publish(store, {"function": f"{DF}:big_json", "args": [6], "redundancy": 2, "quorum": 2})
    run_burst(db_uri, tmp_path, concurrency=2, distinct_grace_s=0)
    task = store.tasks.get(task_id)
    assert task["status"] == "succeeded", task.get("error")
    digests = {a["digest"] for a in task["attempts"]}
    assert len(task["attempts"]) == 2 and len(digests) == 1
    assert all(a.get("result") is None and a["result_ref"]["sha256"] in digests for a in task["attempts"])
    assert task["result_ref"]["sha256"] in digests
    assert len(json.dumps(task, default=str)) < 100_000  # digests and references, no copies


def test_permanent_failures_are_not_retried(store, db_uri, tmp_path):
    gone = store.data.put_bytes(b"soon gone", name="g", owner="ann")
    ids = publish(store, {"function": f"{DF}:give_up", "max_retries": 3},
                  {"function": f"{DF}:two_args", "args": [1], "max_retries": 3},
                  {"function": "tests.task_functions:not_json", "max_retries": 3},
                  {"function": f"{DF}:outside_path", "max_retries": 3},
                  {"function": f"{DF}:checksum", "args": [{"__data__": gone["id"]}], "max_retries": 3})
    store.data.delete(gone["id"])
    run_burst(db_uri, tmp_path)
    errors = []
    for task_id in ids:
        task = store.tasks.get(task_id)
        assert task["status"] == "failed" and task["reason"] == "permanent", task
        assert len(task["attempts"]) == 1 and task["attempts"][0]["permanent"] is True
        errors.append(task["error"])
    assert "Permanent: the input is malformed" in errors[0]
    assert "wrong arguments" in errors[1] and "missing a required argument: 'b'" in errors[1]
    assert "not JSON" in errors[2]
    assert "working directory" in errors[3]
    assert gone["id"] in errors[4]
    # An ordinary error is still retried.
    [flaky] = publish(store, {"function": "fail", "args": ["boom"], "max_retries": 1, "retry_backoff_s": 0})
    run_burst(db_uri, tmp_path)
    task = store.tasks.get(flaky)
    assert task["reason"] == "retries_exhausted" and len(task["attempts"]) == 2
