"""What a task function returned, classified in the executor child (pure; no I/O but a stat).

Small JSON results travel inline; JSON larger than ``INLINE_RESULT_BYTES`` goes back as its
canonical bytes (sorted keys, compact: equal results give equal sha256 digests) for the
daemon to store in GridFS; a returned ``pathlib.Path`` must name a file the attempt wrote in
its own working directory, which the daemon uploads. What no retry can fix is permanent.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from fsm.states import AttemptState

#: Largest JSON result (its text crosses the pipe whole); larger data: return a Path to a file.
MAX_RESULT_BYTES = 1 << 30
#: JSON results larger than this are stored in GridFS by the daemon (``result_ref``), not inline.
INLINE_RESULT_BYTES = 256 << 10


@dataclass(frozen=True)
class RunSpec:
    """One attempt, as it goes from the claim to the executor child: what to load and call, with
    which (already resolved) arguments, for how long, and what ``current_task()`` tells it."""

    attempt_id: str
    entrypoint: str
    path: str | None
    args: list
    kwargs: dict
    timeout_s: float
    #: task_id, attempt (its number), worker, gpus
    meta: dict

    def message(self) -> tuple:
        """What the child receives over its pipe (plain data: the child imports no worker code)."""
        return (self.attempt_id, self.entrypoint, self.path, list(self.args or []), dict(self.kwargs or {}),
                self.meta)


@dataclass
class Outcome:
    """How one attempt ended in the executor."""

    state: AttemptState
    result: Any = None
    error: str | None = None
    traceback: str | None = None
    logs: str = ""
    seconds: float = 0.0
    #: no retry can succeed (``suanwang.Permanent``, wrong arguments, a result that is not JSON)
    permanent: bool = False
    #: a large result, still to be stored by the daemon: canonical JSON bytes, or a file's path
    result_bytes: bytes | None = None
    result_path: str | None = None
    #: where the stored result is (set by the daemon once uploaded)
    result_ref: dict | None = None
    #: the attempt's own working directory (its cwd), removed once the outcome is recorded
    workdir: str | None = None
    #: CPU seconds the child (and the processes it waited for) used on this attempt, and GPU
    #: seconds (GPUs held x wall seconds; 0 without GPUs): what a priced task is charged for
    cpu_s: float = 0.0
    gpu_s: float = 0.0


def classify(result, inline_bytes: int = INLINE_RESULT_BYTES, workdir: str | None = None) -> tuple:
    """A function's return value as the child's answer: ('ok', value) inline, ('ok_bytes', canonical
    JSON) for a large one, ('ok_path', file) for a returned Path, or a permanent ('error', ...)."""
    if result is None or isinstance(result, bool) or (type(result) is int and -2**63 <= result < 2**63):
        return ("ok", result)  # the common cases, without a round trip through JSON
    if isinstance(result, os.PathLike):
        return path_result(result, workdir)
    try:
        text = json.dumps(result)
    except (TypeError, ValueError, RecursionError) as exc:
        return ("error", f"the result is not JSON data ({type(result).__name__}): {exc}; return lists, dicts, "
                         "strings, numbers, booleans or None (or a pathlib.Path to a file)", None, True)
    if len(text) > MAX_RESULT_BYTES:
        return ("error", f"the result is {len(text)} bytes as JSON; the limit is {MAX_RESULT_BYTES} "
                         "(write it to a file and return its pathlib.Path)", None, True)
    if len(text) > inline_bytes:  # stored in GridFS: canonical bytes, so equal results have equal digests
        return ("ok_bytes", json.dumps(result, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode())
    return ("ok", json.loads(text))  # tuples become lists, keys strings: what the store will hold


def wrong_arguments(func, args: list, kwargs: dict) -> str | None:
    """Why these arguments cannot bind to ``func``'s signature (a retry cannot fix that), or None."""
    import inspect

    try:
        inspect.signature(func).bind(*args, **kwargs)
    except TypeError as exc:
        return str(exc)
    except ValueError:  # no signature to read (some builtins): let the call decide
        pass
    return None


def path_result(result: os.PathLike, workdir: str | None) -> tuple:
    """A returned Path must name a file the attempt wrote in its own working directory."""
    if workdir is None:
        return ("error", "a pathlib.Path result needs the attempt's working directory", None, True)
    target = os.path.realpath(os.path.join(workdir, os.fspath(result)))
    if not target.startswith(os.path.realpath(workdir) + os.sep) or not os.path.isfile(target):
        return ("error", f"the result {os.fspath(result)!r} is not a file in the attempt's working directory "
                         f"({workdir}); write the file there (the current directory) and return its Path",
                None, True)
    return ("ok_path", target)


def attempt_workdir(log_dir: str, attempt_id: str) -> str:
    """Where the files an attempt left in its working directory are kept until its outcome is recorded."""
    return os.path.join(log_dir, f"work-{attempt_id}")


def slot_workdir(log_path: str) -> str:
    """A slot's working directory: each attempt's cwd while it runs (empty when it starts)."""
    return os.path.splitext(log_path)[0] + ".work"


def outcome_of(reply: tuple, logs: str) -> Outcome:
    """The child's answer as an Outcome (see ``_run_one`` for the kinds)."""
    kind = reply[0]
    if kind == "ok":
        return Outcome(AttemptState.SUCCEEDED, result=reply[1], logs=logs)
    if kind == "ok_bytes":
        return Outcome(AttemptState.SUCCEEDED, result_bytes=reply[1], logs=logs)
    if kind == "ok_path":
        return Outcome(AttemptState.SUCCEEDED, result_path=reply[1], logs=logs)
    return Outcome(AttemptState.FAILED, error=reply[1], traceback=reply[2], logs=logs,
                   permanent=bool(reply[3]) if len(reply) > 3 else False)
