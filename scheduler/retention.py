"""The task retention job, run by the leader (``scheduler.leader_loop``) over ``fsm.store.retention``.

Every ``retention_every_s`` it caps the lists of newly finished tasks and, when
``retention_days`` is set, moves (or deletes, ``retention_mode``) finished tasks older than
it, a bounded number per round, so a large backlog drains over several rounds without
holding MongoDB for long. MongoDB errors propagate: the leader loop logs them and backs off.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from fsm.store import Store
from scheduler.leader_loop import Job

log = logging.getLogger("suanwang.retention")
JOB_NAME = "retention"
#: Batches per round (each of ``batch`` tasks).
BATCHES_PER_ROUND = 10


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


def run(store: Store, policy: RetentionPolicy) -> dict:
    """One round; returns how many tasks were moved and how many had their lists capped."""
    trimmed = store.retention.cap_lists(policy.history_cap, policy.attempts_cap, batch=policy.batch,
                                        max_batches=BATCHES_PER_ROUND)
    moved = 0
    if policy.older_than_days is not None:
        moved = store.retention.archive_finished(policy.older_than_days * 86400, policy.mode, batch=policy.batch,
                                                 max_batches=BATCHES_PER_ROUND)
    if moved or trimmed:
        log.info("retention: %d finished task(s) %s, %d task(s) with lists capped", moved,
                 "archived" if policy.mode == "archive" else "deleted", trimmed)
    return {"moved": moved, "trimmed": trimmed}


def install(leader, policy: RetentionPolicy) -> Job:
    """Run a round every ``policy.every_s`` whenever ``leader`` holds the lease."""
    def round_(_stop) -> None:
        run(leader.store, policy)

    job = Job(JOB_NAME, policy.every_s, round_)
    leader.add(job)
    return job
