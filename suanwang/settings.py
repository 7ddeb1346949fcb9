"""Where settings come from: flags, then environment (``SUANWANG_*``), then a config file.

Click reads flags and ``envvar=``; this module supplies the third layer as Click's
``default_map`` from a TOML file (``--config``, ``$SUANWANG_CONFIG``,
``~/.suanwang/config.toml`` or ``/etc/suanwang/suanwang.toml``), e.g.::

    mongo = "mongodb://db1:27017/?replicaSet=suanwang"
    server_url = "http://db1:8080"
    [worker]
    tags = "gpu,a100"
    concurrency = 4
"""
from __future__ import annotations

import os
import tomllib
from pathlib import Path

from fsm.errors import ConfigError

DEFAULT_DATA_DIR = Path.home() / ".suanwang"
CONFIG_PATHS = (DEFAULT_DATA_DIR / "config.toml", Path("/etc/suanwang/suanwang.toml"))
#: Top-level keys of the file that apply to every command that has such an option.
SHARED_KEYS = {"mongo", "server_url", "token", "data_dir"}


def config_file(explicit: str | None = None) -> Path | None:
    if explicit:
        path = Path(explicit)
        if not path.exists():
            raise ConfigError(f"config file {path} does not exist")
        return path
    env = os.environ.get("SUANWANG_CONFIG")
    if env:
        return config_file(env)
    return next((p for p in CONFIG_PATHS if p.exists()), None)


def default_map(commands: list[str], explicit: str | None = None) -> dict:
    """Build Click's ``default_map`` for the given subcommand names from the config file."""
    path = config_file(explicit)
    if path is None:
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    shared = {k: v for k, v in data.items() if k in SHARED_KEYS}
    result = {}
    for name in commands:
        section = data.get(name, {})
        if not isinstance(section, dict):
            raise ConfigError(f"[{name}] in {path} must be a table")
        result[name] = {**shared, **section}
    return result


#: Files ``suanwang up`` keeps in its data directory for the other commands to find it.
TOKEN_FILE, SERVER_FILE = "admin.token", "server.url"


def data_dir_path(data_dir: str | os.PathLike | None) -> Path:
    return Path(data_dir or DEFAULT_DATA_DIR).expanduser()


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def read_token(data_dir: str | os.PathLike | None) -> str | None:
    """The admin token ``suanwang up`` wrote, if any."""
    return _read(data_dir_path(data_dir) / TOKEN_FILE)


def read_server_url(data_dir: str | os.PathLike | None) -> str | None:
    """The URL of the server a ``suanwang up`` with this data directory runs, if any."""
    return _read(data_dir_path(data_dir) / SERVER_FILE)
