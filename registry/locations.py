"""Which repository locations git may be pointed at.

A location is either an absolute local path (or ``file://`` URL) that lies under one of the
allowed roots, or a ``https``/``http``/``ssh``/``git`` URL (or scp-like ``user@host:path``).
Everything else is refused before git ever sees it: a leading ``-`` (option injection such
as ``--upload-pack=…``), transport helpers (``ext::``, ``fd::``, any ``x::``), whitespace and
control characters, credentials inside the URL, hosts that start with ``-``, and local paths
that escape the allowed roots (``..`` and symlinks are resolved first).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from fsm.errors import ValidationError
from fsm.identifiers import REPO_NAME

URL_SCHEMES = ("https", "http", "ssh", "git")
HOST = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})$|^\[[0-9A-Fa-f:.]+\]$")
USER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
SCP_LIKE = re.compile(r"^(?:(?P<user>[^@/:]+)@)?(?P<host>[^@/:]+):(?P<path>[^/].*|/.*)$")
MAX_LEN = 2048


@dataclass(frozen=True)
class Location:
    """A checked repository location: ``url`` is what git is given; ``kind`` is ``path`` or ``url``."""

    url: str
    kind: str

    def default_name(self) -> str:
        base = re.split(r"[/:]", self.url.rstrip("/"))[-1]
        base = re.sub(r"\.git$", "", base)
        base = re.sub(r"[^A-Za-z0-9._-]", "-", base).lstrip("._-")
        return base[:64] or "repo"


def _refuse(location: str, why: str) -> ValidationError:
    return ValidationError(f"repository location {location!r} refused: {why}", field="repo")


def check_syntax(location: str) -> Location:
    """Check everything that does not depend on configured roots (used again by workers)."""
    if not isinstance(location, str) or not location:
        raise ValidationError("a repository location (a path or a git URL) is required", field="repo")
    if len(location) > MAX_LEN:
        raise _refuse(location[:80] + "…", f"longer than {MAX_LEN} characters")
    if location.startswith("-"):
        raise _refuse(location, "it starts with '-' and would be read by git as an option")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in location):
        raise _refuse(location, "whitespace and control characters are not allowed")
    if "::" in location:
        raise _refuse(location, "transport helpers such as ext:: or fd:: are not allowed")
    if location.startswith("/"):
        return Location(os.path.normpath(location), "path")
    if "://" in location:
        parts = urlsplit(location)
        scheme = parts.scheme.lower()
        if scheme == "file":
            if parts.netloc not in ("", "localhost"):
                raise _refuse(location, "file:// URLs must name a local path (file:///path)")
            path = unquote(parts.path)
            if not path.startswith("/") or any(c.isspace() or ord(c) < 32 for c in path):
                raise _refuse(location, "not an absolute local path")
            return Location(os.path.normpath(path), "path")
        if scheme not in URL_SCHEMES:
            raise _refuse(location, f"scheme {scheme!r} is not allowed (allowed: file, {', '.join(URL_SCHEMES)})")
        if parts.password is not None:
            raise _refuse(location, "credentials inside the URL are not stored; use a git credential helper "
                                    "or an ssh key")
        _check_host(location, parts.hostname or "", parts.username)
        if "%" in parts.netloc:
            raise _refuse(location, "percent-escapes in the host part are not allowed")
        return Location(location, "url")
    match = SCP_LIKE.match(location)
    if match and "/" not in match["host"]:
        _check_host(location, match["host"], match["user"])
        if match["path"].startswith("-"):
            raise _refuse(location, "the path part starts with '-'")
        return Location(location, "url")
    raise _refuse(location, "not an absolute path, a file:// URL, an https/http/ssh/git URL or user@host:path")


def _check_host(location: str, host: str, user: str | None) -> None:
    if not host or not HOST.match(host):
        raise _refuse(location, f"bad host name {host!r}")
    if user is not None and not USER.match(user):
        raise _refuse(location, f"bad user name {user!r}")


def check_location(location: str, roots: tuple[str, ...] | list[str] = ()) -> Location:
    """Check a location an admin registers; local paths must lie under one of ``roots``."""
    checked = check_syntax(location)
    if checked.kind == "url":
        return checked
    real = Path(os.path.realpath(checked.url))
    allowed = [Path(os.path.realpath(os.path.expanduser(r))) for r in roots if r]
    if not allowed:
        raise _refuse(location, "local repositories are not allowed here: no allowed root is configured "
                                "(pass --allowed-root DIR or set SUANWANG_REPO_ROOTS)")
    if not any(real == root or root in real.parents for root in allowed):
        raise _refuse(location, f"{real} is outside the allowed roots ({', '.join(map(str, allowed))})")
    if not real.is_dir():
        raise _refuse(location, f"{real} is not a directory")
    return Location(str(real), "path")


def check_name(name: str) -> str:
    if not REPO_NAME.match(name):
        raise ValidationError(f"a repository name must be {REPO_NAME.rule}", field="name")
    return name
