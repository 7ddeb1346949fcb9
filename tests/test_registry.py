"""The git-versioned function registry against real git repositories and a real MongoDB.

Repositories are made in a temporary folder; a "server" cache registers versions and a
separate "worker" cache resolves and loads them, as two machines would.
"""
from __future__ import annotations

import multiprocessing
import os
import subprocess
from pathlib import Path

import pytest

from fsm.errors import Conflict, Forbidden, FunctionNotFound, RegistryError, ValidationError
from registry import catalog, loader
from registry.checkout import GitCache
from registry.locations import check_location, check_syntax
from registry.resolver import GitResolver, RunSpec, load, make_resolver
from registry.service import Registry

ADMIN = {"_id": "root", "role": "admin"}
SUPER = {"_id": "sue", "role": "super"}
BUSINESS = {"_id": "bob", "role": "business"}

CALC = '''from calc_helper import label


def answer(x):
    """Version {v} of the answer."""
    return {{"version": label(), "x": x}}
'''
HELPER = 'def label():\n    return "{v}"\n'


def git(cwd, *args) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def make_repo(path: Path, files: dict[str, str], tag: str | None = None) -> Path:
    """A fresh git repository at ``path`` with one commit of ``files``."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    return commit(path, files, tag)


def commit(path: Path, files: dict[str, str], tag: str | None = None, remove: tuple[str, ...] = ()) -> Path:
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    for name in remove:
        (path / name).unlink()
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", f"commit {tag or 'work'}")
    if tag:
        git(path, "tag", tag)
    return path


def calc_files(v: str) -> dict[str, str]:
    return {"calc.py": CALC.format(v=v), "calc_helper.py": HELPER.format(v=v)}


def registration(version: str, ref: str, **extra) -> dict:
    return {"repo": "funcs", "ref": ref, "entrypoint": "calc:answer", "code": "func1", "version": version,
            "name": "The answer", "description": "returns its version", "developer_name": "Ada",
            "developer_contact": "ada@example.org", "developer_cell": "+86 100", **extra}


@pytest.fixture
def roots(tmp_path) -> Path:
    return tmp_path / "repos"


@pytest.fixture
def remote(roots) -> Path:
    """The function repository: tag v1, then tag v2 (a different answer)."""
    path = make_repo(roots / "funcs", calc_files("v1"), tag="v1")
    commit(path, calc_files("v2"), tag="v2")
    return path


@pytest.fixture
def registry(db, tmp_path, roots) -> Registry:
    return Registry(db, str(tmp_path / "server-cache"), roots=[str(roots)], git_timeout_s=30)


@pytest.fixture
def funcs(registry, remote) -> Registry:
    """The registry with ``funcs`` allowed and versions 1.0 (tag v1) and 2.0 (tag v2) registered."""
    registry.add_repo(ADMIN, str(remote), name="funcs")
    registry.register(ADMIN, registration("1.0", "v1"))
    registry.register(SUPER, registration("2.0", "v2", public=True))
    return registry


@pytest.fixture
def worker_resolver(db, tmp_path) -> GitResolver:
    return GitResolver(db, tmp_path / "worker-cache", git_timeout_s=30)


@pytest.fixture(autouse=True)
def forget_checkouts():
    """Tests load code into this process; leave no checkout's modules behind."""
    yield
    loader._switch_to(None)


def counts(db) -> tuple[int, int]:
    return db.functions.count_documents({}), db.repos.count_documents({})


# ------------------------------------------------------------------ registering
def test_registration_records_the_commit_and_the_source(funcs, remote, db):
    doc = funcs.get_function("func1", "1.0")
    assert doc["commit"] == git(remote, "rev-parse", "v1^{commit}") and len(doc["commit"]) == 40
    assert doc["entrypoint"] == "calc:answer" and doc["path"] == "calc.py"
    assert doc["content"] == CALC.format(v="v1")
    assert doc["repo"] == "funcs" and doc["repo_url"] == str(remote.resolve())
    assert (doc["developer_name"], doc["developer_contact"], doc["developer_cell"]) == ("Ada", "ada@example.org",
                                                                                       "+86 100")
    assert doc["deprecated"] is False and doc["public"] is False and doc["registered_by"] == "root"
    assert doc["create_time"] == doc["update_time"]
    assert funcs.get_function("func1", "2.0")["public"] is True
    # Registering the same version at the same commit again changes nothing.
    again, created = funcs.register(ADMIN, registration("1.0", doc["commit"]))
    assert not created and again["_id"] == doc["_id"] and counts(db) == (2, 1)


def test_a_version_never_moves_to_another_commit(funcs, db):
    with pytest.raises(Conflict, match="already registered at commit"):
        funcs.register(ADMIN, registration("1.0", "v2"))
    assert funcs.get_function("func1", "1.0")["content"] == CALC.format(v="v1") and counts(db) == (2, 1)


def test_newest_non_deprecated_version_is_recorded_at_publish(funcs, db):
    assert catalog.resolve_version(db, "func1", None, "super") == "2.0"
    assert catalog.resolve_version(db, "func1", "1.0", "admin") == "1.0"
    funcs.set_flags(SUPER, "func1", "2.0", deprecated=True)
    assert catalog.resolve_version(db, "func1", None, "super") == "1.0"
    funcs.set_flags(SUPER, "func1", "1.0", deprecated=True)
    with pytest.raises(FunctionNotFound, match="deprecated"):
        catalog.resolve_version(db, "func1", None, "super")
    assert catalog.resolve_version(db, "echo", None, "business") == "builtin"
    with pytest.raises(FunctionNotFound, match="no version '9.9'"):
        catalog.resolve_version(db, "func1", "9.9", "admin")
    with pytest.raises(FunctionNotFound, match="unknown function 'nope'"):
        catalog.resolve_version(db, "nope", None, "admin")


def test_business_users_publish_only_public_versions(funcs, db):
    assert catalog.resolve_version(db, "func1", "2.0", "business") == "2.0"
    with pytest.raises(Forbidden, match="not public"):
        catalog.resolve_version(db, "func1", "1.0", "business")
    with pytest.raises(Forbidden):
        catalog.resolve_version(db, "func1", "2.0", "general")


def test_requires_declared_at_registration_become_task_defaults(funcs, db):
    funcs.register(ADMIN, registration("3.0", "v2", code="func1_gpu", requires={"gpus": 1}))
    assert catalog.task_defaults(db, "func1_gpu", "3.0") == {"requires": {"gpus": 1, "mem_gb": 0.0, "tags": []}}
    assert catalog.task_defaults(db, "func1", "1.0") == {}
    assert catalog.task_defaults(db, "echo", None) == {}


# -------------------------------------------------------------- worker side
def test_two_versions_load_side_by_side_in_one_process(funcs, worker_resolver):
    # Given two versions of one function whose modules share their names,
    v1 = worker_resolver.prepare("func1", "1.0")
    v2 = worker_resolver.prepare("func1", "2.0")
    assert v1.path != v2.path and v1.entrypoint == v2.entrypoint == "calc:answer"
    # when one long-lived process runs v1, then v2, then v1 again,
    results = [load(spec)(7) for spec in (v1, v2, v1)]
    # then each run gets its own version's code, helpers included.
    assert [r["version"] for r in results] == ["v1", "v2", "v1"] and results[0]["x"] == 7
    assert sorted(worker_resolver.ready_versions()) == [("func1", "1.0"), ("func1", "2.0")]
    # The checkout is read-only and is reused.
    assert not os.access(Path(v1.path) / "calc.py", os.W_OK) or os.geteuid() == 0
    assert oct(os.stat(Path(v1.path) / "calc.py").st_mode & 0o777) == "0o444"
    assert worker_resolver.prepare("func1", "1.0") == v1
    # A fresh resolver over the same cache sees what is already there.
    assert GitResolver(funcs.functions.functions.database, Path(v1.path).parent.parent).ready_versions() == [
        ("func1", "1.0"), ("func1", "2.0")]


def test_a_module_of_another_version_is_not_visible(funcs, worker_resolver, remote):
    commit(remote, {"only_in_v3.py": "def f():\n    return 3\n"}, tag="v3")
    funcs.register(ADMIN, registration("3.0", "v3"))
    v3 = worker_resolver.prepare("func1", "3.0")
    v1 = worker_resolver.prepare("func1", "1.0")
    assert load(RunSpec("only_in_v3:f", v3.path))() == 3
    with pytest.raises(FunctionNotFound, match="only_in_v3"):
        load(RunSpec("only_in_v3:f", v1.path))
    with pytest.raises(FunctionNotFound, match="no function 'nope'"):
        load(RunSpec("calc:nope", v1.path))


def test_a_version_registered_later_is_fetched_on_demand(funcs, worker_resolver, remote):
    assert load(worker_resolver.prepare("func1", "1.0"))(1)["version"] == "v1"  # the worker's mirror exists now
    commit(remote, calc_files("v3"), tag="v3")
    funcs.register(ADMIN, registration("3.0", "v3"))
    assert load(worker_resolver.prepare("func1", "3.0"))(1)["version"] == "v3"
    assert ("func1", "3.0") in worker_resolver.ready_versions()


def test_a_commit_deleted_from_the_remote_fails_with_a_reason(funcs, db, remote, tmp_path):
    # Given a version registered from a branch that is then deleted and garbage-collected,
    git(remote, "checkout", "-q", "-b", "experiment")
    commit(remote, calc_files("exp"))
    funcs.register(ADMIN, registration("exp", "experiment"))
    warm = GitResolver(db, tmp_path / "warm-cache")
    assert load(warm.prepare("func1", "exp"))(0)["version"] == "exp"
    git(remote, "checkout", "-q", "main")
    git(remote, "branch", "-q", "-D", "experiment")
    git(remote, "reflog", "expire", "--expire=now", "--all")
    git(remote, "gc", "-q", "--prune=now")
    # when a worker whose cache lacks it claims a task of that version,
    cold = GitResolver(db, tmp_path / "cold-cache", git_timeout_s=30)
    # then preparing fails with a clear reason (and other versions still work),
    with pytest.raises(RegistryError, match=r"func1 exp .*not in repository .* any more"):
        cold.prepare("func1", "exp")
    assert load(cold.prepare("func1", "2.0"))(0)["version"] == "v2"
    # while a worker that has it cached keeps running it.
    assert load(warm.prepare("func1", "exp"))(0)["version"] == "exp"


def test_unknown_versions_and_removed_repositories_fail_clearly(funcs, worker_resolver, db):
    with pytest.raises(FunctionNotFound, match="no registered version '7.0'"):
        worker_resolver.prepare("func1", "7.0")
    with pytest.raises(FunctionNotFound, match="unknown function 'ghost'"):
        worker_resolver.prepare("ghost", "1.0")
    assert worker_resolver.prepare("echo", "builtin") == RunSpec("registry.builtins:echo")
    db.repos.delete_one({"_id": "funcs"})
    with pytest.raises(RegistryError, match="no longer registered"):
        worker_resolver.prepare("func1", "1.0")
    assert make_resolver().ready_versions() == [] and isinstance(make_resolver(db, None), GitResolver)


def _checkout_in_child(cache: str, url: str, sha: str, queue) -> None:
    try:
        path = GitCache(cache, timeout_s=60).checkout(url, sha)
        queue.put((str(path), sorted(os.listdir(path))))
    except Exception as exc:  # reported to the parent
        queue.put(("error", repr(exc)))


def test_concurrent_processes_share_one_cache(remote, tmp_path):
    # Given four processes that all need the same commit in one empty cache at once,
    cache, sha = str(tmp_path / "shared-cache"), git(remote, "rev-parse", "v2")
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_checkout_in_child, args=(cache, str(remote), sha, queue)) for _ in range(4)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    # then all get the same complete checkout, and no temporary directory is left behind.
    assert {r[0] for r in results} == {str(Path(cache).resolve() / "checkouts" / sha)}, results
    assert all(r[1] == ["calc.py", "calc_helper.py"] for r in results)
    assert sorted(os.listdir(Path(cache) / "checkouts")) == [sha]
    assert len(os.listdir(Path(cache) / "mirrors")) == 1


# ------------------------------------------------------------ refusals
@pytest.fixture
def allowed(registry, remote) -> Registry:
    registry.add_repo(ADMIN, str(remote), name="funcs")
    return registry


@pytest.mark.parametrize("change, error, message", [
    ({"repo": "elsewhere"}, RegistryError, "not registered"),
    ({"repo": "/srv/other/repo"}, RegistryError, "not registered"),
    ({"ref": "v9"}, RegistryError, "'v9' is not a tag, branch or commit"),
    ({"ref": "--output=/tmp/x"}, RegistryError, "bad ref"),
    ({"ref": "0" * 40}, RegistryError, "is not a tag, branch or commit"),
    ({"entrypoint": "missing_mod:answer"}, RegistryError, "module 'missing_mod' is not in funcs"),
    ({"entrypoint": "calc:missing_fn"}, RegistryError, "defines no function 'missing_fn'"),
    ({"entrypoint": "calc"}, ValidationError, "entrypoint must look like"),
    ({"code": "echo"}, ValidationError, "built-in"),
    ({"code": "a:b"}, ValidationError, "'code'"),
    ({"version": "builtin"}, ValidationError, "'version'"),
    ({"version": "-rf"}, ValidationError, "'version'"),
    ({"public": "yes"}, ValidationError, "'public'"),
    ({"requires": {"gpus": -1}}, ValidationError, "gpus"),
    ({"evil": 1}, ValidationError, "unknown field"),
    ({"repo": "--upload-pack=touch /tmp/x"}, ValidationError, "starts with '-'"),
    ({"repo": "ext::sh -c touch% /tmp/pwned"}, ValidationError, "whitespace|transport"),
])
def test_bad_registrations_are_refused_and_write_nothing(allowed, db, change, error, message):
    with pytest.raises(error, match=message):
        allowed.register(ADMIN, {**registration("1.0", "v1"), **change})
    assert counts(db) == (0, 1)


def test_only_admin_and_super_users_register(allowed, db):
    for user in (BUSINESS, {"_id": "carl", "role": "general"}, None):
        with pytest.raises(Forbidden, match="only admin and super-users"):
            allowed.register(user, registration("1.0", "v1"))
    with pytest.raises(Forbidden, match="only admins"):
        allowed.add_repo(SUPER, "https://example.org/x.git", verify=False)
    with pytest.raises(Forbidden):
        allowed.set_flags(BUSINESS, "func1", "1.0", public=True)
    assert counts(db) == (0, 1)


@pytest.mark.parametrize("location, message", [
    ("--upload-pack=touch {tmp}/x", "starts with '-'"),
    ("-u", "starts with '-'"),
    ("ext::sh -c touch% {tmp}/pwned", "whitespace|transport"),
    ("ext::sh%20-c%20touch", "transport helpers"),
    ("fd::17", "transport helpers"),
    ("file:///etc/../", "outside the allowed roots"),
    ("/etc", "outside the allowed roots"),
    ("{tmp}/repos/../outside", "outside the allowed roots"),
    ("file://evil.example.org/x", "must name a local path"),
    ("ftp://example.org/x.git", "scheme 'ftp'"),
    ("ssh://-oProxyCommand=touch%20{tmp}/x/y", "bad host"),
    ("https://user:secret@example.org/x.git", "credentials"),
    ("-oProxyCommand=x:y", "starts with '-'"),
    ("relative/path", "not an absolute path"),
    ("", "required"),
])
def test_malicious_repository_locations_are_refused(registry, db, tmp_path, location, message):
    location = location.format(tmp=tmp_path)
    with pytest.raises(ValidationError, match=message):
        registry.add_repo(ADMIN, location)
    assert counts(db) == (0, 0)
    assert not (tmp_path / "x").exists() and not (tmp_path / "pwned").exists()


def test_a_symlink_out_of_the_allowed_roots_is_refused(registry, roots, tmp_path, db):
    outside = make_repo(tmp_path / "outside", calc_files("o"))
    roots.mkdir(parents=True, exist_ok=True)
    (roots / "link").symlink_to(outside)
    with pytest.raises(ValidationError, match="outside the allowed roots"):
        registry.add_repo(ADMIN, str(roots / "link"))
    assert counts(db) == (0, 0)


def test_git_itself_never_sees_a_malicious_location(tmp_path):
    cache = GitCache(tmp_path / "c", timeout_s=10)
    for url in ("--upload-pack=touch /tmp/x", f"ext::sh -c touch% {tmp_path}/pwned", "ext::sh"):
        with pytest.raises((ValidationError, RegistryError)):
            cache.checkout(url, "a" * 40)
    assert not (tmp_path / "pwned").exists()


def test_repositories_are_added_once_and_checked(registry, remote, roots, db):
    doc = registry.add_repo(ADMIN, f"file://{remote}/", description="examples")
    assert doc["_id"] == "funcs" and doc["url"] == str(remote.resolve()) and doc["kind"] == "path"
    with pytest.raises(Conflict, match="already registered"):
        registry.add_repo(ADMIN, str(remote), name="again")
    (roots / "empty").mkdir()
    with pytest.raises(RegistryError, match="reading"):
        registry.add_repo(ADMIN, str(roots / "empty"))
    assert [r["_id"] for r in registry.list_repos()] == ["funcs"]
    assert registry.find_repo(f"{roots}/../repos/funcs")["_id"] == "funcs"


@pytest.mark.parametrize("location, url", [
    ("https://git.example.org/team/funcs.git", "https://git.example.org/team/funcs.git"),
    ("git@github.com:team/funcs.git", "git@github.com:team/funcs.git"),
    ("ssh://git@host.lan:2222/srv/funcs", "ssh://git@host.lan:2222/srv/funcs"),
])
def test_good_urls_pass(location, url):
    assert check_location(location).url == url and check_syntax(location).kind == "url"


def test_a_silent_remote_times_out_instead_of_hanging(tmp_path):
    # Given a "git server" that accepts connections and never answers,
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    url = f"git://127.0.0.1:{server.getsockname()[1]}/funcs.git"
    try:
        # then fetching from it fails with a reason once the git timeout passes.
        with pytest.raises(RegistryError, match="timed out after"):
            GitCache(tmp_path / "c", timeout_s=1.5).checkout(url, "a" * 40)
    finally:
        server.close()
    assert not list((tmp_path / "c" / "mirrors").iterdir())  # no half-made mirror is left
