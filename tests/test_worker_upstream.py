"""``{"__result__": id}`` arguments resolved by the worker from the store (real mongod)."""
import pytest

from fsm.store import Claimant
from fsm.store.spec import validate
from worker.datacache import DataCache
from worker.upstream import ResultUnavailable, resolve


def no_fetch(data_id):
    raise AssertionError(f"nothing large to fetch, asked for {data_id}")


def finished(store, result=None, **fields):
    task_id = store.tasks.insert([store.tasks.document(validate({"function": "echo"}), "tests")])[0]
    claim = store.tasks.claim_next(Claimant("w"))
    store.tasks.finish_attempt(task_id, claim.attempt_id, "succeeded", result=result, worker="w")
    if fields:
        store.db.tasks.update_one({"_id": task_id}, {"$set": fields})
    return task_id


def test_results_replace_references_anywhere_and_other_markers_stay(store):
    a = finished(store, {"rows": [1, 2]})
    b = finished(store, None)
    args, kwargs = resolve(store, [{"__result__": a}, [{"x": {"__result__": b}}], {"__data__": "d1"}],
                           {"k": {"__result__": a}}, no_fetch)
    assert args == [{"rows": [1, 2]}, [{"x": None}], {"__data__": "d1"}] and kwargs == {"k": {"rows": [1, 2]}}


def test_a_reference_to_a_task_without_a_result_is_refused_clearly(store):
    pending = store.tasks.insert([store.tasks.document(validate({"function": "echo"}), "tests")])[0]
    with pytest.raises(ResultUnavailable, match="is queued, not succeeded"):
        resolve(store, [{"__result__": pending}], {}, no_fetch)
    with pytest.raises(ResultUnavailable, match="no such task"):
        resolve(store, [{"__result__": "gone"}], {}, no_fetch)


def test_a_large_result_arrives_as_a_path_from_the_data_cache(store, tmp_path):
    meta = store.data.put_bytes(b"x" * 300_000, name="big.json", owner="tests")
    big = finished(store, None, result_ref={"id": meta["id"], "size": meta["size"], "sha256": meta["sha256"]})
    cache = DataCache(tmp_path / "data")
    (path,), _ = resolve(store, [{"__result__": big}], {}, lambda data_id: cache.fetch(store, data_id))
    assert path.read_bytes() == b"x" * 300_000
