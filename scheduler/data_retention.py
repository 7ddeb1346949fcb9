"""The data housekeeping job, run by the leader: chunks of cut-off uploads are swept, and data
no task refers to is deleted once older than ``ServerConfig.data_retention_days``.
A task's inputs (``data_refs``) and results (``result_ref``) live as long as the task."""
from __future__ import annotations

import logging

from pymongo.errors import PyMongoError

from scheduler import housekeeping, service_data

log = logging.getLogger("suanwang.data")
JOB_ID = "data_retention"
#: How often the job runs.
PERIOD_S = 600.0


def run(db_name: str, max_age_s: float | None) -> None:
    """The APScheduler job (module level: the job store keeps only a reference)."""
    store = housekeeping._stores.get(db_name)
    if store is None:
        return
    try:
        done = service_data.retention(store, max_age_s)
    except PyMongoError as exc:
        log.warning("data retention skipped: MongoDB error %s", str(exc).split(",")[0][:200])
        return
    if done["expired"] or done["orphan_chunks"]:
        log.info("data retention: deleted %d unreferenced object(s), %d orphan chunk(s)", len(done["expired"]),
                 done["orphan_chunks"])


def install(leader, config) -> None:
    days = getattr(config, "data_retention_days", None)
    max_age_s = days * 86400 if days is not None else None

    def gained(scheduler) -> None:
        scheduler.add_job(run, "interval", seconds=PERIOD_S, id=JOB_ID, replace_existing=True,
                          args=[leader.store.db.name, max_age_s], coalesce=True, max_instances=1)

    leader.on_lead.append(gained)
