"""Claim lanes: tasks grouped by what a worker must offer to run them (pure, no I/O).

A task's lane is derived from its ``requires`` (GPUs, a memory class, tags). A worker claims
with ``lane: {"$in": [lanes it can serve]}`` on an index led by the lane, so MongoDB walks only
claimable index ranges and merges them by priority: a queue of GPU-only work costs a CPU
worker's claim nothing. Memory is bucketed by powers of two (rounded down) so there are few
lanes; the exact ``requires.mem_gb`` stays a residual filter, which can only skip tasks of the
one class the worker's memory falls in.
"""
from __future__ import annotations

import math
from typing import Iterable


def mem_class(mem_gb: float) -> int:
    """The largest power of two not above ``mem_gb``; 0 below 1 GB (and for no requirement)."""
    if not mem_gb or mem_gb < 1:
        return 0
    return 1 << int(math.floor(math.log2(mem_gb)))


def lane_requires(requires: dict) -> dict:
    """The part of ``requires`` a lane is made of, normalised (``shared_gpu``: a slice of one GPU's
    memory, ``gpu_mem_gb`` without whole GPUs)."""
    gpus = int(requires.get("gpus", 0) or 0)
    parts = {"gpus": gpus, "mem_class": mem_class(float(requires.get("mem_gb", 0) or 0)),
             "tags": sorted(set(requires.get("tags", []) or []))}
    if not gpus and float(requires.get("gpu_mem_gb", 0) or 0) > 0:
        parts["shared_gpu"] = True
    return parts


def lane_name(parts: dict) -> str:
    """A stable, readable name such as ``g1/m8/cuda+fast`` or ``gs/m0/`` for a shared GPU ('+' and
    '/' are not in the tag grammar)."""
    gpu = "gs" if parts.get("shared_gpu") else f"g{parts['gpus']}"
    return f"{gpu}/m{parts['mem_class']}/{'+'.join(parts['tags'])}"


def lane_of(requires: dict) -> str:
    return lane_name(lane_requires(requires))


def can_serve(parts: dict, *, gpus: int, mem_gb: float, tags: Iterable[str], gpu_mem_gb: float = 0.0) -> bool:
    """Whether a worker with these free resources may run tasks of a lane (memory: up to its class;
    a shared-GPU lane needs some free GPU memory, the exact amount is the claim's residual filter)."""
    gpu_ok = gpu_mem_gb > 0 if parts.get("shared_gpu") else parts["gpus"] <= gpus
    return gpu_ok and parts["mem_class"] <= mem_gb and set(parts["tags"]) <= set(tags)
