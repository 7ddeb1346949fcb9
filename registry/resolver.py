"""From a task's (function, version) to what the executor's child imports: a ``RunSpec``.

The daemon resolves (it may need the database and git); the child only imports
``entrypoint`` from ``path`` (see ``registry.loader``), so versions never see each other.
A registered version resolves to a read-only checkout of its pinned commit in this
machine's cache, fetched on demand the first time a task needs it.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from fsm.errors import FunctionNotFound, RegistryError
from registry.builtins import BUILTIN_VERSION, BUILTINS
from registry.checkout import GitCache
from registry.loader import load  # noqa: F401  (re-exported: ``from registry.resolver import load``)
from registry.store import registry_stores

#: Where a worker keeps mirrors and checkouts unless told otherwise.
DEFAULT_CACHE_DIR = Path.home() / ".suanwang" / "cache"
#: How often ``ready_versions`` re-reads which versions the cached commits hold.
READY_REFRESH_S = 60.0


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
    """Resolves built-ins and ``module:function`` entrypoints importable on this worker."""

    def prepare(self, function: str, version: str | None) -> RunSpec:
        spec = builtin_spec(function)
        if spec and version in (None, BUILTIN_VERSION):
            return spec
        if ":" in function:
            return RunSpec(function)
        return self.prepare_registered(function, version)

    def prepare_registered(self, function: str, version: str | None) -> RunSpec:
        raise FunctionNotFound(f"unknown function {function!r}" + (f" version {version!r}" if version else ""))

    def ready_versions(self) -> list[tuple[str, str]]:
        """The (code, version) pairs whose code is on this machine (none without a registry)."""
        return []


class GitResolver(Resolver):
    """Also resolves registered function versions: pinned commits of registered repositories."""

    def __init__(self, db, cache_dir: str | Path | None = None, *, git_timeout_s: float = 120.0):
        self.functions, self.repos = registry_stores(db)  # a Store, or a raw Database
        self.git = GitCache(cache_dir or DEFAULT_CACHE_DIR, timeout_s=git_timeout_s)
        self._specs: dict[tuple[str, str], RunSpec] = {}
        self._ready: set[tuple[str, str]] = set()
        self._scanned_at = float("-inf")
        self._lock = threading.Lock()

    def prepare_registered(self, function: str, version: str | None) -> RunSpec:
        if version is None:  # tasks record their version at publish time; this is a fallback
            newest = self.functions.newest(function)
            if newest is None:
                super().prepare_registered(function, version)
            version = newest["version"]
        key = (function, version)
        spec = self._specs.get(key)
        if spec and Path(spec.path).is_dir():
            return spec
        doc = self.functions.find(function, version)
        if doc is None:
            raise FunctionNotFound(f"function {function!r} has no registered version {version!r}"
                                   if self.functions.exists(function) else f"unknown function {function!r}")
        repo = self.repos.find(doc["repo"])
        if repo is None:
            raise RegistryError(f"repository {doc['repo']!r} of {function} {version} is no longer registered; "
                                "its functions do not run")
        try:
            path = self.git.checkout(repo["url"], doc["commit"])
        except RegistryError as exc:
            raise RegistryError(f"cannot get the code of {function} {version} (commit {doc['commit'][:12]} "
                                f"of {repo['_id']}): {exc.message}") from None
        spec = RunSpec(doc["entrypoint"], str(path))
        with self._lock:
            self._specs[key] = spec
            self._ready.add(key)
        return spec

    def ready_versions(self, refresh: bool = False) -> list[tuple[str, str]]:
        """The (code, version) pairs whose commit is checked out here, for the worker's whoami."""
        if refresh or time.monotonic() - self._scanned_at > READY_REFRESH_S:
            commits = self.git.checked_out()
            found = {(d["code"], d["version"]) for d in self.functions.by_commits(commits)} if commits else set()
            with self._lock:
                self._ready |= found
                self._scanned_at = time.monotonic()
        with self._lock:
            return sorted(self._ready)


def make_resolver(db=None, cache_dir: str | None = None) -> Resolver:
    """The resolver a worker uses: the git registry when it has a database, else built-ins only."""
    if db is None:
        return Resolver()
    return GitResolver(db, cache_dir)
