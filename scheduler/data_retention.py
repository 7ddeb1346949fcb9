"""The data housekeeping job, run by the leader: chunks of cut-off uploads are swept, and data
no task refers to is deleted once older than ``ServerConfig.data_retention_days``.
A task's inputs (``data_refs``) and results (``result_ref``) live as long as the task."""
from __future__ import annotations

import logging

from fsm.store import Store
from scheduler import service_data
from scheduler.leader_loop import Job

log = logging.getLogger("suanwang.data")
JOB_NAME = "data-retention"
#: How often the job runs.
PERIOD_S = 600.0


def run(store: Store, max_age_s: float | None) -> dict:
    """One round (MongoDB errors propagate: the leader loop logs them and backs off)."""
    done = service_data.retention(store, max_age_s)
    if done["expired"] or done["orphan_chunks"]:
        log.info("data retention: deleted %d unreferenced object(s), %d orphan chunk(s)", len(done["expired"]),
                 done["orphan_chunks"])
    return done


def install(leader, config) -> Job:
    """Run the retention round every ``PERIOD_S`` whenever ``leader`` holds the lease."""
    days = config.data_retention_days
    max_age_s = days * 86400 if days is not None else None

    def round_(_stop) -> None:
        run(leader.store, max_age_s)

    job = Job(JOB_NAME, PERIOD_S, round_)
    leader.add(job)
    return job
