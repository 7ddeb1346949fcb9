"""The Celery side of scripts/bench.py: a no-op task on the local Redis (db 15)."""
import time

from celery import Celery

app = Celery("bench", broker="redis://127.0.0.1:6379/15", backend="redis://127.0.0.1:6379/15")
app.conf.update(worker_prefetch_multiplier=1, task_acks_late=False, result_expires=600,
                broker_connection_retry_on_startup=True)


@app.task
def noop():
    return None


@app.task
def started_at():
    return time.time()
