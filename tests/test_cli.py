"""The command line: every command explains itself; users and tokens; clear errors."""
import subprocess
import sys

import pytest

from fsm.store import Store, database

COMMANDS = ["up", "mongo", "server", "worker", "submit", "status", "user", "user add", "function", "repo"]


def run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "suanwang", *args], capture_output=True, text=True, timeout=60,
                          env=env)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_explains_each_command(command):
    out = run(*command.split(), "--help")
    assert out.returncode == 0, out.stderr
    assert "Usage:" in out.stdout and len(out.stdout) > 200


def test_user_add_prints_a_working_token(db_uri):
    out = run("user", "add", "alice", "--role", "super", "--mongo", db_uri)
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip().splitlines()[-1]
    store = Store(database(db_uri))
    try:
        assert store.users.by_token(token)["role"] == "super"
        again = run("user", "add", "alice", "--role", "super", "--mongo", db_uri)
        assert again.returncode == 2 and "already exists" in again.stderr
        bad = run("user", "add", "bob", "--role", "root", "--mongo", db_uri)
        assert bad.returncode == 2 and "root" in bad.stderr
    finally:
        store.close()


def test_clear_errors_without_server_or_token(tmp_path):
    out = run("submit", "echo", "1", "--data-dir", str(tmp_path), "--server-url", "http://127.0.0.1:9")
    assert out.returncode == 2 and "token" in out.stderr
    out = run("status", "--token", "x", "--server-url", "http://127.0.0.1:9")
    assert out.returncode == 2 and "cannot reach the server" in out.stderr
    out = run("worker", "--mongo", "http://not-mongo")
    assert out.returncode != 0 and "mongodb://" in (out.stderr + out.stdout)
