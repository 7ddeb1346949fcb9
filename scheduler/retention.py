"""The retention job: one APScheduler job on the leader, over ``fsm.store.retention``.

Every ``retention_every_s`` it caps the lists of newly finished tasks and, when a retention
age is set, moves (or deletes) finished tasks older than it, a bounded number per run so a
large backlog drains over several runs without holding MongoDB for long.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from pymongo.errors import PyMongoError

from scheduler.housekeeping import Leader, store_for

log = logging.getLogger("suanwang.retention")
JOB_ID = "retention"
#: Batches per run (each of ``batch`` tasks).
BATCHES_PER_RUN = 10


@dataclass(frozen=True)
class RetentionPolicy:
    older_than_days: float | None = None
    mode: str = "archive"
    history_cap: int = 100
    attempts_cap: int = 20
    every_s: float = 60.0
    batch: int = 1000

    @classmethod
    def from_server_config(cls, config) -> "RetentionPolicy":
        return cls(older_than_days=config.retention_days, mode=config.retention_mode,
                   history_cap=config.history_cap, attempts_cap=config.attempts_cap,
                   every_s=config.retention_every_s, batch=config.retention_batch)


def run_retention(db_name: str, policy: dict) -> dict | None:
    """The job (module level, picklable arguments, idempotent); returns what it did."""
    store = store_for(db_name)
    if store is None:
        return None
    p = RetentionPolicy(**policy)
    try:
        trimmed = store.retention.cap_lists(p.history_cap, p.attempts_cap, batch=p.batch,
                                            max_batches=BATCHES_PER_RUN)
        moved = 0
        if p.older_than_days is not None:
            moved = store.retention.archive_finished(p.older_than_days * 86400, p.mode, batch=p.batch,
                                                     max_batches=BATCHES_PER_RUN)
    except PyMongoError as exc:
        log.warning("retention skipped: MongoDB error %s", str(exc).split(",")[0][:200])
        return None
    if moved or trimmed:
        log.info("retention: %d finished task(s) %s, %d task(s) with lists capped", moved,
                 "archived" if p.mode == "archive" else "deleted", trimmed)
    return {"moved": moved, "trimmed": trimmed}


def install(leader: Leader, policy: RetentionPolicy) -> None:
    """Register the job each time this process gains leadership."""
    def add(scheduler) -> None:
        scheduler.add_job(run_retention, "interval", seconds=policy.every_s, id=JOB_ID,
                          args=[leader.store.db.name, asdict(policy)], replace_existing=True, coalesce=True,
                          max_instances=1, misfire_grace_time=max(1, int(policy.every_s)))
    leader.on_lead.append(add)
