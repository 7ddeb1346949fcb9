"""A machine's cache of function code: one bare mirror per repository, one read-only
checkout per commit, both safe to share between processes.

Layout under ``cache_dir``::

    mirrors/<name>-<hash>.git   git clone --mirror of a registered repository (fetched when a commit is missing)
    checkouts/<sha>/            the commit's files (``git archive``), read-only, never modified once there
    locks/<name>-<hash>.lock    fcntl.flock: one process at a time clones, fetches or exports a repository

A checkout is built in a temporary directory beside its final place and renamed into place
in one step, so a reader sees either nothing or the whole tree; a checkout in use is never
touched. Every git command runs with a timeout, no prompts and an allow-list of transports.
"""
from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import shutil
import stat
import tarfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import git

from fsm.errors import RegistryError
from fsm.identifiers import COMMIT_SHA, GIT_REF
from registry.locations import check_syntax

log = logging.getLogger("suanwang.registry")

#: Transports git may use, whatever the location says (blocks ext::, fd:: and friends).
ALLOWED_PROTOCOLS = "file:git:http:https:ssh"
GIT_CONFIG = ["-c", "protocol.ext.allow=never", "-c", "protocol.fd.allow=never", "-c", "core.askPass=",
              "-c", "credential.interactive=false"]


def git_env() -> dict[str, str]:
    env = {"GIT_TERMINAL_PROMPT": "0", "GIT_ALLOW_PROTOCOL": ALLOWED_PROTOCOLS, "GCM_INTERACTIVE": "never"}
    if "GIT_SSH_COMMAND" not in os.environ and "GIT_SSH" not in os.environ:
        env["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes -o ConnectTimeout=20"
    return env


def _key(url: str) -> str:
    base = re.sub(r"\.git$", "", re.split(r"[/:]", url.rstrip("/"))[-1])
    base = re.sub(r"[^A-Za-z0-9._-]", "-", base).strip(".-")[:40] or "repo"
    return f"{base}-{hashlib.sha256(url.encode()).hexdigest()[:16]}"


def _make_read_only(root: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                mode = os.stat(p).st_mode
                os.chmod(p, 0o555 if mode & stat.S_IXUSR else 0o444)
        for name in dirnames:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                os.chmod(p, 0o555)


def _rmtree(path: Path) -> None:
    def fix(func, p, _exc):
        try:
            os.chmod(os.path.dirname(p), 0o755)
            os.chmod(p, 0o755)
            func(p)
        except OSError:
            pass
    if path.exists():
        shutil.rmtree(path, onerror=fix)


class GitCache:
    """Mirrors and checkouts under ``cache_dir``; see the module docstring."""

    def __init__(self, cache_dir: str | os.PathLike, *, timeout_s: float = 120.0, lock_timeout_s: float | None = None):
        self.root = Path(cache_dir).expanduser().resolve()
        self.timeout_s = timeout_s
        self.lock_timeout_s = lock_timeout_s if lock_timeout_s is not None else 3 * timeout_s + 30
        for sub in ("mirrors", "checkouts", "locks"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    # ----------------------------------------------------------------- plumbing
    def _git(self, args: list[str], cwd: Path | None = None, what: str = "git") -> str:
        cmd = ["git", *GIT_CONFIG, *args]
        try:
            status, out, err = git.Git(str(cwd) if cwd else None).execute(
                cmd, kill_after_timeout=self.timeout_s, env=git_env(), with_extended_output=True,
                with_exceptions=False)
        except git.GitCommandNotFound as exc:
            raise RegistryError(f"git is not installed on this machine: {exc}") from None
        if status != 0:
            tail = " ".join((err or out or "").strip().splitlines()[-3:])
            if "Timeout" in (err or "") or status in (-9, 137):
                raise RegistryError(f"{what} timed out after {self.timeout_s:.0f} s: {tail}")
            raise RegistryError(f"{what} failed: {tail or f'git exited with status {status}'}")
        return out

    @contextmanager
    def _lock(self, key: str):
        path = self.root / "locks" / f"{key}.lock"
        with open(path, "a+") as fh:
            deadline = time.monotonic() + self.lock_timeout_s
            while True:
                try:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise RegistryError(f"the code cache {self.root} is busy (lock {path.name} held "
                                            f"for more than {self.lock_timeout_s:.0f} s)") from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def mirror_path(self, url: str) -> Path:
        return self.root / "mirrors" / f"{_key(url)}.git"

    def checkout_path(self, sha: str) -> Path:
        return self.root / "checkouts" / sha

    # ------------------------------------------------------------------ mirrors
    def _ensure_mirror_locked(self, url: str) -> Path:
        path = self.mirror_path(url)
        if (path / "HEAD").exists():
            return path
        check_syntax(url)  # never hand git a location a registrant could not have registered
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            self._git(["clone", "--mirror", "--quiet", "--", url, str(tmp)], what=f"cloning {url}")
            os.rename(tmp, path)
        finally:
            _rmtree(tmp)
        log.info("mirrored %s into %s", url, path)
        return path

    def _fetch_locked(self, url: str, sha: str | None = None) -> None:
        path = self._ensure_mirror_locked(url)
        self._git(["fetch", "--quiet", "--prune", "--force", "origin"], cwd=path, what=f"fetching {url}")
        if sha and not self._has_commit(path, sha):
            try:  # a commit on no branch or tag: ask for it by name (servers may refuse)
                self._git(["fetch", "--quiet", "origin", sha], cwd=path, what=f"fetching {sha[:12]} from {url}")
            except RegistryError as exc:
                log.info("fetch by SHA refused by %s: %s", url, exc.message)

    def _has_commit(self, mirror: Path, sha: str) -> bool:
        try:
            self._git(["cat-file", "-e", f"{sha}^{{commit}}"], cwd=mirror)
            return True
        except RegistryError:
            return False

    def resolve(self, url: str, ref: str) -> str:
        """Fetch ``url`` and return the full SHA of the commit ``ref`` (tag, branch or SHA) names."""
        if not GIT_REF.match(ref) or ".." in ref:
            raise RegistryError(f"bad ref {ref!r}: expected a tag, a branch or a commit SHA")
        with self._lock(_key(url)):
            self._fetch_locked(url, ref if COMMIT_SHA.match(ref) else None)
            mirror = self.mirror_path(url)
            try:
                out = self._git(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"],
                                cwd=mirror)
            except RegistryError:
                raise RegistryError(f"ref {ref!r} is not a tag, branch or commit of {url}") from None
        return out.strip()

    def ensure_commit(self, url: str, sha: str) -> Path:
        """The mirror of ``url``, fetched if it lacks ``sha``; raises when the remote no longer has it."""
        if not COMMIT_SHA.match(sha or ""):
            raise RegistryError(f"bad commit {sha!r}: expected a full SHA")
        with self._lock(_key(url)):
            mirror = self._ensure_mirror_locked(url)
            if not self._has_commit(mirror, sha):
                self._fetch_locked(url, sha)
                if not self._has_commit(mirror, sha):
                    raise RegistryError(f"commit {sha} is not in repository {url} any more (history rewritten, "
                                        "or the branch or tag deleted?) and this machine's cache lacks it")
        return mirror

    def read_file(self, url: str, sha: str, path: str) -> bytes | None:
        """The bytes of ``path`` in commit ``sha`` (None when there is no such file)."""
        mirror = self.ensure_commit(url, sha)
        tree = git.Repo(str(mirror)).commit(sha).tree
        try:
            blob = tree / path
        except KeyError:
            return None
        if blob.type != "blob":
            return None
        return blob.data_stream.read()

    # ---------------------------------------------------------------- checkouts
    def checkout(self, url: str, sha: str) -> Path:
        """A read-only tree of commit ``sha``, built once per machine and reused."""
        final = self.checkout_path(sha)
        if final.is_dir():
            return final
        self.ensure_commit(url, sha)
        with self._lock(_key(url)):
            if final.is_dir():  # another process built it while we waited
                return final
            tmp = final.with_name(f".{sha}.{uuid.uuid4().hex[:8]}.tmp")
            archive = tmp.with_suffix(".tar")
            try:
                tmp.mkdir()
                self._git(["archive", "--format=tar", "-o", str(archive), sha], cwd=self.mirror_path(url),
                          what=f"exporting {sha[:12]}")
                with tarfile.open(archive) as tar:
                    tar.extractall(tmp, filter="data")
                _make_read_only(tmp)
                os.rename(tmp, final)
                os.chmod(final, 0o555)
            except (OSError, tarfile.TarError) as exc:
                raise RegistryError(f"cannot export commit {sha[:12]} into {final}: {exc}") from exc
            finally:
                archive.unlink(missing_ok=True)
                _rmtree(tmp)
        log.info("checked out %s of %s into %s", sha[:12], url, final)
        return final

    def checked_out(self) -> list[str]:
        """The commits with a complete checkout here."""
        return sorted(p.name for p in (self.root / "checkouts").iterdir() if COMMIT_SHA.match(p.name) and p.is_dir())
