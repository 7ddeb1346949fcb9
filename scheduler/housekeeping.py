"""Housekeeping, a periodic job run by exactly one server process: the lease holder.

``tick(store, offline_after_s)`` is one round of housekeeping: workers not seen lately become
offline, attempts whose lease expired are lost (and their tasks re-queued or failed), pending
tasks whose time has come are queued; idle workers are woken when something became claimable.
Every part is idempotent, so a second run (or two servers at a hand-over) changes nothing more.

``install(leader)`` adds it to the leader's jobs (``scheduler.leader_loop``: the lease, the
loop, errors logged and backed off).
"""
from __future__ import annotations

import logging

from fsm.store import Store
from scheduler.leader_loop import Job

log = logging.getLogger("suanwang.scheduler")
HOUSEKEEPING_JOB = "housekeeping"
#: Every this many rounds the whole tick runs; the others only re-queue lost attempts and queue
#: tasks whose time has come (what a user waits on).
FULL_EVERY = 10


def tick(store: Store, offline_after_s: float, full: bool = True) -> dict:
    """One round of housekeeping; safe to run twice, or in two processes at once.

    ``full=False`` leaves out the slow-moving parts (workers gone offline, the crash sweep of
    dependents), which the job runs every ``FULL_EVERY`` rounds.
    """
    offline = store.workers.mark_offline(offline_after_s) if full else []
    lost = due = 0
    if full or store.tasks.anything_due():  # (the full round asks each part itself)
        lost = store.tasks.requeue_expired()
        due = store.tasks.promote_due()
    settled = store.tasks.flow.sweep() if full else 0  # dependents a crash left waiting on an ended task
    if lost or due or settled:
        store.wakeups.signal(n=lost + due + settled)
    if offline:
        log.warning("workers offline (no heartbeat for %gs): %s", offline_after_s, ", ".join(offline))
    if settled:
        log.warning("settled %d dependent(s) left waiting on ended tasks", settled)
    return {"offline": offline, "lost": lost, "due": due}


def install(leader, *, interval_s: float = 1.0, offline_after_s: float = 10.0) -> Job:
    """Run ``tick`` every ``interval_s`` in ``leader``'s process whenever it holds the lease."""
    rounds = [0]

    def run(_stop) -> None:
        tick(leader.store, offline_after_s, full=rounds[0] % FULL_EVERY == 0)
        rounds[0] += 1

    job = Job(HOUSEKEEPING_JOB, interval_s, run)
    leader.add(job)
    return job
