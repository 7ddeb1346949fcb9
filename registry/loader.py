"""Importing an entrypoint inside the executor's child process.

Executor children are long-lived and may run version 1, then version 2, then version 1 of a
function whose modules share names. Before importing from a checkout, ``load`` forgets every
module this process imported from any *other* checkout (and takes those checkouts off
``sys.path``), so a name always resolves inside the spec's own commit; stale code never lingers.
"""
from __future__ import annotations

import importlib
import os
import sys

from fsm.errors import FunctionNotFound, RegistryError

#: Checkout roots this process has put on ``sys.path``.
_roots: set[str] = set()


def _under(path: str | None, root: str) -> bool:
    return bool(path) and (path == root or path.startswith(root + os.sep))


def _module_roots(module) -> list[str]:
    """Where a module's code lives: its file and its package directories (odd modules give [])."""
    try:
        files = [getattr(module, "__file__", None)]
        path = getattr(module, "__path__", None)
        if path is not None and not isinstance(path, (str, bytes)):
            files += list(path)
    except Exception:  # lazy or exotic modules (torch.classes) may raise on attribute access
        return []
    return [f for f in files if isinstance(f, str)]


def _switch_to(root: str | None) -> None:
    """Forget modules and path entries of every checkout except ``root``; put ``root`` first."""
    others = {r for r in _roots if r != root}
    if others:
        for name, module in list(sys.modules.items()):
            if any(_under(f, r) for f in _module_roots(module) for r in others):
                del sys.modules[name]
        sys.path[:] = [p for p in sys.path if p not in others]
        _roots.difference_update(others)
        importlib.invalidate_caches()
    if root is not None:
        if not sys.path or sys.path[0] != root:
            if root in sys.path:
                sys.path.remove(root)
            sys.path.insert(0, root)
        if root not in _roots:
            _roots.add(root)
            importlib.invalidate_caches()


def load(spec):
    """Import ``spec.entrypoint`` (from ``spec.path`` when given) and return the callable.

    Raises FunctionNotFound when the module or the name is missing, RegistryError when the
    module fails while being imported.
    """
    module_name, _, attr = spec.entrypoint.partition(":")
    if not module_name or not attr:
        raise FunctionNotFound(f"entrypoint {spec.entrypoint!r} is not 'module:function'")
    root = os.path.realpath(spec.path) if spec.path else None
    if root is not None and not os.path.isdir(root):
        raise RegistryError(f"the checkout {root} of {spec.entrypoint} is missing on this machine")
    _switch_to(root)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        where = f" from {root}" if root else ""
        raise FunctionNotFound(f"cannot import module {module_name!r}{where}: {exc}") from exc
    except Exception as exc:  # the module's own top-level code failed
        raise RegistryError(f"importing module {module_name!r} raised {type(exc).__name__}: {exc}") from exc
    if root is not None and not any(_under(f, root) for f in _module_roots(module)):
        raise FunctionNotFound(f"module {module_name!r} is not in the checkout {root} "
                               f"(found {getattr(module, '__file__', None) or 'a built-in module'} instead)")
    try:
        target = module
        for part in attr.split("."):
            target = getattr(target, part)
    except AttributeError:
        raise FunctionNotFound(f"module {module_name!r} has no function {attr!r}") from None
    if not callable(target):
        raise FunctionNotFound(f"{spec.entrypoint} is not callable")
    return target
