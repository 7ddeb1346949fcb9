"""From a task's (function, version) to what the executor's child imports: a ``RunSpec``.

The daemon resolves (it may need the database and git); the child only imports
``entrypoint`` with ``path`` put first on ``sys.path``, so versions never see each other.
"""
from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass

from fsm.errors import FunctionNotFound
from registry.builtins import BUILTIN_VERSION, BUILTINS


@dataclass(frozen=True)
class RunSpec:
    """What a child process needs to find the function: ``module:function`` and an import root."""

    entrypoint: str
    path: str | None = None  # a read-only checkout of the function's commit; None: installed code

    @property
    def key(self) -> str:
        return f"{self.path or ''}::{self.entrypoint}"


def builtin_spec(function: str) -> RunSpec | None:
    if function in BUILTINS:
        return RunSpec(f"registry.builtins:{function}")
    return None


class Resolver:
    """Resolves built-ins and ``module:function`` entrypoints importable on this worker.

    The git-backed registry extends this with registered function versions.
    """

    def prepare(self, function: str, version: str | None) -> RunSpec:
        spec = builtin_spec(function)
        if spec and version in (None, BUILTIN_VERSION):
            return spec
        if ":" in function:
            return RunSpec(function)
        raise FunctionNotFound(f"unknown function {function!r}" + (f" version {version!r}" if version else ""))


def load(spec: RunSpec):
    """Import the entrypoint (in the executor's child); raise a clear error when it is missing."""
    module_name, _, attr = spec.entrypoint.partition(":")
    if spec.path and spec.path not in sys.path:
        sys.path.insert(0, spec.path)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise FunctionNotFound(f"cannot import module {module_name!r}: {exc}") from exc
    try:
        target = module
        for part in attr.split("."):
            target = getattr(target, part)
    except AttributeError:
        raise FunctionNotFound(f"module {module_name!r} has no function {attr!r}") from None
    if not callable(target):
        raise FunctionNotFound(f"{spec.entrypoint} is not callable")
    return target


def make_resolver(db=None, cache_dir: str | None = None) -> Resolver:
    """The resolver a worker uses (the git registry plugs in here)."""
    return Resolver()
