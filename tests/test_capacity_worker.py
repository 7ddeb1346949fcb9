"""Resources as capacity, on real worker processes: claims fit the free cores and GPUs, a GPU
task sees only the GPUs it was given, two tasks share a GPU only when both ask for memory on
one, and the thermal guard stops claims while a machine is too hot."""
from tests.procs import wait_for

FN = "tests.chaos_functions"


def finished(http, url, ids, timeout=90):
    def done():
        tasks = [http.get(f"{url}/tasks/{t}").json() for t in ids]
        return tasks if all(t["status"] in ("succeeded", "failed", "cancelled") for t in tasks) else None
    holder = {}
    wait_for(lambda: holder.setdefault("t", done()) is not None or holder.pop("t"), timeout=timeout,
             what="the tasks to finish")
    return holder["t"]


def most_at_once(path) -> int:
    spans = [tuple(map(float, line.split())) for line in path.read_text().splitlines()]
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    now = peak = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    return peak


def test_claims_fit_the_free_cores(cluster, tmp_path):
    # Given a worker with 4 slots but 2 cores to offer
    cluster.start_server()
    cluster.start_worker("cores", concurrency=4, heartbeat=0.3, extra=("--cpus", "2"))
    http, log = cluster.http(), tmp_path / "spans.txt"
    # When six one-core tasks and one two-core task run
    ids = cluster.publish([{"function": f"{FN}:overlap", "args": [str(log), 0.6], "requires": {"cpus": 1}}
                           for _ in range(6)] + [{"function": f"{FN}:overlap", "args": [str(log), 0.6],
                                                  "requires": {"cpus": 2}}])
    tasks = finished(http, cluster.url, ids)
    # Then all ran, never more than two at once
    assert all(t["status"] == "succeeded" for t in tasks)
    assert most_at_once(log) == 2
    # and a task needing more cores than the worker has waits, saying why
    big = cluster.publish({"function": "noop", "requires": {"cpus": 3}})
    why = http.get(f"{cluster.url}/tasks/{big}/explain").json()
    assert why["status"] == "queued" and why["eligible_workers"] == 0
    assert "cores: the task needs 3, the worker offers 2" in why["workers"][0]["why_not"]


def test_gpu_tasks_see_only_their_gpus_and_share_only_when_both_allow(cluster, tmp_path):
    # Given a worker declaring two 24 GB GPUs
    cluster.start_server()
    cluster.start_worker("gpus", concurrency=4, heartbeat=0.3, extra=("--gpus", "2", "--gpu-mem-gb", "24,24"))
    http = cluster.http()
    whole = cluster.publish([{"function": f"{FN}:visible_gpus", "args": [0.8], "requires": {"gpus": 1}}
                             for _ in range(2)])
    both = cluster.publish({"function": f"{FN}:visible_gpus", "requires": {"gpus": 2}})
    shared = cluster.publish([{"function": f"{FN}:visible_gpus", "args": [0.8], "requires": {"gpu_mem_gb": 10}}
                              for _ in range(2)])
    plain = cluster.publish({"function": f"{FN}:visible_gpus"})
    too_big = cluster.publish({"function": f"{FN}:visible_gpus", "requires": {"gpu_mem_gb": 40}})
    results = {t["id"]: t["result"] for t in finished(http, cluster.url, whole + [both] + shared + [plain])}
    assert sorted(results[t] for t in whole) == ["0", "1"]  # one GPU each, never the same
    assert results[both] == "0,1"
    assert results[shared[0]] in ("0", "1") and results[shared[1]] in ("0", "1")
    assert results[plain] == ""  # a CPU task sees no GPU
    assert http.get(f"{cluster.url}/tasks/{too_big}").json()["status"] == "queued"
    why = http.get(f"{cluster.url}/tasks/{too_big}/explain").json()
    assert any(w.startswith("GPU memory") for w in why["workers"][0]["why_not"])


def test_the_thermal_guard_holds_claims_until_the_machine_cools(store, db_uri, tmp_path):
    from fsm.store.spec import validate
    from worker.config import WorkerConfig
    from worker.daemon import Daemon

    daemon = Daemon(WorkerConfig(mongo_uri=db_uri, name="hot", concurrency=1, heartbeat_s=0.2, burst=True,
                                 cache_dir=str(tmp_path / "cache"), max_temp_c=80), store)
    try:
        daemon.start()
        store.tasks.insert([store.tasks.document(validate({"function": "noop"}), "tester")])
        # (the heartbeat passes each snapshot's hottest reading; here the readings are given)
        daemon.check_temperature(("cpu package", 91.0))
        assert daemon._claiming_paused()  # too hot: the slots claim nothing
        assert daemon.describe()["too_hot"] == {"sensor": "cpu package", "celsius": 91.0}
        daemon.check_temperature(("cpu package", 60.0))
        assert not daemon._claiming_paused() and daemon._step(0, sync=True)  # cooled: it claims again
        assert daemon.describe()["too_hot"] is None
    finally:
        daemon.close()
