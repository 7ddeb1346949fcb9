"""Named task filters the listings share (the API's ``?worker=`` and the tasks page's worker box)."""
from __future__ import annotations


def ran_on(worker: str) -> dict:
    """The filter of tasks with any attempt on ``worker``: this round's (failed ones too: a failure
    takes the worker off ``workers``) and earlier rounds' (``previous_attempts``, after a re-queue)."""
    return {"$or": [{"attempts.worker": worker}, {"previous_attempts.worker": worker}]}
