"""scripts/install_worker.sh and scripts/install_server.sh, run into a temporary directory.

Every path is overridden (--prefix, --etc-dir, --unit-dir, --state-dir) and --no-systemd is
given, so nothing here touches the real system. Most runs use --no-venv with this Python
(the package is already importable); one slow test makes a real venv from the checkout.
"""
from __future__ import annotations

import hashlib
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKER = ROOT / "scripts" / "install_worker.sh"
SERVER = ROOT / "scripts" / "install_server.sh"
URI = "mongodb://u:s3cret@10.0.0.5:27018,10.0.0.6:27018/suanwang?replicaSet=suanwang&w=majority"
USER = pwd.getpwuid(os.getuid()).pw_name


def layout(tmp: Path) -> list[str]:
    return ["--prefix", str(tmp / "opt"), "--etc-dir", str(tmp / "etc"), "--unit-dir", str(tmp / "units"),
            "--state-dir", str(tmp / "state"), "--user", USER, "--no-create-user", "--no-systemd"]


def no_venv() -> list[str]:
    return ["--no-venv", "--python", sys.executable]


def run(script: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "SUANWANG_MONGO_URI": ""})


def ok(script: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    result = run(script, *args, timeout=timeout)
    assert result.returncode == 0, f"rc={result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def snapshot(tmp: Path) -> dict[str, tuple[str, int]]:
    """Every file under tmp: relative path -> (sha256, mode)."""
    found = {}
    for path in sorted(tmp.rglob("*")):
        if path.is_file():
            found[str(path.relative_to(tmp))] = (hashlib.sha256(path.read_bytes()).hexdigest(),
                                                 path.stat().st_mode & 0o7777)
        elif path.is_dir():
            found[str(path.relative_to(tmp)) + "/"] = ("dir", path.stat().st_mode & 0o7777)
    return found


def worker_args(tmp: Path, *extra: str) -> list[str]:
    return ["--mongo", URI, "--name", "gpu-1.lab", "--tags", "gpu,a100", "--concurrency", "3",
            *layout(tmp), *no_venv(), *extra]


def server_args(tmp: Path, *extra: str) -> list[str]:
    return ["--bind-ip", "10.231.9.1,127.0.0.1", "--mongo-port", "27019", "--http-host", "0.0.0.0",
            "--http-port", "8099", *layout(tmp), *no_venv(), *extra]


def env_file(path: Path) -> dict[str, str]:
    """The env file as a shell reads it (set -a; . FILE): proves it is valid shell, & and ? included."""
    out = subprocess.run(["bash", "-c", 'set -a; . "$1"; set +a; env -0', "-", str(path)],
                         capture_output=True, check=True, env={"PATH": os.environ["PATH"]}).stdout
    pairs = (item.split("=", 1) for item in out.decode().split("\0") if "=" in item)
    return {k: v for k, v in pairs if k.startswith("SUANWANG_")}


def unit(path: Path) -> dict[str, list[str]]:
    keys: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            keys.setdefault(key, []).append(value)
    return keys


# ----------------------------------------------------------------------------- input checks
BAD_WORKER = [
    pytest.param(["--mongo", "http://x"], "mongodb://", id="http-uri"),
    pytest.param(["--mongo", "mongodb://"], "no host", id="no-host"),
    pytest.param(["--mongo", "mongodb://h:99999/"], "port", id="port-range"),
    pytest.param(["--mongo", "mongodb://h/x$(touch PWNED)"], "not allowed", id="uri-subst"),
    pytest.param(["--mongo", "mongodb://h/ x"], "not allowed", id="uri-space"),
    pytest.param(["--mongo", "mongodb+srv://a,b/"], "exactly one host", id="srv-two-hosts"),
    pytest.param(["--mongo", ""], "required", id="empty-uri"),
    pytest.param(["--name", "bad name"], "bad worker name", id="name-space"),
    pytest.param(["--name", "m1;touch PWNED"], "bad worker name", id="name-semicolon"),
    pytest.param(["--name", "$(touch PWNED)"], "bad worker name", id="name-subst"),
    pytest.param(["--name", "m1'x"], "bad worker name", id="name-quote"),
    pytest.param(["--name", "-m1"], "bad worker name", id="name-dash"),
    pytest.param(["--tags", "gpu,a b"], "bad tag", id="tag-space"),
    pytest.param(["--concurrency", "0"], "concurrency", id="concurrency-0"),
    pytest.param(["--concurrency", "x"], "concurrency", id="concurrency-x"),
    pytest.param(["--firewall-allow", "10.0.0.0/33"], "bad network", id="cidr"),
    pytest.param(["--firewall-allow", "lan"], "bad network", id="cidr-word"),
    pytest.param(["--apply-firewall"], "needs --firewall-allow", id="apply-without-allow"),
    pytest.param(["--prefix", "relative/dir"], "absolute path", id="relative-prefix"),
    pytest.param(["--source", "/nonexistent/dir"], "--source", id="bad-source"),
    pytest.param(["--frobnicate"], "unknown option", id="unknown-option"),
    pytest.param(["--python", "/nonexistent/python"], "no python", id="bad-python"),
]


@pytest.mark.parametrize("bad, message", BAD_WORKER)
def test_worker_refuses_bad_input_before_writing(tmp_path, bad, message):
    target = tmp_path / "t"
    args = worker_args(target)
    if "--source" in bad:
        args = [a for a in args if a != "--no-venv"]
    result = subprocess.run(["bash", str(WORKER), *args, *bad], capture_output=True, text=True, timeout=60,
                            cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "error:" in result.stderr
    assert not target.exists(), f"something was written: {sorted(target.rglob('*'))}"
    assert not (tmp_path / "PWNED").exists()


BAD_SERVER = [
    pytest.param(["--bind-ip", "0.0.0.0"], "LAN address", id="bind-any"),
    pytest.param(["--bind-ip", "db1"], "not an IP address", id="bind-name"),
    pytest.param(["--bind-ip", "10.0.0.1;touch PWNED"], "not an IP address", id="bind-inject"),
    pytest.param(["--mongo", "http://x"], "mongodb://", id="external-http-uri"),
    pytest.param(["--mongo-port", "0"], "--mongo-port", id="mongo-port"),
    pytest.param(["--http-port", "70000"], "--http-port", id="http-port"),
    pytest.param(["--http-host", "a b"], "--http-host", id="http-host"),
    pytest.param(["--admin-token", "short"], "--admin-token", id="token-short"),
    pytest.param(["--admin-token", "x'$(touch PWNED)'yyyyyyyyyyyy"], "--admin-token", id="token-inject"),
    pytest.param(["--firewall-allow", "10.0.0.0/8,300.1.1.1"], "bad network", id="cidr"),
    pytest.param(["--purge"], "--purge goes with --uninstall", id="purge-alone"),
]


@pytest.mark.parametrize("bad, message", BAD_SERVER)
def test_server_refuses_bad_input_before_writing(tmp_path, bad, message):
    target = tmp_path / "t"
    result = subprocess.run(["bash", str(SERVER), *server_args(target), *bad], capture_output=True, text=True,
                            timeout=60, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert not target.exists(), f"something was written: {sorted(target.rglob('*'))}"
    assert not (tmp_path / "PWNED").exists()


def test_help_lists_the_flags():
    for script in (WORKER, SERVER):
        out = ok(script, "--help").stdout
        for flag in ("--prefix", "--etc-dir", "--unit-dir", "--state-dir", "--no-systemd", "--dry-run",
                     "--uninstall", "--firewall-allow", "--apply-firewall", "--no-venv", "--python", "--source"):
            assert flag in out, (script.name, flag)
    assert "--concurrency" in ok(WORKER, "--help").stdout
    assert "--bind-ip" in ok(SERVER, "--help").stdout


# ----------------------------------------------------------------------------- dry run
def test_dry_run_writes_nothing_and_prints_the_plan(tmp_path):
    target = tmp_path / "t"
    out = ok(WORKER, *worker_args(target, "--firewall-allow", "10.0.0.0/24", "--dry-run")).stdout
    assert not target.exists()
    for path in ("state", "etc/worker.env", "units/suanwang-worker.service", "etc/firewall.nft"):
        assert f"would create {target / path}" in out, out
    assert "SUANWANG_WORKER_NAME='gpu-1.lab'" in out  # the plan shows the content...
    assert "s3cret" not in out and "u:***@" in out  # ...with the password masked
    assert "dry run:" in out and "nothing was written" in out

    out = ok(SERVER, *server_args(target, "--dry-run")).stdout
    assert not target.exists()
    for path in ("etc/server.env", "units/suanwang-mongo.service", "units/suanwang-server.service", "state/db"):
        assert f"would create {target / path}" in out, out
    assert "SUANWANG_ADMIN_TOKEN='***'" in out
    assert f"would create {target / 'state/db/credentials.json'} (mode 600)" in out
    assert '"suanwang-worker": "***"' in out and "suanwang-worker:***@" in out  # passwords masked
    assert not re.search(r'"suanwang-(server|worker)": "[0-9a-f]{20,}"', out), out


def test_dry_run_of_a_change_shows_a_diff_and_writes_nothing(tmp_path):
    ok(WORKER, *worker_args(tmp_path))
    before = snapshot(tmp_path)
    out = ok(WORKER, *worker_args(tmp_path, "--tags", "cpu", "--dry-run")).stdout
    assert snapshot(tmp_path) == before
    assert f"would update {tmp_path / 'etc/worker.env'}" in out
    assert "-SUANWANG_WORKER_TAGS='gpu,a100'" in out and "+SUANWANG_WORKER_TAGS='cpu'" in out
    assert f"unchanged {tmp_path / 'units/suanwang-worker.service'}" in out


# ----------------------------------------------------------------------------- idempotency
@pytest.mark.parametrize("script, args", [(WORKER, worker_args), (SERVER, server_args)], ids=["worker", "server"])
def test_second_run_changes_nothing(tmp_path, script, args):
    extra = ("--firewall-allow", "10.231.0.0/16,203.0.113.7")
    first = ok(script, *args(tmp_path, *extra)).stdout
    assert "created" in first
    before = snapshot(tmp_path)
    second = ok(script, *args(tmp_path, *extra)).stdout
    assert snapshot(tmp_path) == before  # same files, same checksums, same modes
    reported = [line for line in second.splitlines() if line.startswith(("created", "updated", "unchanged"))]
    assert reported and all(line.startswith("unchanged") for line in reported), second
    for name in before:
        if not name.endswith("/"):
            assert f"unchanged {tmp_path / name}" in second, name
    assert "done: nothing to change" in second


def test_changed_option_updates_only_that_file(tmp_path):
    ok(WORKER, *worker_args(tmp_path))
    unit_before = (tmp_path / "units/suanwang-worker.service").read_bytes()
    out = ok(WORKER, *worker_args(tmp_path, "--tags", "cpu,big")).stdout
    assert f"updated {tmp_path / 'etc/worker.env'}" in out
    assert f"unchanged {tmp_path / 'units/suanwang-worker.service'}" in out
    assert (tmp_path / "units/suanwang-worker.service").read_bytes() == unit_before
    assert env_file(tmp_path / "etc/worker.env")["SUANWANG_WORKER_TAGS"] == "cpu,big"


# ----------------------------------------------------------------------------- generated files
def test_worker_files_have_the_expected_content(tmp_path):
    out = ok(WORKER, *worker_args(tmp_path, "--stop-timeout", "90")).stdout
    env_path = tmp_path / "etc/worker.env"
    assert env_path.stat().st_mode & 0o777 == 0o600  # the URI may hold a password
    assert env_file(env_path) == {
        "SUANWANG_MONGO_URI": URI, "SUANWANG_WORKER_NAME": "gpu-1.lab", "SUANWANG_WORKER_TAGS": "gpu,a100",
        "SUANWANG_CONCURRENCY": "3", "SUANWANG_CACHE_DIR": str(tmp_path / "state/cache")}
    keys = unit(tmp_path / "units/suanwang-worker.service")
    assert keys["ExecStart"] == [f"{sys.executable} -m suanwang worker"]
    assert keys["EnvironmentFile"] == [str(env_path)]
    assert keys["Restart"] == ["always"]
    assert keys["KillSignal"] == ["SIGTERM"]
    assert keys["KillMode"] == ["mixed"]
    assert keys["TimeoutStopSec"] == ["90"]
    assert keys["User"] == [USER]
    assert keys["WantedBy"] == ["multi-user.target"]
    assert "network-online.target" in keys["After"][0]
    # without systemd it says how to start the worker by hand
    assert f"sh -c 'set -a; . {env_path}; set +a; exec {sys.executable} -m suanwang worker'" in out


def test_worker_defaults_leave_name_and_concurrency_to_the_worker(tmp_path):
    ok(WORKER, "--mongo", "mongodb://db1/?replicaSet=suanwang", *layout(tmp_path), *no_venv())
    env = env_file(tmp_path / "etc/worker.env")
    assert env == {"SUANWANG_MONGO_URI": "mongodb://db1/?replicaSet=suanwang",
                   "SUANWANG_CACHE_DIR": str(tmp_path / "state/cache")}
    text = (tmp_path / "etc/worker.env").read_text()
    assert "SUANWANG_WORKER_NAME unset" in text and "SUANWANG_CONCURRENCY unset" in text


def test_worker_takes_the_uri_from_the_environment(tmp_path):
    result = subprocess.run(["bash", str(WORKER), *layout(tmp_path), *no_venv()], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "SUANWANG_MONGO_URI": "mongodb://db2:27017/"})
    assert result.returncode == 0, result.stderr
    assert env_file(tmp_path / "etc/worker.env")["SUANWANG_MONGO_URI"] == "mongodb://db2:27017/"


def test_server_files_have_the_expected_content(tmp_path):
    out = ok(SERVER, *server_args(tmp_path)).stdout
    env_path = tmp_path / "etc/server.env"
    env = env_file(env_path)
    assert env_path.stat().st_mode & 0o777 == 0o600
    creds_path = tmp_path / "state/db/credentials.json"
    assert creds_path.stat().st_mode & 0o777 == 0o600
    passwords = json.loads(creds_path.read_text())["users"]  # the file `suanwang mongo` creates the users from
    assert set(passwords) == {"admin", "suanwang-server", "suanwang-worker"} and len(set(passwords.values())) == 3
    assert env["SUANWANG_MONGO_URI"] == (f"mongodb://suanwang-server:{passwords['suanwang-server']}@10.231.9.1:27019/"
                                         "?replicaSet=suanwang&authSource=admin")
    worker_uri_path = tmp_path / "etc/worker-mongo.uri"
    assert worker_uri_path.stat().st_mode & 0o777 == 0o600
    worker_uri = worker_uri_path.read_text().strip()
    assert worker_uri == (f"mongodb://suanwang-worker:{passwords['suanwang-worker']}@10.231.9.1:27019/"
                          "?replicaSet=suanwang&authSource=admin")
    assert passwords["suanwang-worker"] not in out and passwords["suanwang-server"] not in out
    # install_worker.sh takes the worker URI as it is
    ok(WORKER, "--mongo", worker_uri, *layout(tmp_path / "w"), *no_venv())
    assert env_file(tmp_path / "w/etc/worker.env")["SUANWANG_MONGO_URI"] == worker_uri
    assert env["SUANWANG_HOST"] == "0.0.0.0" and env["SUANWANG_PORT"] == "8099"
    token = env["SUANWANG_ADMIN_TOKEN"]
    assert len(token) >= 32
    mongo = unit(tmp_path / "units/suanwang-mongo.service")
    assert mongo["ExecStart"] == [f"{sys.executable} -m suanwang mongo --data-dir {tmp_path / 'state/db'} "
                                  "--port 27019 --bind-ip 10.231.9.1,127.0.0.1"]
    assert mongo["Restart"] == ["always"] and mongo["KillSignal"] == ["SIGTERM"]
    assert (tmp_path / "state/db").stat().st_mode & 0o777 == 0o700
    server = unit(tmp_path / "units/suanwang-server.service")
    assert server["ExecStart"] == [f"{sys.executable} -m suanwang server"]
    assert server["EnvironmentFile"] == [str(env_path)]
    assert "suanwang-mongo.service" in server["After"][0] and "suanwang-mongo.service" in server["Wants"][0]
    assert f'install_worker.sh --mongo "$(cat {worker_uri_path})"' in out
    # the generated token is kept by later runs; an explicit one replaces it
    ok(SERVER, *server_args(tmp_path))
    assert env_file(env_path)["SUANWANG_ADMIN_TOKEN"] == token
    ok(SERVER, *server_args(tmp_path, "--admin-token", "tok-" + "x" * 20))
    assert env_file(env_path)["SUANWANG_ADMIN_TOKEN"] == "tok-" + "x" * 20


def test_server_with_an_external_mongodb_has_no_mongo_unit(tmp_path):
    out = ok(SERVER, "--mongo", URI, *layout(tmp_path), *no_venv(), "--firewall-allow", "10.0.0.0/8").stdout
    assert not (tmp_path / "units/suanwang-mongo.service").exists()
    assert not (tmp_path / "state/db").exists()
    assert env_file(tmp_path / "etc/server.env")["SUANWANG_MONGO_URI"] == URI
    assert "suanwang-mongo" not in unit(tmp_path / "units/suanwang-server.service")["After"][0]
    assert "tcp dport 27017 jump mongo" in (tmp_path / "etc/firewall.nft").read_text()
    assert "created" in out


def test_firewall_rule_set(tmp_path):
    out = ok(SERVER, *server_args(tmp_path, "--firewall-allow", "10.231.9.0/24", "--firewall-allow",
                                  "203.0.113.7,2001:db8::/32")).stdout
    rules = (tmp_path / "etc/firewall.nft").read_text()
    assert "elements = { 10.231.9.0/24, 203.0.113.7/32 }" in rules
    assert "elements = { 2001:db8::/32 }" in rules
    assert "tcp dport 27019 jump mongo" in rules  # the MongoDB port,
    assert "tcp dport 8099 jump mongo" in rules and "8099 admits only the listed networks" in out  # and the web port
    assert rules.count("jump mongo") == 2  # nothing else
    assert 'iifname "lo" accept' in rules and "counter drop" in rules
    assert "nft -f" in out and "not loaded" in out  # written, not applied without --apply-firewall
    fw = unit(tmp_path / "units/suanwang-firewall.service")
    assert fw["ExecStart"][0].endswith(f"-f {tmp_path / 'etc/firewall.nft'}")
    assert fw["Type"] == ["oneshot"] and fw["RemainAfterExit"] == ["yes"]
    nft, ip = shutil.which("nft"), shutil.which("ip")
    if os.geteuid() == 0 and nft and ip:
        # the syntax check, in a throwaway network namespace (nothing of this machine's firewall is touched)
        ns = f"swfw{uuid.uuid4().hex[:8]}"
        if subprocess.run([ip, "netns", "add", ns], capture_output=True).returncode == 0:
            try:
                check = subprocess.run([ip, "netns", "exec", ns, nft, "-c", "-f", str(tmp_path / "etc/firewall.nft")],
                                       capture_output=True, text=True)
                assert check.returncode == 0, check.stderr
            finally:
                subprocess.run([ip, "netns", "del", ns], capture_output=True)


def test_the_web_port_is_left_open_only_when_asked(tmp_path):
    out = ok(SERVER, *server_args(tmp_path, "--firewall-allow", "10.231.9.0/24", "--firewall-open-web")).stdout
    rules = (tmp_path / "etc/firewall.nft").read_text()
    assert "tcp dport 27019 jump mongo" in rules and "8099" not in rules
    assert "8099 stays open to everyone" in out and "TLS" in out
    # a re-run without the flag restricts it again (the choice is explicit each time)
    out = ok(SERVER, *server_args(tmp_path, "--firewall-allow", "10.231.9.0/24")).stdout
    assert "tcp dport 8099 jump mongo" in (tmp_path / "etc/firewall.nft").read_text()
    assert f"updated {tmp_path / 'etc/firewall.nft'}" in out


def test_units_pass_systemd_analyze_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    ok(WORKER, *worker_args(tmp_path, "--firewall-allow", "10.0.0.0/24"))
    ok(SERVER, *server_args(tmp_path))
    units = sorted((tmp_path / "units").glob("*.service"))
    assert len(units) == 4
    for path in units:
        result = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"{path.name}: {result.stdout}{result.stderr}"
        problems = [line for line in result.stderr.splitlines() if path.name in line]
        assert not problems, problems
    # the check is real: a unit with a relative ExecStart fails it
    broken = tmp_path / "broken.service"
    broken.write_text("[Service]\nExecStart=nonexistent-binary-xyz\n")
    assert subprocess.run([analyze, "verify", str(broken)], capture_output=True, timeout=60).returncode != 0


# ----------------------------------------------------------------------------- uninstall
def test_uninstall_removes_what_was_installed(tmp_path):
    fw = ("--firewall-allow", "10.0.0.0/24")
    ok(WORKER, *worker_args(tmp_path))
    ok(SERVER, *server_args(tmp_path, *fw))
    (tmp_path / "state/db/data.wt").write_text("pretend data")

    before = snapshot(tmp_path)
    out = ok(WORKER, *layout(tmp_path), *no_venv(), "--uninstall", "--dry-run").stdout
    assert snapshot(tmp_path) == before
    assert f"would remove {tmp_path / 'etc/worker.env'}" in out

    out = ok(WORKER, *layout(tmp_path), *no_venv(), "--uninstall").stdout
    assert f"removed {tmp_path / 'etc/worker.env'}" in out
    assert not (tmp_path / "etc/worker.env").exists()
    assert not (tmp_path / "units/suanwang-worker.service").exists()
    # the server's files and the firewall it installed stay
    assert (tmp_path / "etc/server.env").exists() and (tmp_path / "etc/firewall.nft").exists()
    assert (tmp_path / "units/suanwang-server.service").exists()

    out = ok(SERVER, *layout(tmp_path), *no_venv(), "--uninstall").stdout
    assert "uninstalled the server" in out
    assert not (tmp_path / "etc").exists()  # emptied, then removed
    assert sorted(p.name for p in (tmp_path / "units").iterdir()) == []
    assert (tmp_path / "state/db/data.wt").read_text() == "pretend data"  # the database is kept

    again = ok(SERVER, *layout(tmp_path), *no_venv(), "--uninstall").stdout  # idempotent too
    assert "absent" in again and "removed" not in again

    ok(SERVER, *layout(tmp_path), *no_venv(), "--uninstall", "--purge")
    assert not (tmp_path / "state").exists()


# ----------------------------------------------------------------------------- a real venv
@pytest.mark.slow
def test_real_venv_install_from_the_checkout(tmp_path):
    """One real virtualenv: --system-site-packages + pip install --no-deps -e CHECKOUT (fast, offline)."""
    venv_args = ["--mongo", "mongodb://db1:27017/?replicaSet=suanwang", *layout(tmp_path), "--python", sys.executable,
                 "--source", str(ROOT), "--editable", "--system-site-packages", "--no-deps"]
    out = ok(WORKER, *venv_args, timeout=300).stdout
    venv = tmp_path / "opt/venv"
    assert f"created {venv}" in out
    keys = unit(tmp_path / "units/suanwang-worker.service")
    assert keys["ExecStart"] == [f"{venv}/bin/suanwang worker"]
    help_out = subprocess.run([str(venv / "bin/suanwang"), "worker", "--help"], capture_output=True, text=True,
                              timeout=60)
    assert help_out.returncode == 0 and "--concurrency" in help_out.stdout
    where = subprocess.run([str(venv / "bin/python"), "-c", "import sys, suanwang; print(sys.prefix, suanwang.__file__)"],
                           capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert where.stdout.split() == [str(venv), str(ROOT / "suanwang/__init__.py")]

    before = snapshot(tmp_path)
    again = ok(WORKER, *venv_args).stdout
    assert f"unchanged {venv} (suanwang from {ROOT})" in again and "done: nothing to change" in again
    assert snapshot(tmp_path) == before

    out = ok(WORKER, *layout(tmp_path), "--python", sys.executable, "--uninstall").stdout
    assert f"removed {venv}" in out
    assert not (tmp_path / "opt").exists()


def test_a_foreign_directory_at_the_venv_path_is_refused(tmp_path):
    (tmp_path / "opt/venv").mkdir(parents=True)
    (tmp_path / "opt/venv/precious").write_text("x")
    result = run(WORKER, "--mongo", "mongodb://db1/", *layout(tmp_path), "--python", sys.executable,
                 "--source", str(ROOT))
    assert result.returncode == 2 and "not made by this installer" in result.stderr
    assert (tmp_path / "opt/venv/precious").exists()


# ----------------------------------------------------------------------------- with systemd (a stand-in systemctl)
FAKE_SYSTEMCTL = r"""#!/usr/bin/env bash
echo "$*" >> "$FAKE_DIR/calls"
state="$FAKE_DIR/state"; touch "$state"
args=(); for a in "$@"; do [[ $a == --* ]] || args+=("$a"); done
case ${args[0]} in
  is-enabled) grep -qx "enabled ${args[1]}" "$state" ;;
  is-active) grep -qx "active ${args[1]}" "$state" ;;
  enable) for u in "${args[@]:1}"; do echo "enabled $u" >> "$state"; done ;;
  start|restart) echo "active ${args[1]}" >> "$state" ;;
  cat) grep -q " ${args[1]}$" "$state" ;;
  disable) grep -v " ${args[1]}$" "$state" > "$state.new"; mv "$state.new" "$state" ;;
  daemon-reload) ;;
  *) exit 1 ;;
esac
"""


@pytest.fixture
def fake_systemd(tmp_path):
    """A systemctl that records its calls, and a directory that says 'systemd runs here'."""
    fake = tmp_path / "fake"
    (fake / "bin").mkdir(parents=True)
    (fake / "run-systemd").mkdir()
    script = fake / "bin" / "systemctl"
    script.write_text(FAKE_SYSTEMCTL)
    script.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake / 'bin'}:{os.environ['PATH']}", "FAKE_DIR": str(fake),
           "SUANWANG_TEST_SYSTEMD_RUN_DIR": str(fake / "run-systemd"), "SUANWANG_MONGO_URI": ""}

    def run_with(script_path: Path, *args: str) -> tuple[str, list[str]]:
        (fake / "calls").write_text("")
        result = subprocess.run(["bash", str(script_path), *args], capture_output=True, text=True, timeout=120,
                                env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        calls = [c for c in (fake / "calls").read_text().splitlines() if not c.startswith(("is-", "cat "))]
        return result.stdout, calls

    return run_with


def systemd_layout(tmp: Path) -> list[str]:
    return [a for a in layout(tmp / "t") if a != "--no-systemd"]


@pytest.mark.skipif(os.geteuid() != 0, reason="the installer wants root where systemd runs")
def test_with_systemd_it_enables_and_starts_once(tmp_path, fake_systemd):
    args = ["--mongo", URI, "--name", "m1", *systemd_layout(tmp_path), *no_venv()]
    out, calls = fake_systemd(WORKER, *args)
    assert calls == ["daemon-reload", "enable suanwang-worker.service", "restart suanwang-worker.service"], out
    assert "sh -c" not in out  # systemd is in charge: no hand-start instructions

    out, calls = fake_systemd(WORKER, *args)  # a second run: no restart, nothing enabled again
    assert calls == [], out
    assert "unchanged suanwang-worker.service enabled" in out and "unchanged suanwang-worker.service running" in out

    out, calls = fake_systemd(WORKER, *args, "--tags", "gpu")  # a change restarts the worker
    assert calls == ["daemon-reload", "restart suanwang-worker.service"], out

    out, calls = fake_systemd(WORKER, *systemd_layout(tmp_path), *no_venv(), "--uninstall")
    assert calls[0] == "disable --now suanwang-worker.service" and calls[-1] == "daemon-reload", calls
    assert not (tmp_path / "t/units/suanwang-worker.service").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="the installer wants root where systemd runs")
def test_with_systemd_the_server_starts_firewall_mongo_and_server(tmp_path, fake_systemd):
    args = [*server_args(tmp_path / "t"), "--firewall-allow", "10.0.0.0/24", "--apply-firewall"]
    args = [a for a in args if a != "--no-systemd"]
    out, calls = fake_systemd(SERVER, *args)
    assert calls == ["daemon-reload",
                     "enable suanwang-firewall.service", "restart suanwang-firewall.service",
                     "enable suanwang-mongo.service", "restart suanwang-mongo.service",
                     "enable suanwang-server.service", "restart suanwang-server.service"], out
    out, calls = fake_systemd(SERVER, *args)
    assert calls == [], out
    out, calls = fake_systemd(SERVER, *[a for a in args if a not in ("--apply-firewall",)], "--no-start",
                              "--http-port", "8100")
    assert calls == ["daemon-reload", "enable suanwang-mongo.service suanwang-server.service"], calls


def test_a_rerun_keeps_the_settings_it_is_not_given(tmp_path):
    ok(WORKER, *worker_args(tmp_path))
    before = snapshot(tmp_path)
    out = ok(WORKER, *layout(tmp_path), *no_venv()).stdout  # e.g. an upgrade run: no worker flags at all
    assert "done: nothing to change" in out and snapshot(tmp_path) == before
    ok(WORKER, *layout(tmp_path), *no_venv(), "--concurrency", "8", "--tags", "")
    env = env_file(tmp_path / "etc/worker.env")
    assert env["SUANWANG_MONGO_URI"] == URI and env["SUANWANG_WORKER_NAME"] == "gpu-1.lab"
    assert env["SUANWANG_CONCURRENCY"] == "8" and "SUANWANG_WORKER_TAGS" not in env


def test_a_server_rerun_keeps_its_addresses(tmp_path):
    ok(SERVER, *server_args(tmp_path))
    before = snapshot(tmp_path)
    out = ok(SERVER, *layout(tmp_path), *no_venv()).stdout  # no --bind-ip: must not fall back to 127.0.0.1
    assert "done: nothing to change" in out and snapshot(tmp_path) == before
    ext = tmp_path / "ext"
    ok(SERVER, "--mongo", URI, *layout(ext), *no_venv())
    before = snapshot(ext)
    assert "done: nothing to change" in ok(SERVER, *layout(ext), *no_venv()).stdout
    assert snapshot(ext) == before and not (ext / "units/suanwang-mongo.service").exists()
