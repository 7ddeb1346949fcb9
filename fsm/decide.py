"""Pure decisions: given a task document and what just happened, what is the next state?

No I/O here, and no other module decides: retries and their backoff, quorum, disputes,
cancellation, lost leases and the manual requeue are all decided here. The store reads a task,
asks one of these functions for a ``Plan``, and its one writer (``fsm.store.task_writer``)
applies the plan with one compare-and-set on the task's ``rev``; a lost race re-reads and
decides again. ``decide_lone_success`` is the one decision made without reading the task: its
``assumes`` say what the stored task must be for it to hold, and the writer filters on them.
"""
from __future__ import annotations

import hashlib
import json
import random
from datetime import timezone
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from fsm.errors import InvalidTransition
from fsm.states import FAILED_ATTEMPTS, FINAL, AttemptState, Status, check, check_attempt

A = AttemptState
MAX_BACKOFF_S = 3600.0
#: Reason of a task failed by an attempt that no retry could fix (see ``decide_attempt_end``).
PERMANENT = "permanent"


@dataclass
class Plan:
    """One write: the next status (None: unchanged), fields to set, attempts to change."""

    frm: Status
    to: Status | None = None
    reason: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    attempts: dict[str, dict[str, Any]] = field(default_factory=dict)
    ended: set[str] = field(default_factory=set)  # attempt ids whose ended_at is set now
    delay_s: float | None = None  # with to=PENDING: run_after = server now + delay_s
    #: Fields the stored task must equal for this plan to hold (a plan decided without reading the task).
    assumes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.to is not None and self.to != self.frm:
            check(self.frm, self.to)


def digest(value: Any) -> str:
    """A canonical digest of a JSON result: equal data gives equal digests."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def backoff_s(failures: int, base: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter: uniformly in [0.5, 1] x base x 2^(failures-1), capped."""
    if base <= 0:
        return 0.0
    ceiling = min(MAX_BACKOFF_S, base * 2 ** max(0, failures - 1))
    return ceiling * (0.5 + 0.5 * (rng or random).random())


def _others_running(task: dict, except_id: str) -> list[str]:
    return [a["id"] for a in task.get("attempts", []) if a["state"] == A.RUNNING and a["id"] != except_id]


def decide_attempt_end(task: dict, attempt_id: str, state: AttemptState, *, result: Any = None,
                       error: str | None = None, traceback: str | None = None, logs: str | None = None,
                       rng: random.Random | None = None, result_ref: dict | None = None,
                       permanent: bool = False) -> Plan:
    """An attempt ended (succeeded, failed, timed out, crashed, lost its lease).

    A result stored in GridFS comes as ``result_ref`` (its digest: the sha256 of its bytes);
    attempts keep digests and references, never copies of a large result. A ``permanent``
    failure (no retry can succeed) fails the task at once, reason ``permanent``.
    """
    frm = Status(task["status"])
    if frm != Status.RUNNING:
        raise InvalidTransition(f"task {task['_id']} is {frm.value}, not running")
    state = AttemptState(state)
    check_attempt(A.RUNNING, state)  # only a running attempt ends, and it ends in a final state
    update: dict[str, Any] = {"state": state.value}
    if state == A.SUCCEEDED:
        update.update(result=result, digest=result_ref["sha256"] if result_ref else digest(result))
        if result_ref:
            update["result_ref"] = result_ref
    else:
        update.update(error=error or state.value.replace("_", " "), traceback=traceback)
        if permanent:
            update["permanent"] = True
    if logs:
        update["logs"] = logs[-4000:]
    plan = Plan(frm=frm, attempts={attempt_id: update}, ended={attempt_id})

    others = _others_running(task, attempt_id)
    agreed = Counter(a["digest"] for a in task.get("attempts", []) if a["state"] == A.SUCCEEDED)
    open_slots = task.get("open_slots", 0)
    failures = task.get("failures", 0)
    quorum = task.get("quorum", 1)

    if state == A.SUCCEEDED:
        agreed[update["digest"]] += 1
        if agreed[update["digest"]] >= quorum:
            return _finish(plan, task, others, Status.SUCCEEDED, result=result, reason=None, result_ref=result_ref)
    elif state == A.LOST and _claimed_ahead(task, attempt_id):
        # A lease lost by an attempt claimed ahead: its worker died or was cut off, most likely
        # before the attempt's turn came. Not the task's fault, so not counted, and queued at once;
        # the task is never claimed ahead again, so a task that kills its workers is still counted.
        return _give_back(plan, task, attempt_id, f"retry after {state.value} (claimed ahead, not counted)")
    elif state in FAILED_ATTEMPTS:
        failures += 1
        plan.fields["failures"] = failures
        # Only attempts that stand toward the result keep their worker out of the next claim.
        plan.fields.update(_without(task, attempt_id))
        plan.fields["error"] = update["error"]
        if permanent:
            return _finish(plan, task, others, Status.FAILED, reason=PERMANENT)
        if failures > task.get("max_retries", 0):
            return _finish(plan, task, others, Status.FAILED, reason="retries_exhausted")
        open_slots += 1
        plan.fields["open_slots"] = open_slots
        if not others:
            delay = backoff_s(failures, task.get("retry_backoff_s", 1.0), rng)
            plan.to = Status.PENDING if delay > 0 else Status.QUEUED
            plan.reason = f"retry after {state.value}"
            plan.delay_s = delay if delay > 0 else None
            check(frm, plan.to)
            return plan

    best = max(agreed.values(), default=0)
    if best + len(others) + open_slots < quorum:
        plan.fields["open_slots"] = 0
        return _finish(plan, task, others, Status.FAILED, reason="disputed")
    return plan


def _claimed_ahead(task: dict, attempt_id: str) -> bool:
    """An attempt claimed ahead (``ahead`` on the attempt): lost, it may never have started."""
    return any(a["id"] == attempt_id and a.get("ahead") for a in task.get("attempts", []))


def _without(task: dict, attempt_id: str) -> dict:
    """The fields that let the attempt's worker (and, with ``distinct_hosts``, its machine) take
    the task again."""
    attempt = next(a for a in task["attempts"] if a["id"] == attempt_id)
    workers = list(task.get("workers", []))
    if attempt["worker"] in workers:
        workers.remove(attempt["worker"])
    fields: dict[str, Any] = {"workers": workers}
    if task.get("distinct_hosts"):
        hosts = list(task.get("hosts", []))
        if attempt.get("host") in hosts:
            hosts.remove(attempt.get("host"))
        fields["hosts"] = hosts
    return fields


def _give_back(plan: Plan, task: dict, attempt_id: str, reason: str) -> Plan:
    """The attempt's slot opens again without counting a failure; with no other attempt running
    the task is queued at once (a task handed back, or lost before its turn)."""
    plan.fields.update(_without(task, attempt_id), open_slots=task.get("open_slots", 0) + 1)
    if not _others_running(task, attempt_id):
        plan.to, plan.reason = Status.QUEUED, reason
        check(plan.frm, plan.to)
    return plan


def _finish(plan: Plan, task: dict, others: list[str], to: Status, *, reason: str | None,
            result: Any = None, result_ref: dict | None = None) -> Plan:
    """Close the task: its other running attempts are cancelled, no slots stay open."""
    plan.to = to
    plan.reason = reason
    check(plan.frm, to)
    plan.fields.update(open_slots=0, reason=reason)
    if to == Status.SUCCEEDED:
        plan.fields.update(result=result, result_ref=result_ref, error=None)
    for other in others:
        plan.attempts[other] = {"state": A.CANCELLED.value, "error": f"task {to.value}"}
        plan.ended.add(other)
    return plan


def decide_lone_success(attempt_id: str, result: Any, *, logs: str | None = None,
                        result_ref: dict | None = None) -> Plan:
    """A running attempt of a task run once (redundancy 1, quorum 1) succeeded.

    For such a task a success always decides it, whatever else the document holds, so this
    plan needs no read: it is what ``decide_attempt_end`` gives for that task (the table-driven
    tests check both agree), with ``assumes`` naming the conditions the writer filters on.
    """
    update: dict[str, Any] = {"state": A.SUCCEEDED.value, "result": result,
                              "digest": result_ref["sha256"] if result_ref else digest(result)}
    if result_ref:
        update["result_ref"] = result_ref
    if logs:
        update["logs"] = logs[-4000:]
    plan = Plan(frm=Status.RUNNING, attempts={attempt_id: update}, ended={attempt_id},
                assumes={"redundancy": 1, "quorum": 1})
    return _finish(plan, {}, [], Status.SUCCEEDED, reason=None, result=result, result_ref=result_ref)


def decide_release(task: dict, attempt_id: str, why: str) -> Plan:
    """A worker hands back an attempt it claimed ahead (prefetched) and never started.

    Not a failure: ``failures`` is unchanged and no backoff applies. The slot opens again, the
    worker (and machine) may claim it again, and with no other attempt running the task is queued.
    """
    frm = Status(task["status"])
    if frm != Status.RUNNING:
        raise InvalidTransition(f"task {task['_id']} is {frm.value}, not running")
    attempt = next((a for a in task.get("attempts", []) if a["id"] == attempt_id), None)
    if attempt is None or attempt["state"] != A.RUNNING:
        raise InvalidTransition(f"attempt {attempt_id} of task {task['_id']} is not running")
    check_attempt(A.RUNNING, A.RELEASED)
    plan = Plan(frm=frm, attempts={attempt_id: {"state": A.RELEASED.value, "error": why}}, ended={attempt_id})
    return _give_back(plan, task, attempt_id, "handed back unstarted")


def decide_expired(task: dict, now) -> Plan | None:
    """The first running attempt whose lease ended before ``now`` is lost (None: none has)."""
    if Status(task["status"]) != Status.RUNNING:
        return None
    expired = [a for a in task.get("attempts", []) if a["state"] == A.RUNNING and _aware(a["lease_until"]) < now]
    if not expired:
        return None
    attempt = expired[0]
    return decide_attempt_end(task, attempt["id"], A.LOST,
                              error=f"lease expired: worker {attempt['worker']} stopped heartbeating")


def _aware(when):
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def decide_cancel(task: dict) -> Plan:
    """Cancel a live task; its running attempts are marked cancelled (their workers kill them)."""
    frm = Status(task["status"])
    if frm in FINAL:
        raise InvalidTransition(f"task {task['_id']} is already {frm.value}; only pending, queued or "
                                "running tasks can be cancelled")
    return _finish(Plan(frm=frm), task, _others_running(task, ""), Status.CANCELLED, reason="cancelled")


def decide_requeue(task: dict) -> Plan:
    """Put a failed or cancelled task back in the queue for a fresh round of attempts."""
    frm = Status(task["status"])
    if frm not in (Status.FAILED, Status.CANCELLED):
        check(frm, Status.QUEUED)  # raises with the allowed list
        raise InvalidTransition(f"task {task['_id']} is {frm.value}; only failed or cancelled tasks can be re-queued")
    plan = Plan(frm=frm, to=Status.QUEUED, reason="requeued")
    plan.fields.update(
        open_slots=task.get("redundancy", 1), failures=0, workers=[], hosts=[], attempts=[],
        previous_attempts=task.get("previous_attempts", []) + task.get("attempts", []),
        result=None, result_ref=None, error=None, reason=None, finished_at=None)
    return plan
