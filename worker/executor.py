"""Runs attempts in a pool of persistent child processes; the daemon never runs user code.

Each slot owns one child, started from a fork server (children inherit no daemon threads
and no MongoDB client) and kept for many attempts: the parent sends a ``RunSpec`` (as plain data: attempt id,
entrypoint, path, args, kwargs, meta) down a pipe, the child imports the function with
``registry.loader.load``, runs it and answers with its result (checked to be JSON data) or
its error and traceback, plus the tail of what it wrote to stdout/stderr. The child never
touches MongoDB.

The parent enforces the timeout: a child past it is killed (``timed_out``); a child that dies
gives ``crashed``; ``kill(attempt_id)`` stops a cancelled or lost attempt. Each time the
child is SIGKILLed with its whole process group and replaced. A child whose daemon dies
(even by SIGKILL) kills itself: it watches a lifeline pipe that only the daemon holds.

The child's stdout and stderr (file descriptors 1 and 2, so C code and subprocesses too) go
to a per-slot file that is emptied before every attempt; its last ``LOG_TAIL`` bytes are the
attempt's logs, readable by the parent even when the child died.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from multiprocessing.connection import wait as wait_ready

import psutil

from fsm.states import AttemptState
from worker import context, proctree
from worker.childio import LOG_TAIL, read_tail  # noqa: F401 - LOG_TAIL: part of this module's interface
from worker.childio import redirect_output as _redirect_output, watch_lifeline as _watch_lifeline
from worker.requests import ChildRequests
from worker.results import (INLINE_RESULT_BYTES, MAX_RESULT_BYTES, Outcome, RunSpec, attempt_workdir,  # noqa: F401
                            classify, outcome_of, slot_workdir, wrong_arguments)

log = logging.getLogger("suanwang.worker.executor")

#: How long a fresh child may take to say it is ready.
START_TIMEOUT_S = 60.0
CONTEXT = "forkserver"


class _Spec:
    """What ``registry.loader.load`` reads (``RunSpec`` lives with the resolver, which the child
    does not import: it would pull the registry's database code into every child)."""

    __slots__ = ("entrypoint", "path")

    def __init__(self, entrypoint: str, path: str | None):
        self.entrypoint, self.path = entrypoint, path


# ------------------------------------------------------------------ the child
def _run_one(entrypoint: str, path: str | None, args: list, kwargs: dict,
             inline_bytes: int = INLINE_RESULT_BYTES, workdir: str | None = None) -> tuple:
    """Load and call the function: ('ok', result), ('ok_bytes', canonical JSON of a large result),
    ('ok_path', file the function returned) or ('error', message, traceback, permanent)."""
    import traceback

    from fsm.errors import Permanent
    from registry.loader import load

    try:
        func = load(_Spec(entrypoint, path))
    except Exception as exc:  # FunctionNotFound, RegistryError: the message says it all
        return ("error", getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}", None)
    wrong = wrong_arguments(func, args, kwargs)
    if wrong:
        return ("error", f"wrong arguments for {entrypoint}: {wrong}", None, True)
    try:
        result = context.call(func, args, kwargs)  # awaits an ``async def`` entrypoint
    except BaseException as exc:  # SystemExit and KeyboardInterrupt from user code fail the attempt too
        frames = traceback.format_exception(type(exc), exc, exc.__traceback__.tb_next)  # without this frame
        return ("error", f"{type(exc).__name__}: {exc}".rstrip(": "), "".join(frames), isinstance(exc, Permanent))
    return classify(result, inline_bytes, workdir)


def _enter(scratch: str) -> None:
    try:
        os.chdir(scratch)
    except FileNotFoundError:  # the first attempt, or the last one removed it
        os.makedirs(scratch, exist_ok=True)
        os.chdir(scratch)


def _keep_files(scratch: str, workdir: str, reply: tuple) -> tuple:
    """Files the attempt left move to its own directory (``attempt_workdir``), where the daemon
    uploads a returned one and removes the rest once the outcome is recorded."""
    try:
        with os.scandir(scratch) as entries:
            if next(entries, None) is None:
                return reply
        os.rename(scratch, workdir)
    except OSError:
        return reply
    if reply[0] == "ok_path":
        inside = os.path.relpath(reply[1], os.path.realpath(scratch))
        reply = (reply[0], os.path.join(workdir, inside), *reply[2:])
    return reply


def child_main(conn, lifeline, log_path: str, inline_bytes: int = INLINE_RESULT_BYTES) -> None:
    """The child's loop: one message in, one answer out, until the pipe closes."""
    os.setsid()  # its own process group: killing it kills what it started, and Ctrl-C is the daemon's
    proctree.become_subreaper()  # orphaned grandchildren stay in its tree, so kill_tree finds them
    # Processes the task starts are forked, as Python's default on Linux; the forkserver this
    # child came from is the daemon's, not the task's.
    multiprocessing.set_start_method("fork", force=True)
    conn_lock = threading.Lock()  # the task's threads may report progress or submit at once
    threading.Thread(target=_watch_lifeline, args=(lifeline,), name="lifeline", daemon=True).start()
    out = _redirect_output(log_path)
    # The attempts' working directory: one per slot, emptied by a fresh child (its predecessor may
    # have been killed mid-attempt), renamed to the attempt's own only when an attempt left files
    # there (creating a directory per attempt cost more than a no-op task itself).
    scratch = slot_workdir(log_path)
    shutil.rmtree(scratch, ignore_errors=True)
    conn.send(("ready", os.getpid()))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        attempt_id, entrypoint, path, args, kwargs, meta = message  # RunSpec.message()
        os.ftruncate(out, 0)
        context.begin(conn, conn_lock, attempt_id, meta or {})
        _enter(scratch)
        try:
            reply = _run_one(entrypoint, path, args, kwargs, inline_bytes, scratch)
        finally:
            os.chdir(os.path.dirname(log_path))
            context.end()
            proctree.kill_descendants(os.getpid())  # what the attempt started ends with it
        reply = _keep_files(scratch, attempt_workdir(os.path.dirname(log_path), attempt_id), reply)
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:
            pass
        logs = read_tail(out)
        try:
            conn.send((attempt_id, reply, logs))
        except Exception as exc:  # an unpicklable oddity slipped through: report it instead
            conn.send((attempt_id, ("error", f"cannot send the result back: {type(exc).__name__}: {exc}", None),
                       logs))


# ----------------------------------------------------------------- the parent
def _context():
    ctx = multiprocessing.get_context(CONTEXT)
    if CONTEXT == "forkserver":
        ctx.set_forkserver_preload(["worker.executor", "worker.results", "registry.loader"])
    return ctx


class Child:
    """One slot: a persistent child process and the attempt it runs (if any)."""

    def __init__(self, index: int, log_dir: str, ctx=None, requests: ChildRequests | None = None,
                 inline_bytes: int = INLINE_RESULT_BYTES):
        self.index = index
        self.log_dir = log_dir
        self.inline_bytes = inline_bytes
        self.requests = requests or ChildRequests()
        #: The running attempt's last reported progress (``worker.requests``), None when none.
        self.progress: dict | None = None
        self.log_path = os.path.join(log_dir, f"slot-{index}.log")
        self._ctx = ctx or _context()
        self._lock = threading.Lock()
        self._proc = None
        self._ps: psutil.Process | None = None  # the child as psutil sees it (its CPU time per attempt)
        self._cpu_mark: tuple[int, float] | None = None  # (pid, its CPU seconds after its last attempt)
        self._conn = None
        self._lifeline = None
        self._ready = False
        self._attempt: str | None = None
        self._kill_reason: str | None = None
        self._closed = False
        self._used = False  # ran an attempt since it started
        self._gpu_used = False  # ... one that had GPUs (CUDA keeps the devices it saw at its start)

    # -- lifecycle
    def start(self) -> None:
        with open(self.log_path, "wb"):
            pass
        parent, child = self._ctx.Pipe(duplex=True)
        life_r, life_w = self._ctx.Pipe(duplex=False)  # the daemon only holds life_w; never writes
        # Not daemonic: a task may start processes of its own (Pool, ProcessPoolExecutor).
        proc = self._ctx.Process(target=child_main, args=(child, life_r, self.log_path, self.inline_bytes),
                                 daemon=False,
                                 name=f"suanwang-slot-{self.index}")
        proc.start()
        child.close()
        life_r.close()
        self._proc, self._conn, self._lifeline, self._ready = proc, parent, life_w, False

    def _wait_ready(self) -> str | None:
        """None when the child is ready, else why it is not."""
        if self._ready:
            return None
        if self._proc is None:
            self.start()
        if self._conn.poll(START_TIMEOUT_S):
            try:
                kind, _pid = self._conn.recv()
                self._ready = kind == "ready"
                return None if self._ready else f"unexpected first message {kind!r}"
            except (EOFError, OSError):
                pass
        return f"the executor process did not start (exit code {self._proc.exitcode})"

    def _replace(self) -> None:
        self._stop(kill=True)
        if not self._closed:
            self.start()

    def _stop(self, kill: bool) -> None:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if proc is None:
            return
        if kill:
            self._signal(proc, signal.SIGKILL)
        else:
            try:
                conn.send(None)
            except OSError:
                pass
        proc.join(1 if kill else 2)
        if proc.is_alive():
            self._signal(proc, signal.SIGKILL)
            proc.join(5)
        conn.close()
        if self._lifeline is not None:
            self._lifeline.close()
            self._lifeline = None

    @staticmethod
    def _signal(proc, sig) -> None:
        if proc.pid is None:
            return
        proctree.kill_tree(proc.pid, sig)  # the child, its group, and every descendant

    def close(self) -> None:
        self._closed = True
        with self._lock:
            self._stop(kill=self._attempt is not None)

    # -- attempts
    @property
    def attempt(self) -> str | None:
        return self._attempt

    def run(self, spec: RunSpec) -> Outcome:
        """Run one attempt to its end (blocking); the child is replaced if it had to die.

        ``meta`` (task_id, attempt, worker, gpus) is what ``current_task()`` tells the task. An
        attempt given GPUs runs in a fresh child, and its child is not reused: CUDA reads
        ``CUDA_VISIBLE_DEVICES`` once per process.
        """
        attempt_id, meta, timeout_s = spec.attempt_id, spec.meta, spec.timeout_s
        wants_gpus = bool(meta and meta.get("gpus"))
        if self._gpu_used or (wants_gpus and self._used):
            self._replace()
            self._used = self._gpu_used = False
        problem = self._wait_ready()  # a fresh child's start does not count against the timeout
        if problem:
            self._replace()
            return Outcome(AttemptState.CRASHED, error=problem, logs=self._read_logs())
        began = time.monotonic()
        # the reading after this child's last attempt still holds: it waited idle since
        measured = self._measured()
        mark = self._cpu_mark
        cpu_before = mark[1] if mark and measured is not None and mark[0] == measured.pid \
            else proctree.cpu_seconds(measured)
        with self._lock:
            self._attempt, self._kill_reason, self.progress = attempt_id, None, None
        try:
            outcome = self._exchange(attempt_id, spec.message(), timeout_s, began)
        finally:
            with self._lock:
                self._attempt = None
        outcome.seconds = time.monotonic() - began
        # The child answered: it lives on, and psutil reads what this attempt used. A child that had
        # to die (timeout, crash, kill) is gone, replaced: its wall time stands for its CPU time.
        answered = outcome.state in (AttemptState.SUCCEEDED, AttemptState.FAILED) and self._proc is not None
        cpu_after = proctree.cpu_seconds(self._measured()) if answered else None
        self._cpu_mark = (self._proc.pid, cpu_after) if cpu_after is not None else None
        outcome.cpu_s = round(cpu_after - cpu_before if cpu_before is not None and cpu_after is not None
                              else outcome.seconds, 6)
        outcome.gpu_s = round(len((meta or {}).get("gpus") or []) * outcome.seconds, 6)
        self._used, self._gpu_used = True, wants_gpus
        workdir = attempt_workdir(self.log_dir, attempt_id)
        outcome.workdir = workdir if os.path.isdir(workdir) else None
        return outcome

    def _measured(self) -> psutil.Process | None:
        """The child as psutil sees it, kept while the child lives (its CPU time is read per attempt)."""
        pid = self._proc.pid
        if self._ps is None or self._ps.pid != pid:
            try:
                self._ps = psutil.Process(pid)
            except psutil.Error:
                return None
        return self._ps

    def _exchange(self, attempt_id: str, message: tuple, timeout_s: float, began: float) -> Outcome:
        conn, proc = self._conn, self._proc
        try:
            conn.send(message)
        except (OSError, ValueError) as exc:
            return self._ended(AttemptState.CRASHED, f"cannot send the attempt to the executor process: {exc}")
        deadline = began + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                with self._lock:
                    self._kill_reason = self._kill_reason or "timeout"
                    self._signal(proc, signal.SIGKILL)
                return self._ended(AttemptState.TIMED_OUT, f"timed out after {timeout_s:g} s (timeout_s)")
            ready = wait_ready([conn, proc.sentinel], remaining)
            if conn in ready:
                try:
                    got = conn.recv()
                except (EOFError, OSError):
                    return self._died()
                if isinstance(got, dict):  # progress or a child task, sent while the attempt runs
                    self.requests.handle(self, attempt_id, got, conn)
                    continue
                got_id, reply, logs = got
                if got_id != attempt_id:  # cannot happen with one attempt per child; be loud if it does
                    return self._ended(AttemptState.CRASHED, f"the executor answered for {got_id}, not {attempt_id}")
                if self._kill_reason:
                    return self._ended(AttemptState.CANCELLED, f"stopped: {self._kill_reason}")
                return outcome_of(reply, logs)
            if proc.sentinel in ready:
                return self._died()

    def _died(self) -> Outcome:
        if self._kill_reason == "timeout":
            return self._ended(AttemptState.TIMED_OUT, "timed out (timeout_s)")
        if self._kill_reason:
            return self._ended(AttemptState.CANCELLED, f"stopped: {self._kill_reason}")
        proc = self._proc
        proc.join(1)
        code = proc.exitcode
        if code is not None and code < 0:
            try:
                how = f"killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"killed by signal {-code}"
        else:
            how = f"exit code {code}"
        return self._ended(AttemptState.CRASHED, f"the executor process died while running the attempt ({how})")

    def _ended(self, state: AttemptState, error: str) -> Outcome:
        """The child had to die (or died): collect its logs, replace it."""
        if self._proc is not None:
            self._signal(self._proc, signal.SIGKILL)
            self._proc.join(5)
        logs = self._read_logs()
        if state != AttemptState.CANCELLED:
            log.warning("slot %d: %s", self.index, error)
        self._replace()
        return Outcome(state, error=error, logs=logs)

    def _read_logs(self) -> str:
        try:
            fd = os.open(self.log_path, os.O_RDONLY)
        except OSError:
            return ""
        try:
            return read_tail(fd)
        finally:
            os.close(fd)

    def kill(self, attempt_id: str, reason: str) -> bool:
        """SIGKILL the child if it is running ``attempt_id``; the running ``run()`` returns cancelled."""
        with self._lock:
            if self._attempt != attempt_id or self._proc is None or self._kill_reason:
                return False
            self._kill_reason = reason
            self._signal(self._proc, signal.SIGKILL)
            return True


class Executor:
    """``slots`` persistent child processes; ``run(slot, ...)`` is called by that slot's thread."""

    def __init__(self, slots: int, inline_bytes: int = INLINE_RESULT_BYTES, requests: ChildRequests | None = None):
        self._dir = tempfile.mkdtemp(prefix="suanwang-worker-")
        ctx = _context()
        self.children = [Child(i, self._dir, ctx, requests, inline_bytes) for i in range(slots)]
        self._started = False
        self._start_lock = threading.Lock()  # two slots' first attempts at once start the children once

    def start(self) -> "Executor":
        """Start the children; the daemon leaves it to the first attempt, so a worker that has
        not run anything yet is one small process (no forkserver, no children)."""
        with self._start_lock:
            if not self._started:
                for child in self.children:  # started together; each is awaited on its first attempt
                    child.start()
                self._started = True
        return self

    def run(self, slot: int, spec: RunSpec) -> Outcome:
        self.start()
        return self.children[slot].run(spec)

    def kill(self, attempt_id: str, reason: str = "cancelled") -> bool:
        """Stop an attempt wherever it runs; False when no slot runs it (already ended)."""
        return any(child.kill(attempt_id, reason) for child in self.children if child.attempt == attempt_id)

    def kill_all(self, reason: str) -> list[str]:
        stopped = []
        for child in self.children:
            attempt = child.attempt
            if attempt and child.kill(attempt, reason):
                stopped.append(attempt)
        return stopped

    def running(self) -> list[str]:
        return [c.attempt for c in self.children if c.attempt]

    def close(self) -> None:
        for child in self.children:
            child.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> "Executor":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
