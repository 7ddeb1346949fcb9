"""/metrics: a prometheus-client collector over the store's counters and read models.

Every server process reports the same figures and a restart resets nothing. Families (all
prefixed ``suanwang_``):

    tasks{status,function}                      gauge: tasks now in each status
    queue_oldest_age_seconds                    gauge: age of the oldest queued, enabled task
    task_duration_seconds{function}             histogram: started_at -> finished_at of the
                                                tasks that reached a final status
    attempts_started_total{function}            counter: attempts ever claimed
    attempts_finished_total{function,state}     counter: attempts ended, by outcome
    workers_online                              gauge: workers online or draining
    worker_online / worker_cpu_percent / worker_memory_percent {worker}
    worker_temperature_celsius{worker,sensor}
    gpu_utilization_percent / gpu_memory_used_bytes / gpu_memory_total_bytes /
    gpu_temperature_celsius {worker,gpu}

A scrape costs the same at 10,000 tasks as at 1,000,000 (``scripts/bench_metrics.py``): final
tasks and ended attempts come from ``task_counters`` (one small document per function, kept by
the task writer), live tasks and running attempts from their indexes, never from the history.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from fsm.store import Store
from fsm.store.counters import BUCKETS

FINAL_STATES = ("succeeded", "failed", "cancelled")


class StoreCollector:
    """A prometheus-client custom collector over one Store."""

    def __init__(self, store: Store):
        self.store = store

    def collect(self):
        counters = self.store.tasks.counters.all()
        live = self.store.reads.live_by_function()
        by_status = GaugeMetricFamily("suanwang_tasks", "Tasks by status and function", labels=["status", "function"])
        rows = {(status, fn): n for (status, fn), n in live.items()}
        for doc in counters:
            for status in FINAL_STATES:
                n = (doc.get("final") or {}).get(status, 0)
                if n:
                    rows[(status, doc["_id"])] = n
        for (status, fn), n in sorted(rows.items(), key=lambda item: (item[0][1], item[0][0])):
            by_status.add_metric([status, fn], n)
        yield by_status

        age = GaugeMetricFamily("suanwang_queue_oldest_age_seconds", "Age of the oldest queued task", labels=[])
        age.add_metric([], self.store.reads.queue_age_s())
        yield age

        yield from self._attempts(counters)
        yield self._durations(counters)
        yield from self._workers()

    def _attempts(self, counters: list[dict]):
        """Counters: attempts ended (counted as they end) and started (ended + running now)."""
        started = CounterMetricFamily("suanwang_attempts_started", "Attempts claimed by workers",
                                      labels=["function"])
        ended = CounterMetricFamily("suanwang_attempts_finished", "Attempts ended, by outcome",
                                    labels=["function", "state"])
        per_fn = dict(self.store.reads.running_attempts_by_function())
        for doc in sorted(counters, key=lambda d: d["_id"]):
            for state, n in sorted((doc.get("attempts") or {}).items()):
                ended.add_metric([doc["_id"], state], n)
                per_fn[doc["_id"]] = per_fn.get(doc["_id"], 0) + n
        for fn, n in sorted(per_fn.items()):
            if n:
                started.add_metric([fn], n)
        yield started
        yield ended

    def _durations(self, counters: list[dict]):
        hist = HistogramMetricFamily("suanwang_task_duration_seconds", "Run time of finished tasks (start to end)",
                                     labels=["function"])
        for doc in sorted(counters, key=lambda d: d["_id"]):
            counts = doc.get("duration") or {}
            if not counts:
                continue
            cumulative, buckets = 0, []
            for i, bound in enumerate(BUCKETS):
                cumulative += counts.get(f"b{i}", 0)
                buckets.append((str(float(bound)), cumulative))
            cumulative += counts.get("inf", 0)
            buckets.append(("+Inf", cumulative))
            hist.add_metric([doc["_id"]], buckets, doc.get("duration_sum", 0.0))
        return hist

    def _workers(self):
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
        for w in self.store.workers.list():
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
