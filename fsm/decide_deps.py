"""Pure decisions for workflows: a dependency failed, so what happens to the task waiting on it?

No I/O. The store reads the waiting task, asks for a ``Plan`` and writes it with its one
compare-and-set writer (``TaskStore._write``), so the change is checked against the FSM
table and lands in the task's history. A ``None`` plan means there is nothing to do (the
task no longer waits): the decision is idempotent. (A succeeded dependency is counted by one
conditional update in ``fsm.store.workflows``, which never loses a race; see there.)
"""
from __future__ import annotations

from fsm.decide import Plan, _finish
from fsm.states import Status, check

#: Why a task waits in ``pending`` for its dependencies.
WAITING = "waiting_for_dependencies"
#: Why a dependent was cancelled: a dependency failed or was cancelled.
UPSTREAM_FAILED = "upstream_failed"
#: The history reason of the release, once every dependency succeeded.
DEPENDENCIES_SUCCEEDED = "dependencies_succeeded"
#: Why a child task was cancelled: its parent was.
PARENT_CANCELLED = "parent_cancelled"

check(Status.PENDING, Status.CANCELLED)


def waiting(task: dict) -> bool:
    return task.get("status") == Status.PENDING.value and task.get("reason") == WAITING


def decide_dependency_failed(task: dict, dependency: str) -> Plan | None:
    """A dependency failed or was cancelled: the waiting task can never run, so it is cancelled."""
    if not waiting(task) or dependency not in task.get("depends_on", []):
        return None
    plan = _finish(Plan(frm=Status.PENDING), task, [], Status.CANCELLED, reason=UPSTREAM_FAILED)
    plan.fields["error"] = f"dependency {dependency} did not succeed"
    return plan
