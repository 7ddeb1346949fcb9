"""The Celery side of scripts/bench_workflow.py: a chord of no-ops and its gather, Redis db 14."""
from celery import Celery

app = Celery("bench_workflow", broker="redis://127.0.0.1:6379/14", backend="redis://127.0.0.1:6379/14")
app.conf.update(worker_prefetch_multiplier=1, task_acks_late=False, result_expires=600,
                broker_connection_retry_on_startup=True)


@app.task
def noop():
    return None


@app.task
def count(results):
    return len(results)
