"""Settings are defined once, with their defaults: every setting the code reads is a field of
ServerConfig, WorkerConfig or NotifyConfig (read from the source, so a new read of an
undefined setting fails here), Flask config keys are set by create_app, the CLI's defaults
are the definitions', and bad values are refused at the edge."""
from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask

from fsm.errors import ConfigError
from scheduler import config as server_config
from scheduler.config import ServerConfig
from scheduler.notify import NotifyConfig
from worker.config import WorkerConfig

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("scheduler", "worker", "web", "suanwang", "registry", "fsm")
CONFIGS = (ServerConfig, WorkerConfig, NotifyConfig)
KNOWN = {f.name for c in CONFIGS for f in dataclasses.fields(c)} | {
    name for c in CONFIGS for name, value in vars(c).items() if callable(value) or isinstance(value, classmethod)}


def _sources():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield path, ast.parse(path.read_text(), str(path))


def _flask_keys_set() -> set[str]:
    """The keys ``create_app`` puts in ``app.config``, and Flask's own."""
    tree = ast.parse((ROOT / "scheduler" / "app.py").read_text())
    keys = set(Flask.default_config)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "update" \
                and ast.unparse(node.func.value) == "app.config":
            keys |= {kw.arg for kw in node.keywords if kw.arg}
    return keys


def setting_reads(tree: ast.AST) -> list[tuple[str, str, int]]:
    """(kind, name, line) of every read of a setting: ``config.x`` / ``self.config.x``,
    ``getattr(config, "x")`` and ``app.config["X"]`` / ``app.config.get("X")``."""
    reads = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load) and (
                ast.unparse(node.value) in ("config", "self.config")
                or ast.unparse(node.value).endswith("config['SUANWANG']")):
            reads.append(("field", node.attr, node.lineno))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr" \
                and len(node.args) >= 2 and ast.unparse(node.args[0]).endswith("config") \
                and isinstance(node.args[1], ast.Constant):
            reads.append(("field", node.args[1].value, node.lineno))
        elif isinstance(node, ast.Subscript) and ast.unparse(node.value).endswith("app.config") \
                and isinstance(node.slice, ast.Constant) and isinstance(node.ctx, ast.Load):
            reads.append(("flask", node.slice.value, node.lineno))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" \
                and ast.unparse(node.func.value).endswith("app.config") and node.args \
                and isinstance(node.args[0], ast.Constant):
            reads.append(("flask", node.args[0].value, node.lineno))
    return reads


def test_every_setting_read_is_defined():
    flask_keys = _flask_keys_set()
    undefined, seen = [], 0
    for path, tree in _sources():
        for kind, name, line in setting_reads(tree):
            seen += 1
            if (kind == "field" and name not in KNOWN) or (kind == "flask" and name not in flask_keys):
                undefined.append(f"{path.relative_to(ROOT)}:{line}: {name}")
    assert seen > 50, "the scan found too few setting reads to be looking at the right code"
    assert undefined == []


def test_the_scan_finds_an_undefined_setting():
    source = ("def f(config, app):\n    getattr(config, 'notify_retries', 5)\n    config.colour\n"
              "    app.config.get('REGISTRY_TIMEOUT')\n    app.config['SUANWANG'].metrics_tokn\n    return config.port\n")
    reads = setting_reads(ast.parse(source))
    assert {(k, n) for k, n, _ in reads} == {("field", "notify_retries"), ("field", "colour"),
                                            ("flask", "REGISTRY_TIMEOUT"), ("flask", "SUANWANG"),
                                            ("field", "metrics_tokn"), ("field", "port")}
    assert sorted(n for k, n, _ in reads if k == "field" and n not in KNOWN) == ["colour", "metrics_tokn",
                                                                                 "notify_retries"]


def test_the_parts_take_their_defaults_from_the_definitions():
    server = ServerConfig(mongo_uri="mongodb://h/")
    notify = NotifyConfig()
    for name in ("max_attempts", "backoff_s", "backoff_max_s", "webhook_timeout_s", "check_s", "poll_s",
                 "sending_lease_s", "senders"):
        assert getattr(notify, name) == getattr(server, f"notify_{name}")
    assert NotifyConfig.from_server_config(server) == notify
    assert notify.smtp.port == server.smtp_port and notify.smtp.tls == server.smtp_tls
    changed = NotifyConfig.from_server_config(ServerConfig(mongo_uri="mongodb://h/", notify_max_attempts=9,
                                                           smtp_host="mail", notify_check_s=2))
    assert (changed.max_attempts, changed.smtp.host, changed.check_s) == (9, "mail", 2)


def test_the_cli_defaults_are_the_definitions():
    from suanwang.cli import main

    def defaults(command):
        return {p.name: p.default for p in main.commands[command].params}

    server, worker, up = defaults("server"), defaults("worker"), defaults("up")
    for option, name in (("host", "host"), ("port", "port"), ("threads", "threads"), ("smtp_port", "smtp_port"),
                         ("smtp_tls", "smtp_tls"), ("mail_from", "mail_from")):
        assert server[option] == server_config.default(name), option
    assert (up["port"], up["host"]) == (server_config.default("port"), server_config.default("host"))
    fields = {f.name: f.default for f in dataclasses.fields(WorkerConfig)}
    assert worker["heartbeat"] == fields["heartbeat_s"] and worker["drain_timeout"] == fields["drain_timeout_s"]
    out = CliRunner().invoke(main, ["server", "--help"])
    assert f"[default: {server_config.default('port')}]" in out.output


@pytest.mark.parametrize("bad", [{"notify_max_attempts": 0}, {"notify_check_s": -1}, {"smtp_tls": "tls1.0"},
                                 {"registry_git_timeout_s": 0}, {"smtp_port": 70000}, {"notify_senders": "2"}])
def test_bad_settings_are_refused_at_the_edge(bad):
    name = next(iter(bad))
    with pytest.raises(ConfigError, match=name):
        ServerConfig(mongo_uri="mongodb://h/", **bad).validate()


def test_a_setting_that_does_not_exist_has_no_default():
    with pytest.raises(KeyError):
        server_config.default("notify_retries")
