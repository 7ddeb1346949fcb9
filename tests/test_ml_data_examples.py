"""The LightGBM data examples through a real worker daemon: a CSV data set by reference trains a
model file (stored in GridFS), and inference takes that model by reference."""
from __future__ import annotations

import sys

from fsm.store.spec import validate
from registry.service import Registry
from tests.test_ml_examples import EXAMPLES, example_repo  # noqa: F401 - the fixture
from tests.test_registry import ADMIN
from worker.config import WorkerConfig
from worker.daemon import Daemon


def test_train_from_a_csv_and_predict_with_the_model_by_reference(db, store, db_uri, tmp_path,
                                                                  example_repo):  # noqa: F811
    registry = Registry(db, str(tmp_path / "server-cache"), roots=[str(example_repo.parent)])
    registry.add_repo(ADMIN, str(example_repo), name="ml")
    for code, entrypoint in (("lgbm_train_csv", "mlfuncs.lgbm_data:train_csv"),
                             ("lgbm_predict_csv", "mlfuncs.lgbm_data:predict_csv")):
        registry.register(ADMIN, {"repo": "ml", "ref": "v1", "entrypoint": entrypoint, "code": code,
                                  "version": "1.0", "description": code, "developer_name": "examples"})
    sys.path.insert(0, str(EXAMPLES))
    try:
        from mlfuncs.lgbm_data import write_csv

        csv = write_csv(tmp_path / "train.csv", n_samples=1500, seed=2)
    finally:  # leave no trace: later tests load mlfuncs from a checkout and check where it came from
        sys.path.remove(str(EXAMPLES))
        for name in [m for m in sys.modules if m == "mlfuncs" or m.startswith("mlfuncs.")]:
            del sys.modules[name]
    data = store.data.put_bytes(csv.read_bytes(), name="train.csv", owner="sue", content_type="text/csv")

    def run(body):
        [task_id] = store.tasks.insert([store.tasks.document(validate(body), "sue")])
        Daemon(WorkerConfig(mongo_uri=db_uri, name="ml1", concurrency=1, heartbeat_s=0.2, burst=True,
                            cache_dir=str(tmp_path / "worker-cache"), poll_max_s=0.2)).run()
        task = store.tasks.get(task_id)
        assert task["status"] == "succeeded", task.get("error")
        return task

    trained = run({"function": "lgbm_train_csv", "version": "1.0", "args": [{"__data__": data["id"]}],
                   "kwargs": {"num_rounds": 30}})
    assert trained["result"] is None and trained["result_ref"]["size"] > 1000
    model_id = trained["result_ref"]["id"]
    assert b"tree" in b"".join(store.data.read(model_id))
    scored = run({"function": "lgbm_predict_csv", "version": "1.0",
                  "args": [{"__data__": model_id}, {"__data__": data["id"]}]})
    assert scored["result"]["n"] == 1500 and scored["result"]["trees"] == 30
    assert scored["result"]["auc"] > 0.8
