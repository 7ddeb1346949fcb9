"""The command line: every command explains itself; users and tokens; clear errors."""
import os
import subprocess
import sys

import pytest

from fsm.store import Store, database
from tests.apiserver import api  # noqa: F401 (a fixture)

COMMANDS = ["up", "mongo", "server", "worker", "submit", "status", "user", "user add", "function", "repo"]


def run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "suanwang", *args], capture_output=True, text=True, timeout=60,
                          env=env)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_explains_each_command(command):
    out = run(*command.split(), "--help")
    assert out.returncode == 0, out.stderr
    assert "Usage:" in out.stdout and len(out.stdout) > 200


def test_user_add_goes_through_the_api_with_a_token(api, tmp_path):
    # Given a data directory like the one `suanwang up` leaves (its server URL and admin token),
    data = tmp_path / "data"
    data.mkdir()
    (data / "server.url").write_text(api.base + "\n")
    (data / "admin.token").write_text(api.tokens["admin"] + "\n")
    env = {**os.environ, "SUANWANG_DATA_DIR": str(data)}
    for name in ("SUANWANG_SERVER", "SUANWANG_TOKEN"):
        env.pop(name, None)
    # when an admin adds a user with no --mongo and no --server-url,
    out = run("user", "add", "alice", "--role", "super", env=env)
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip().splitlines()[-1]
    # then the server made it, and its token works,
    assert api.call("GET", "/tasks", token=token).status_code == 200
    assert "alice" in run("user", "list", env=env).stdout
    # and the server's rules hold: duplicates, bad roles, and callers below admin are refused.
    again = run("user", "add", "alice", "--role", "super", env=env)
    assert again.returncode == 2 and "already exists" in again.stderr
    bad = run("user", "add", "bob", "--role", "root", env=env)
    assert bad.returncode == 2 and "root" in bad.stderr
    low = run("user", "add", "carl", "--role", "general", "--token", api.tokens["super"], env=env)
    assert low.returncode == 2 and "403" in low.stderr


def test_mongo_only_creates_the_first_admin(db_uri):
    # a fresh database takes its first admin without a server
    out = run("user", "add", "root", "--role", "admin", "--mongo", db_uri)
    assert out.returncode == 0, out.stderr
    store = Store(database(db_uri))
    try:
        assert store.users.by_token(out.stdout.strip().splitlines()[-1])["role"] == "admin"
    finally:
        store.close()
    # and nothing else: not a second admin, not another role
    again = run("user", "add", "root2", "--role", "admin", "--mongo", db_uri)
    assert again.returncode == 2 and "already has an admin" in again.stderr
    other = run("user", "add", "ann", "--role", "super", "--mongo", db_uri)
    assert other.returncode == 2 and "first admin" in other.stderr


def test_the_cli_finds_a_data_dir_from_the_environment(api, tmp_path):
    data = tmp_path / "elsewhere"
    data.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("SUANWANG_SERVER", "SUANWANG_TOKEN")}
    env["SUANWANG_DATA_DIR"] = str(data)
    # no token yet: the message names the data directory actually looked in
    out = run("status", env=env)
    assert out.returncode == 2 and str(data / "admin.token") in out.stderr, out.stderr
    (data / "admin.token").write_text(api.tokens["admin"])
    out = run("status", env=env)  # no server.url: the default URL, said so
    assert out.returncode == 2 and "cannot reach the server" in out.stderr and "default" in out.stderr
    (data / "server.url").write_text(api.base)
    out = run("submit", "noop", env=env)
    assert out.returncode == 0 and '"id"' in out.stdout, out.stderr


def test_clear_errors_without_server_or_token(tmp_path):
    out = run("submit", "echo", "1", "--data-dir", str(tmp_path), "--server-url", "http://127.0.0.1:9")
    assert out.returncode == 2 and "token" in out.stderr
    out = run("status", "--token", "x", "--server-url", "http://127.0.0.1:9")
    assert out.returncode == 2 and "cannot reach the server" in out.stderr
    out = run("worker", "--mongo", "http://not-mongo")
    assert out.returncode != 0 and "mongodb://" in (out.stderr + out.stdout)
