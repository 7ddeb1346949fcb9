"""Checks every JSON request body passes before anything recursive (Python's json, BSON) reads it.

A body nested deeper than ``MAX_JSON_DEPTH`` levels is refused with 422 ``too_deep``: Python's
json parser recurses once per level (``RecursionError`` past about 1,000) and BSON refuses
documents nested past 100. The depth is counted on the raw text, without parsing: strings are
removed first (so brackets inside them do not count), then brackets are summed.
"""
from __future__ import annotations

import re
from itertools import accumulate

from fsm.errors import ValidationError

#: Deepest JSON body the API accepts (a task's args then sit at most 62 levels below it).
MAX_JSON_DEPTH = 64
#: A JSON string (the unrolled-loop form: runs of plain characters, then one escape at a time); an
#: unterminated one runs to the end (the parser refuses it later), so the scan stays linear.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?', re.S)
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


class TooDeep(ValidationError):
    """A JSON body is nested deeper than the API accepts."""

    code = "too_deep"


def json_depth(raw: bytes) -> int:
    """How deeply the JSON text ``raw`` nests arrays and objects (0 for a scalar)."""
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def check_depth(raw: bytes, limit: int = MAX_JSON_DEPTH) -> None:
    depth = json_depth(raw)
    if depth > limit:
        raise TooDeep(f"the JSON body is nested {depth} levels deep; the limit is {limit} levels", limit=limit)
