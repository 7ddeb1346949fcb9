"""``suanwang function …`` and ``suanwang repo …`` against a real MongoDB and git repository."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from click.testing import CliRunner

from suanwang.cli_registry import function_group, repo_group
from tests.test_registry import calc_files, commit, git, make_repo


def run(group, args, env=None):
    result = CliRunner().invoke(group, args, env=env, catch_exceptions=False)
    return result.exit_code, result.output


def test_register_list_show_from_the_command_line(db_uri, tmp_path):
    # Given a repository under an allowed root,
    repo = make_repo(tmp_path / "repos" / "funcs", calc_files("v1"), tag="v1")
    commit(repo, calc_files("v2"), tag="v2")
    env = {"SUANWANG_MONGO_URI": db_uri, "SUANWANG_CACHE_DIR": str(tmp_path / "cache"),
           "SUANWANG_REPO_ROOTS": str(tmp_path / "repos")}
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


def test_the_suanwang_command_mounts_the_groups(db_uri):
    env = {**os.environ, "SUANWANG_MONGO_URI": db_uri}
    out = subprocess.run([sys.executable, "-m", "suanwang", "function", "list"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and "0 version(s)" in out.stdout, out.stderr
    out = subprocess.run([sys.executable, "-m", "suanwang", "repo", "--help"], capture_output=True, text=True,
                         timeout=60)
    assert "add" in out.stdout and "list" in out.stdout
