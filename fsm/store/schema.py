"""The stored layout of Suanwang, described in one place, and ``ensure_indexes()``.

Database ``suanwang`` (or the URI's path). Every datetime is UTC, set by the MongoDB
server's clock (``$$NOW``) wherever a lease or a history entry depends on it.

``tasks`` — one submitted unit of work (``_id``: a string id)
    function, version, args, kwargs        what to run (JSON data, never pickles)
    priority (int, higher first), is_enabled (bool: disabled tasks are never claimed)
    status                                 pending | queued | running | succeeded | failed | cancelled
    requires {gpus, mem_gb, tags}          what a worker must offer to claim it
    lane                                   the claim lane derived from requires (``fsm.lanes``)
    distinct_hosts, hosts [host]           refuse two attempts on one machine; the machines used
    warnings [text]                        said at publish (e.g. fewer eligible workers than redundancy)
    redundancy, quorum                     run on k distinct workers; succeed when q results agree
    timeout_s, max_retries, retry_backoff_s
    open_slots                             attempts still to hand out (claimable while > 0)
    failures                               failed attempts so far (crash, timeout, error, lost lease)
    workers [name]                         workers that had an attempt (distinct-worker rule)
    attempts [{id, number, worker, state, started_at, lease_until, ended_at,
               result, result_ref, digest, error, traceback, logs, permanent,
               cpu_s, gpu_s (measured by the worker: CPU and GPU seconds)}]
    previous_attempts [...]                attempts of earlier rounds (before a manual re-queue)
    result, error, reason                  the accepted result; the last error; why it failed
    result_ref {id, size, sha256, content_type}   a result stored in GridFS (``result`` is then null);
                                           an attempt's digest is the sha256 of its bytes
    data_refs [data id]                    the {"__data__": id} arguments (delete / retention check it)
    history [{from, to, at, by, reason}]   every status change, pushed in the same update
    run_after                              when a pending task becomes queued
    depends_on [task id], deps_done [id]   dependencies, and those already succeeded (only when set);
                                           a waiting task is pending with reason waiting_for_dependencies
    parent                                 the task that submitted this one (only for child tasks)
    progress {fraction, message, at}       the last progress a running attempt reported
    price {per_call, per_cpu_s, per_gpu_s}, billing {account, reserved, charged}, settled
                                           a priced task's reservation and its settlement
                                           (only on priced tasks; see ``fsm.store.ledger``)
    submitted_by, created_at, updated_at, started_at, finished_at
    rev                                    bumped by every write: the optimistic-concurrency fence

``workers`` — one worker daemon's latest whoami (``_id``: the worker's name)
    host, addresses, pid, started_at, last_seen, state (online | draining | offline),
    cpu {percent, per_core, count}, load [1, 5, 15], mem {total, used, percent}, disk {...},
    temps {sensor: celsius}, gpus [{index, name, util, mem_used, mem_total, temp}], gpu_note,
    tags, concurrency, running [attempt ids], functions, versions_ready
``lanes`` — one document per claim lane that was ever published (``_id``: the lane name),
    with its ``requires`` {gpus, mem_class, tags}; workers read it to know which lanes they serve
``machine_stats`` — per (worker, function): recent outcomes, consecutive failures, mean run time,
    and a quarantine (``quarantined_until``, ``quarantine_reason``) while the machine is distrusted
``worker_samples`` — downsampled heartbeat history for charts (TTL: 2 days)
``users`` — name (``_id``), role, password_hash, tokens [{id, hash, label, created_at, expires_at,
    revoked_at, revoked_by}] (``fsm.store.tokens``), groups
``token_uses`` — when each token was last used (``fsm.store.tokens``)
``sessions`` — the pages' logins, kept on the server (``fsm.store.sessions``)
``accounts``, ``ledger``, ``ledger_state`` — credit balances, their append-only movements and
    how far the check for orphan reservations has read (``fsm.store.ledger``)
``audit`` — the append-only trail of who changed what (``fsm.store.audit``)
``functions`` — owned by ``registry.store`` (see there)
``wakeups`` — a small capped collection; a publish inserts one document so idle
    workers tailing it wake within milliseconds
``data.files`` / ``data.chunks`` — the GridFS bucket of data objects (see ``fsm.store.data``)
``locks`` — named leases (``fsm.store.locks``; the leader holds ``scheduler``)
``schedules`` — schedule definitions, plain documents (trigger, task template, paused, owner,
    ``next_fire_at``; ``fsm.store.schedules``): a firing creates the task
    ``<schedule id>@<fire time>`` (with ``schedule_id`` and ``scheduled_for``), so a duplicate
    firing is refused by the unique ``_id``. (No ``apscheduler_*`` collection is used any more;
    databases from before may still hold ``apscheduler_jobs`` / ``apscheduler_schedules``,
    which nothing reads: drop them at leisure.)
``subscriptions``, ``deliveries``, ``alerts``, ``notify_state`` — notifications (owned and
    indexed by ``scheduler.notify``): who wants which event, each delivery with its tries and
    last error, open alert episodes, and the change-stream resume token
``settings`` — server-wide values such as the web session key
"""
from __future__ import annotations

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.database import Database
from pymongo.errors import CollectionInvalid, OperationFailure

from fsm.lanes import lane_name, lane_requires
from fsm.store.wakeups import without_id

NAMESPACE_EXISTS = 48

CLAIM_INDEX = "claim_lane"
#: The claim index before lanes; dropped on connect (its keys differ, so it cannot be renamed).
OLD_CLAIM_INDEX = "claim"
WAKEUPS_BYTES = 1 << 20

TASK_INDEXES = [
    # The claim: equality on is_enabled, an $in over the worker's lanes, then the sort (MongoDB
    # merges the lanes' ranges by priority); only claimable tasks are in it.
    IndexModel([("is_enabled", ASCENDING), ("lane", ASCENDING), ("priority", DESCENDING), ("created_at", ASCENDING)],
               name=CLAIM_INDEX, partialFilterExpression={"open_slots": {"$gt": 0}}),
    # The reaper's scan for expired leases; a worker's lease renewal scans the running ones.
    IndexModel([("attempts.state", ASCENDING), ("attempts.lease_until", ASCENDING)],
               name="lease", partialFilterExpression={"status": "running"}),
    IndexModel([("run_after", ASCENDING)], name="due", partialFilterExpression={"status": "pending"}),
    # The queue's age (oldest queued, enabled task): /stats, /metrics, the portal and alerts.
    IndexModel([("is_enabled", ASCENDING), ("created_at", ASCENDING)], name="queue_age",
               partialFilterExpression={"status": "queued"}),
    # Listing pages: by status and by function, newest first.
    IndexModel([("status", ASCENDING), ("created_at", DESCENDING)], name="status_created"),
    IndexModel([("function", ASCENDING), ("created_at", DESCENDING)], name="function_created"),
    # /metrics: live tasks by status and function, counted from the index alone (no documents read).
    IndexModel([("status", ASCENDING), ("function", ASCENDING)], name="status_function"),
    IndexModel([("submitted_by", ASCENDING), ("created_at", DESCENDING)], name="user_created"),
    IndexModel([("created_at", DESCENDING)], name="created"),
    IndexModel([("priority", DESCENDING), ("created_at", DESCENDING)], name="priority_created"),
    IndexModel([("workers", ASCENDING), ("created_at", DESCENDING)], name="worker_created"),
    # the ?worker= filter: every attempt that ran there, failed ones and earlier rounds' included
    IndexModel([("attempts.worker", ASCENDING), ("created_at", DESCENDING)], name="attempt_worker_created"),
    IndexModel([("previous_attempts.worker", ASCENDING), ("created_at", DESCENDING)],
               name="previous_attempt_worker_created", sparse=True),
    IndexModel([("schedule_id", ASCENDING), ("scheduled_for", DESCENDING)], name="schedule_runs",
               partialFilterExpression={"schedule_id": {"$exists": True}}),
    # Workflows: a task's dependents (the release after each final state, the graph) and children.
    # Sparse: only tasks with dependencies or a parent carry the field.
    IndexModel([("depends_on", ASCENDING)], name="dependents", sparse=True),
    IndexModel([("parent", ASCENDING), ("created_at", DESCENDING)], name="children", sparse=True),
    # Sparse, not partial: unfinished tasks have no finished_at, and a plain range query can use it.
    IndexModel([("finished_at", DESCENDING)], name="finished", sparse=True),
]


def ensure_indexes(db: Database) -> None:
    """Create every collection's indexes (idempotent; called when a process connects)."""
    from fsm.store.functions import ensure_indexes as ensure_function_indexes
    from fsm.store.validators import ensure_validators

    ensure_validators(db)  # first: it creates tasks, workers and deliveries with their validators
    if OLD_CLAIM_INDEX in db.tasks.index_information():
        _add_missing_lanes(db)
        db.tasks.drop_index(OLD_CLAIM_INDEX)
    db.tasks.create_indexes(TASK_INDEXES)
    ensure_function_indexes(db)
    db.workers.create_indexes([IndexModel([("state", ASCENDING), ("last_seen", ASCENDING)], name="state_seen")])
    db.users.create_indexes([IndexModel([("tokens.hash", ASCENDING)], name="token", sparse=True)])
    db.locks.create_indexes([IndexModel([("expires_at", ASCENDING)], name="expires")])
    db.machine_stats.create_indexes([IndexModel([("worker", ASCENDING)], name="worker"),
                                     IndexModel([("function", ASCENDING)], name="function"),
                                     IndexModel([("quarantined_until", ASCENDING)], name="quarantined", sparse=True)])
    if "worker_samples" not in db.list_collection_names():
        try:
            db.create_collection("worker_samples", timeseries={"timeField": "at", "metaField": "worker",
                                                               "granularity": "seconds"},
                                 expireAfterSeconds=2 * 86400)
        except (CollectionInvalid, OperationFailure) as exc:  # another process created it first
            if isinstance(exc, OperationFailure) and exc.code != NAMESPACE_EXISTS:
                raise
    if "wakeups" not in db.list_collection_names():
        try:
            db.create_collection("wakeups", capped=True, size=WAKEUPS_BYTES, max=1000)
            db.wakeups.insert_one(without_id({"kind": "start"}))  # a tailable cursor needs one to hold on to
        except (CollectionInvalid, OperationFailure) as exc:
            if isinstance(exc, OperationFailure) and exc.code != NAMESPACE_EXISTS:
                raise


def _add_missing_lanes(db: Database) -> None:
    """Tasks stored before lanes existed get theirs (once, when the old claim index is dropped)."""
    for doc in db.tasks.find({"open_slots": {"$gt": 0}, "lane": {"$exists": False}}, {"requires": 1}):
        parts = lane_requires(doc.get("requires") or {})
        db.lanes.update_one({"_id": lane_name(parts)}, {"$setOnInsert": {"requires": parts}}, upsert=True)
        db.tasks.update_one({"_id": doc["_id"]}, {"$set": {"lane": lane_name(parts)}})
