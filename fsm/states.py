"""Task and attempt states, and the transition table that is the single source of truth.

Every status change anywhere in Suanwang is checked against ``TRANSITIONS`` here and then
written as one conditional MongoDB update that filters on the current status.
"""
from __future__ import annotations

from enum import Enum

from fsm.errors import InvalidTransition


class Status(str, Enum):
    """Lifecycle of a task."""

    #: waiting for its ``run_after`` time (a retry's backoff, a delayed start)
    PENDING = "pending"
    #: ready to be claimed by a worker
    QUEUED = "queued"
    #: at least one attempt is running on a worker
    RUNNING = "running"
    #: finished with an accepted result (quorum reached when redundant)
    SUCCEEDED = "succeeded"
    #: finished without an accepted result: error, retries exhausted, or disputed
    FAILED = "failed"
    #: cancelled by a user before it finished
    CANCELLED = "cancelled"


class AttemptState(str, Enum):
    """Lifecycle of one attempt (one execution of a task on one worker)."""

    #: claimed by a worker, holding a lease
    RUNNING = "running"
    #: the function returned; its result is stored
    SUCCEEDED = "succeeded"
    #: the function raised; its error and traceback are stored
    FAILED = "failed"
    #: passed the task's ``timeout_s``; its process was killed
    TIMED_OUT = "timed_out"
    #: its process died without answering
    CRASHED = "crashed"
    #: its lease expired (worker killed, frozen or cut off)
    LOST = "lost"
    #: stopped because the task was cancelled or already decided
    CANCELLED = "cancelled"
    #: claimed ahead with others (prefetched) and handed back before it started: not a failure
    RELEASED = "released"


S = Status
#: The task transition table: {from: frozenset(allowed to)}.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    S.PENDING: frozenset({S.QUEUED, S.CANCELLED}),
    S.QUEUED: frozenset({S.RUNNING, S.CANCELLED}),
    S.RUNNING: frozenset({S.SUCCEEDED, S.FAILED, S.QUEUED, S.PENDING, S.CANCELLED}),
    S.SUCCEEDED: frozenset(),
    # A super-user may re-queue a task that exhausted its retries or was cancelled.
    S.FAILED: frozenset({S.QUEUED}),
    S.CANCELLED: frozenset({S.QUEUED}),
}

A = AttemptState
ATTEMPT_TRANSITIONS: dict[AttemptState, frozenset[AttemptState]] = {
    A.RUNNING: frozenset(set(AttemptState) - {A.RUNNING}),
    **{state: frozenset() for state in AttemptState if state is not A.RUNNING},
}

#: States a new task starts in (``history[0]`` goes from None to one of these).
INITIAL: frozenset[Status] = frozenset({S.PENDING, S.QUEUED})
#: States a task never leaves on its own.
FINAL: frozenset[Status] = frozenset({S.SUCCEEDED, S.FAILED, S.CANCELLED})
#: States in which a task still waits for, or does, work.
LIVE: frozenset[Status] = frozenset({S.PENDING, S.QUEUED, S.RUNNING})
#: Attempt outcomes that count against ``max_retries``.
FAILED_ATTEMPTS: frozenset[AttemptState] = frozenset({A.FAILED, A.TIMED_OUT, A.CRASHED, A.LOST})


def check(frm: Status | str, to: Status | str) -> None:
    """Raise ``InvalidTransition`` unless ``frm -> to`` is in the table."""
    frm, to = Status(frm), Status(to)
    if to not in TRANSITIONS[frm]:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[frm])) or "none (final)"
        raise InvalidTransition(f"a task cannot go from {frm.value} to {to.value} (allowed from {frm.value}: {allowed})")


def check_attempt(frm: AttemptState | str, to: AttemptState | str) -> None:
    """Raise ``InvalidTransition`` unless an attempt may go from ``frm`` to ``to``."""
    frm, to = AttemptState(frm), AttemptState(to)
    if to not in ATTEMPT_TRANSITIONS[frm]:
        raise InvalidTransition(f"an attempt cannot go from {frm.value} to {to.value}")


def is_allowed(frm: Status | str, to: Status | str) -> bool:
    return Status(to) in TRANSITIONS[Status(frm)]


#: What a person's action on a task asks of the table: the status it moves the task to, or None
#: for an edit that keeps the status (priority, enable/disable), which only a live task takes.
#: Which actions a task offers in a given status is derived from ``TRANSITIONS`` by ``actions_allowed``.
ACTION_TARGETS: dict[str, Status | None] = {
    "priority": None, "enable": None, "disable": None, "cancel": S.CANCELLED, "requeue": S.QUEUED,
}


def actions_allowed(status: Status | str) -> list[str]:
    """The actions a task in ``status`` can take, in ``ACTION_TARGETS`` order.

    A move is offered when the table allows it; a re-queue only from a final status (from a live
    one, going back to queued is the system's retry, not a person's); an edit while the task is live.
    """
    status = Status(status)
    allowed = []
    for action, target in ACTION_TARGETS.items():
        if target is None:
            ok = status in LIVE
        else:
            ok = target in TRANSITIONS[status] and (target is not S.QUEUED or status in FINAL)
        if ok:
            allowed.append(action)
    return allowed
