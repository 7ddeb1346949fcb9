"""Resources as capacity: what a worker has free, and which GPUs a claimed task gets (pure).

A worker advertises cores and each GPU's memory. A task asks for ``cpus`` (default 1),
``gpus`` (whole GPUs, held alone) and/or ``gpu_mem_gb`` (memory on one GPU, which other
``gpu_mem_gb`` tasks may share: two tasks share a GPU only when both asked that way). The
worker claims only what fits what is free now, so a GPU machine runs one 4-GPU task or four
1-GPU tasks, and a machine with 16 cores runs one 16-core task or sixteen small ones.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Gpu:
    index: int
    mem_gb: float


@dataclass
class Capacity:
    """A worker's resources and what its running attempts hold."""

    cpus: float
    gpus: tuple[Gpu, ...] = ()
    #: attempt id -> (cpus, {gpu index: memory held or None for the whole GPU})
    held: dict[str, tuple[float, dict[int, float | None]]] = field(default_factory=dict)

    # -- what is free
    def free_cpus(self) -> float:
        return self.cpus - sum(c for c, _ in self.held.values())

    def _holders(self, index: int) -> list[float | None]:
        return [g[index] for _, g in self.held.values() if index in g]

    def free_whole_gpus(self) -> list[Gpu]:
        return [g for g in self.gpus if not self._holders(g.index)]

    def free_gpu_mem(self, gpu: Gpu) -> float:
        """Memory a sharing task may still take on ``gpu`` (0 when a task holds it whole)."""
        holders = self._holders(gpu.index)
        if any(h is None for h in holders):
            return 0.0
        return gpu.mem_gb - sum(holders)

    def max_free_gpu_mem(self) -> float:
        return max((self.free_gpu_mem(g) for g in self.gpus), default=0.0)

    # -- claiming
    def fits(self, requires: dict) -> bool:
        return self.assign(requires) is not None

    def assign(self, requires: dict) -> tuple[float, dict[int, float | None]] | None:
        """The cpus and GPUs a task would get now, or None when it does not fit."""
        cpus = float(requires.get("cpus", 1) or 0)
        whole = int(requires.get("gpus", 0) or 0)
        mem = float(requires.get("gpu_mem_gb", 0) or 0)
        if cpus > self.free_cpus() + 1e-9:
            return None
        if whole:
            free = self.free_whole_gpus()
            if mem:  # whole GPUs with at least this much memory each
                free = [g for g in free if g.mem_gb >= mem]
            if len(free) < whole:
                return None
            return cpus, {g.index: None for g in free[:whole]}
        if mem:
            # the fullest GPU that still fits: keeps empty GPUs free for whole-GPU tasks
            candidates = [g for g in self.gpus if self.free_gpu_mem(g) >= mem - 1e-9]
            if not candidates:
                return None
            best = min(candidates, key=lambda g: (self.free_gpu_mem(g), g.index))
            return cpus, {best.index: mem}
        return cpus, {}

    def hold(self, attempt_id: str, requires: dict) -> list[int] | None:
        """Take what the task needs; returns its GPU indexes (for CUDA_VISIBLE_DEVICES), None if it no longer fits."""
        got = self.assign(requires)
        if got is None:
            return None
        self.held[attempt_id] = got
        return sorted(got[1])

    def release(self, attempt_id: str) -> None:
        self.held.pop(attempt_id, None)

    def claim_limits(self) -> dict:
        """What the next claim may take: the claim filter's bounds."""
        return {"cpus": self.free_cpus(), "gpus": len(self.free_whole_gpus()),
                "gpu_mem_gb": self.max_free_gpu_mem()}
