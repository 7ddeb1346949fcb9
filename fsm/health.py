"""Machines judged by their results: when to quarantine a worker for one function (pure).

A worker whose recent attempts of a function keep failing (``consecutive_failures`` in a row,
or a success rate under ``min_success_rate`` over the last ``window`` attempts once it has at
least ``min_attempts``) stops claiming that function for ``cooldown_s``; then it is trusted
again with a clean record. Only the attempt's own failures count (an error, a crash, a timeout,
a lost lease); a cancel says nothing about the machine.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HealthPolicy:
    consecutive_failures: int = 3
    window: int = 20
    min_attempts: int = 8
    min_success_rate: float = 0.25
    cooldown_s: float = 300.0

    def validate(self) -> "HealthPolicy":
        from fsm.errors import ConfigError

        if self.consecutive_failures < 1 or self.window < 1 or self.min_attempts < 1 or self.cooldown_s < 0:
            raise ConfigError("quarantine settings must be positive")
        if not 0 <= self.min_success_rate <= 1:
            raise ConfigError("quarantine min_success_rate must be between 0 and 1")
        return self


@dataclass
class Record:
    """One (worker, function) pair's recent outcomes, newest last."""

    recent: list[bool]
    consecutive_failures: int = 0

    def add(self, ok: bool, window: int) -> None:
        self.recent = (self.recent + [ok])[-window:]
        self.consecutive_failures = 0 if ok else self.consecutive_failures + 1


def verdict(record: Record, policy: HealthPolicy) -> str | None:
    """Why the pair should be quarantined now, or None."""
    if record.consecutive_failures >= policy.consecutive_failures:
        return f"{record.consecutive_failures} failed attempts in a row"
    if len(record.recent) >= policy.min_attempts:
        rate = sum(record.recent) / len(record.recent)
        if rate < policy.min_success_rate:
            return (f"success rate {rate:.0%} over the last {len(record.recent)} attempts "
                    f"(under {policy.min_success_rate:.0%})")
    return None


def slower_than_best(mine_s: float | None, best_s: float | None, factor: float = 1.5) -> bool:
    """Whether this machine is clearly slower at a function than the best online one."""
    return mine_s is not None and best_s is not None and best_s > 0 and mine_s > factor * best_s
