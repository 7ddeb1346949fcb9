"""/metrics: a prometheus-client collector that reads MongoDB at scrape time.

Counters are derived from the stored tasks, so every server process reports the same
figures and a restart resets nothing. Families (all prefixed ``suanwang_``):

    tasks{status,function}                      gauge: tasks now in each status
    queue_oldest_age_seconds                    gauge: age of the oldest queued, enabled task
    task_duration_seconds{function}             histogram: started_at -> finished_at of the
                                                most recent finished tasks (HISTOGRAM_WINDOW)
    attempts_started_total{function}            counter: attempts ever claimed
    attempts_finished_total{function,state}     counter: attempts ended, by outcome
    workers_online                              gauge: workers online or draining
    worker_online / worker_cpu_percent / worker_memory_percent {worker}
    worker_temperature_celsius{worker,sensor}
    gpu_utilization_percent / gpu_memory_used_bytes / gpu_memory_total_bytes /
    gpu_temperature_celsius {worker,gpu}

Each scrape runs a few aggregations over ``tasks``: fine for the few-machine networks
Suanwang is for; put a longer scrape interval on very large task collections.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from fsm.store import Store, server_now

#: Task duration buckets in seconds.
BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800, 3600)
#: Finished tasks the duration histogram looks at (the most recent).
HISTOGRAM_WINDOW = 50_000


class StoreCollector:
    """A prometheus-client custom collector over one Store."""

    def __init__(self, store: Store):
        self.store = store

    def collect(self):
        db = self.store.db
        by_status = GaugeMetricFamily("suanwang_tasks", "Tasks by status and function", labels=["status", "function"])
        for row in db.tasks.aggregate([{"$group": {"_id": {"s": "$status", "f": "$function"}, "n": {"$sum": 1}}}]):
            by_status.add_metric([row["_id"]["s"], row["_id"]["f"]], row["n"])
        yield by_status

        now = server_now(db)
        age = GaugeMetricFamily("suanwang_queue_oldest_age_seconds", "Age of the oldest queued task", labels=[])
        oldest = db.tasks.find_one({"status": "queued", "is_enabled": True}, {"created_at": 1},
                                   sort=[("created_at", 1)])
        age.add_metric([], max(0.0, (now - oldest["created_at"]).total_seconds()) if oldest else 0.0)
        yield age

        yield from self._attempts(db)
        yield self._durations(db)
        yield from self._workers(db)

    def _attempts(self, db):
        """Counters from the stored attempts (earlier rounds included, so they never go down)."""
        started = CounterMetricFamily("suanwang_attempts_started", "Attempts claimed by workers",
                                      labels=["function"])
        ended = CounterMetricFamily("suanwang_attempts_finished", "Attempts ended, by outcome",
                                    labels=["function", "state"])
        per_fn: dict[str, int] = {}
        rows = db.tasks.aggregate([
            {"$project": {"function": 1, "a": {"$concatArrays": [{"$ifNull": ["$attempts", []]},
                                                                 {"$ifNull": ["$previous_attempts", []]}]}}},
            {"$unwind": "$a"},
            {"$group": {"_id": {"f": "$function", "s": "$a.state"}, "n": {"$sum": 1}}},
        ])
        for row in sorted(rows, key=lambda r: (r["_id"]["f"], r["_id"]["s"])):
            fn, state = row["_id"]["f"], row["_id"]["s"]
            per_fn[fn] = per_fn.get(fn, 0) + row["n"]
            if state != "running":
                ended.add_metric([fn, state], row["n"])
        for fn, n in per_fn.items():
            started.add_metric([fn], n)
        yield started
        yield ended

    def _durations(self, db):
        hist = HistogramMetricFamily("suanwang_task_duration_seconds", "Run time of finished tasks (start to end)",
                                     labels=["function"])
        branches = [{"case": {"$lte": ["$d", b]}, "then": b} for b in BUCKETS]
        rows = db.tasks.aggregate([
            {"$match": {"finished_at": {"$type": "date"}, "started_at": {"$type": "date"}}},
            {"$sort": {"finished_at": -1}}, {"$limit": HISTOGRAM_WINDOW},
            {"$project": {"function": 1, "d": {"$divide": [{"$subtract": ["$finished_at", "$started_at"]}, 1000]}}},
            {"$group": {"_id": {"f": "$function", "b": {"$switch": {"branches": branches, "default": "inf"}}},
                        "n": {"$sum": 1}, "sum": {"$sum": "$d"}}},
        ])
        per_fn: dict[str, dict] = {}
        for row in rows:
            entry = per_fn.setdefault(row["_id"]["f"], {"counts": {}, "sum": 0.0})
            entry["counts"][row["_id"]["b"]] = row["n"]
            entry["sum"] += row["sum"]
        for fn, entry in sorted(per_fn.items()):
            cumulative, buckets = 0, []
            for bound in BUCKETS:
                cumulative += entry["counts"].get(bound, 0)
                buckets.append((str(float(bound)), cumulative))
            cumulative += entry["counts"].get("inf", 0)
            buckets.append(("+Inf", cumulative))
            hist.add_metric([fn], buckets, entry["sum"])
        return hist

    def _workers(self, db):
        cpu = GaugeMetricFamily("suanwang_worker_cpu_percent", "Worker CPU use", labels=["worker"])
        mem = GaugeMetricFamily("suanwang_worker_memory_percent", "Worker memory use", labels=["worker"])
        online = GaugeMetricFamily("suanwang_worker_online", "1 when the worker is online", labels=["worker"])
        temps = GaugeMetricFamily("suanwang_worker_temperature_celsius", "Sensor temperatures",
                                  labels=["worker", "sensor"])
        gpu_util = GaugeMetricFamily("suanwang_gpu_utilization_percent", "GPU utilisation", labels=["worker", "gpu"])
        gpu_mem = GaugeMetricFamily("suanwang_gpu_memory_used_bytes", "GPU memory used", labels=["worker", "gpu"])
        gpu_total = GaugeMetricFamily("suanwang_gpu_memory_total_bytes", "GPU memory", labels=["worker", "gpu"])
        gpu_temp = GaugeMetricFamily("suanwang_gpu_temperature_celsius", "GPU temperature", labels=["worker", "gpu"])
        count = GaugeMetricFamily("suanwang_workers_online", "Workers online or draining", labels=[])
        live = 0
        for w in db.workers.find({}, {"state": 1, "cpu": 1, "mem": 1, "temps": 1, "gpus": 1}):
            name = w["_id"]
            is_live = w.get("state") in ("online", "draining")
            live += is_live
            online.add_metric([name], 1.0 if is_live else 0.0)
            if (w.get("cpu") or {}).get("percent") is not None:
                cpu.add_metric([name], float(w["cpu"]["percent"]))
            if (w.get("mem") or {}).get("percent") is not None:
                mem.add_metric([name], float(w["mem"]["percent"]))
            for sensor, value in (w.get("temps") or {}).items():
                if isinstance(value, (int, float)):
                    temps.add_metric([name, sensor], float(value))
            for gpu in w.get("gpus") or []:
                label = [name, str(gpu.get("index"))]
                for family, key in ((gpu_util, "util"), (gpu_mem, "mem_used"), (gpu_total, "mem_total"),
                                    (gpu_temp, "temp")):
                    if isinstance(gpu.get(key), (int, float)):
                        family.add_metric(label, float(gpu[key]))
        count.add_metric([], live)
        yield from (count, online, cpu, mem, temps, gpu_util, gpu_mem, gpu_total, gpu_temp)


def render(store: Store) -> bytes:
    """The Prometheus text exposition of the current state."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store))
    return generate_latest(registry)
