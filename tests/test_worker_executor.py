"""The executor's persistent children: results, errors, logs, timeouts, crashes and kills.

No MongoDB here: the executor never touches it."""
from __future__ import annotations

import os
import threading
import time

import pytest

from fsm.states import AttemptState
from worker.executor import Executor, RunSpec
from tests.procs import alive, wait_for

A = AttemptState
TF = "tests.task_functions"


@pytest.fixture(scope="module")
def executor():
    with Executor(2) as ex:
        yield ex


def run(ex, entrypoint, *args, slot=0, timeout_s=10.0, **kwargs):
    return ex.run(slot, RunSpec(f"a-{time.monotonic_ns()}", entrypoint, None, list(args), kwargs, timeout_s, {}))


def test_results_come_back_as_json_data(executor):
    assert run(executor, "registry.builtins:echo", {"a": (1, 2)}).result == {"a": [1, 2]}
    assert run(executor, f"{TF}:add", 2, b=3).result == 5
    out = run(executor, "registry.builtins:noop")
    assert (out.state, out.result, out.error) == (A.SUCCEEDED, None, None)


def test_children_persist_across_attempts(executor):
    first = run(executor, f"{TF}:pid").result
    assert run(executor, f"{TF}:pid").result == first
    assert first != os.getpid()


def test_an_exception_fails_with_message_and_traceback(executor):
    out = run(executor, "registry.builtins:fail", "boom")
    assert out.state == A.FAILED
    assert out.error == "RuntimeError: boom"
    assert "raise RuntimeError(message)" in out.traceback and "builtins.py" in out.traceback


def test_a_result_that_is_not_json_fails_clearly(executor):
    out = run(executor, f"{TF}:not_json")
    assert out.state == A.FAILED and "not JSON data" in out.error and "set" in out.error


def test_an_unknown_function_fails_with_the_loader_message(executor):
    out = run(executor, "no_such_module_here:f")
    assert out.state == A.FAILED and "no_such_module_here" in out.error


def test_stdout_and_stderr_tail_is_captured_per_attempt(executor):
    out = run(executor, f"{TF}:chatty", 2)
    assert out.result == 2
    assert "line 0 to stdout" in out.logs and "a warning to stderr" in out.logs
    assert run(executor, "registry.builtins:noop").logs == ""  # emptied before each attempt


def test_a_timeout_kills_and_replaces_the_child(executor):
    before = run(executor, f"{TF}:pid", slot=1).result
    out = run(executor, "registry.builtins:sleep", 30, slot=1, timeout_s=0.3)
    assert out.state == A.TIMED_OUT and "timed out after 0.3 s" in out.error
    wait_for(lambda: not alive(before), what="the timed-out child to die")
    after = run(executor, f"{TF}:pid", slot=1).result
    assert after != before


def test_a_crash_is_reported_with_its_logs_and_the_child_replaced(executor):
    before = run(executor, f"{TF}:pid").result
    out = run(executor, f"{TF}:crash", 3)
    assert out.state == A.CRASHED and "exit code 3" in out.error
    assert "about to crash" in out.logs
    assert run(executor, f"{TF}:pid").result not in (before, None)


def test_kill_stops_the_running_attempt(executor, tmp_path):
    marker = tmp_path / "started"
    outcome = {}

    def go():
        outcome["out"] = executor.run(1, RunSpec("victim", f"{TF}:sleep_marked", None, [str(marker), 60], {}, 120, {}))

    thread = threading.Thread(target=go)
    thread.start()
    wait_for(marker.exists, what="the attempt to start")
    child = int(marker.read_text())
    assert "victim" in executor.running()
    assert executor.kill("victim", "cancelled") is True
    thread.join(10)
    assert outcome["out"].state == A.CANCELLED
    wait_for(lambda: not alive(child), what="the killed child to die")
    assert executor.kill("victim") is False  # nothing left to kill
    assert run(executor, "registry.builtins:echo", 1, slot=1).result == 1  # the slot works again
