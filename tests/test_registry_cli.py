"""``suanwang function …`` and ``suanwang repo …`` through a real server, MongoDB and git repository."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from click.testing import CliRunner

from suanwang.cli_registry import function_group, repo_group
from tests.apiserver import ADMIN_TOKEN, api, start  # noqa: F401 (api: a fixture)
from tests.test_registry import calc_files, commit, git, make_repo


def run(group, args, env=None):
    result = CliRunner().invoke(group, args, env=env, catch_exceptions=False)
    return result.exit_code, result.output


def test_register_list_show_from_the_command_line(store, db_uri, db_name, tmp_path):
    # Given a repository under one of the server's repository roots,
    repo = make_repo(tmp_path / "repos" / "funcs", calc_files("v1"), tag="v1")
    commit(repo, calc_files("v2"), tag="v2")
    api = start(store, db_uri, db_name, repo_roots=(str(tmp_path / "repos"),),
                registry_cache_dir=str(tmp_path / "cache"))
    try:
        _register_list_show(api, repo, tmp_path)
    finally:
        api.server.stop()


def _register_list_show(api, repo, tmp_path):
    env = {"SUANWANG_SERVER": api.base, "SUANWANG_TOKEN": ADMIN_TOKEN, "SUANWANG_DATA_DIR": str(tmp_path / "none")}
    # when an admin adds it and registers two versions,
    assert run(repo_group, ["add", str(repo), "--description", "tests"], env)[0] == 0
    code, out = run(repo_group, ["list"], env)
    assert code == 0 and "funcs" in out and str(repo) in out
    for version, ref, extra in (("1.0", "v1", []), ("2.0", "v2", ["--public", "--requires", '{"gpus": 0}'])):
        code, out = run(function_group, ["register", "--repo", "funcs", "--ref", ref, "--entrypoint",
                                         "calc:answer", "--code", "func1", "--name", "Answer", "--version", version,
                                         "--description", "d", "--developer-name", "Ada", "--developer-contact",
                                         "ada@example.org", "--developer-cell", "123", *extra], env)
        assert code == 0 and out.startswith("registered func1 " + version), out
        assert git(repo, "rev-parse", ref) in out
    # then list and show report them, with the source text,
    code, out = run(function_group, ["list", "--json"], env)
    listed = json.loads(out)
    assert code == 0 and listed["total"] == 2 and [i["version"] for i in listed["items"]] == ["2.0", "1.0"]
    code, out = run(function_group, ["show", "func1"], env)
    assert code == 0 and "version:            2.0" in out and 'Version v2 of the answer' in out and "public:             True" in out
    code, out = run(function_group, ["show", "func1", "1.0", "--json"], env)
    assert json.loads(out)["commit"] == git(repo, "rev-parse", "v1")
    assert run(function_group, ["set", "func1", "2.0", "--deprecated"], env)[0] == 0
    assert "version:            1.0" in run(function_group, ["show", "func1", "--no-source"], env)[1]
    # and mistakes get one clear line and exit status 2, changing nothing.
    code, out = run(function_group, ["register", "--repo", "funcs", "--ref", "v2", "--entrypoint", "calc:answer",
                                     "--code", "func1", "--version", "1.0"], env)
    assert code == 2 and "already registered at commit" in out
    code, out = run(repo_group, ["add", "--", "--upload-pack=touch /tmp/x"], env)
    assert code == 2 and "starts with '-'" in out
    code, out = run(repo_group, ["add", "file:///etc/../"], env)
    assert code == 2 and "outside the allowed roots" in out
    code, out = run(function_group, ["show", "nope"], env)
    assert code == 2 and "unknown function 'nope'" in out


def test_the_suanwang_command_mounts_the_groups(api, tmp_path):
    env = {**os.environ, "SUANWANG_SERVER": api.base, "SUANWANG_TOKEN": api.tokens["business"],
           "SUANWANG_DATA_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "suanwang", "function", "list"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and "0 registered version(s)" in out.stdout and "echo" in out.stdout, out.stderr
    # roles are the server's: a business user may not add a repository
    out = subprocess.run([sys.executable, "-m", "suanwang", "repo", "add", str(tmp_path)], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "403" in out.stderr, out.stderr
    out = subprocess.run([sys.executable, "-m", "suanwang", "repo", "--help"], capture_output=True, text=True,
                         timeout=60)
    assert "add" in out.stdout and "list" in out.stdout
