"""The daemon's side of large data: ``{"__data__": id}`` arguments in, large results out.

Arguments: each reference becomes the ``pathlib.Path`` of a read-only copy in the machine's
``DataCache``, held (never evicted) while the attempt runs; the child gets only paths.
Results: a large JSON result (canonical bytes from the child) or a file the function
returned is streamed into GridFS by the daemon, owned by the task's submitter, and the
outcome then carries only ``result_ref`` {id, size, sha256, content_type}.
"""
from __future__ import annotations

import contextlib
import io
import logging
import mimetypes
import os
import threading
from dataclasses import replace
from typing import Iterator

from fsm.errors import DataNotFound
from fsm.references import DATA, references, substitute
from fsm.states import AttemptState
from fsm.store.data import TRANSIENT_ERRORS
from worker.datacache import DataCache
from worker.results import Outcome

log = logging.getLogger("suanwang.worker.data")
#: Tries of one result upload while MongoDB is away.
UPLOAD_TRIES = 8


@contextlib.contextmanager
def arguments(cache: DataCache, store, task: dict) -> Iterator[tuple[list, dict]]:
    """The task's args and kwargs with data references replaced by local paths (held inside).

    Raises ``DataNotFound`` for an id that no longer exists (a permanent failure).
    """
    args, kwargs = task.get("args") or [], task.get("kwargs") or {}
    ids = [ident for marker, ident in references([args, kwargs]) if marker == DATA]
    if not ids:
        yield args, kwargs
        return
    with cache.use(store, ids) as paths:
        resolve = {DATA: lambda ident: paths[ident]}
        yield substitute(args, resolve), substitute(kwargs, resolve)


def fetch_failed(exc: Exception) -> Outcome:
    """The outcome of an attempt whose data could not be fetched."""
    if isinstance(exc, DataNotFound):
        return Outcome(AttemptState.FAILED, error=f"{exc.message} (a {{\"__data__\": ...}} argument)", permanent=True)
    return Outcome(AttemptState.FAILED, error=f"cannot fetch the task's data: {type(exc).__name__}: {exc}")


def store_result(store, task: dict, attempt_id: str, outcome: Outcome, stop: threading.Event) -> Outcome:
    """Upload a large result (if the outcome has one); returns the outcome with ``result_ref``."""
    if outcome.state != AttemptState.SUCCEEDED or (outcome.result_bytes is None and outcome.result_path is None):
        return outcome
    if outcome.result_bytes is not None:
        name, content_type = f"result-{task['_id']}.json", "application/json"
        data = outcome.result_bytes
        opener = lambda: io.BytesIO(data)  # noqa: E731
    else:
        path = outcome.result_path
        name = os.path.basename(path)
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        opener = lambda: open(path, "rb")  # noqa: E731
    delay = 0.2
    for attempt in range(1, UPLOAD_TRIES + 1):
        try:
            with opener() as source:
                meta = store.data.upload(source, name=name, owner=task.get("submitted_by") or "worker",
                                         content_type=content_type, task_id=task["_id"], attempt_id=attempt_id)
            ref = {"id": meta["id"], "size": meta["size"], "sha256": meta["sha256"], "content_type": content_type}
            return replace(outcome, result=None, result_bytes=None, result_path=None, result_ref=ref)
        except OSError as exc:
            return Outcome(AttemptState.FAILED, error=f"the result file cannot be read: {exc}", logs=outcome.logs,
                           permanent=True)
        except TRANSIENT_ERRORS as exc:
            log.warning("task %s: storing the result failed (%d/%d): %s", task["_id"], attempt, UPLOAD_TRIES, exc)
            if attempt == UPLOAD_TRIES or stop.wait(delay):
                break
            delay = min(delay * 2, 5.0)
    return Outcome(AttemptState.FAILED, error="the result could not be stored in GridFS (MongoDB unavailable)",
                   logs=outcome.logs)


def drop_result(store, outcome: Outcome) -> None:
    """A stored result whose attempt was refused (lease lost): delete it now, not at retention."""
    if outcome.result_ref:
        with contextlib.suppress(Exception):
            store.data.delete(outcome.result_ref["id"])
