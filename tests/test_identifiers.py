"""One module of identifier grammars (fsm.identifiers): its examples hold, every validator that
checks an identifier agrees with it, and the install scripts' shell patterns are the same."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fsm.errors import ConfigError, SuanwangError, ValidationError
from fsm.identifiers import GRAMMARS

ROOT = Path(__file__).resolve().parent.parent
LIB = ROOT / "scripts" / "lib_install.sh"
#: Shell variable of scripts/lib_install.sh -> the grammar it copies.
SHELL_COPIES = {"SW_NAME_RE": "worker_name", "SW_TAG_RE": "tag", "SW_TOKEN_RE": "token"}


@pytest.mark.parametrize("name", sorted(GRAMMARS))
def test_each_grammar_accepts_and_refuses_its_examples(name):
    grammar = GRAMMARS[name]
    assert [v for v in grammar.accepted if not grammar.match(v)] == []
    assert [v for v in grammar.refused if grammar.match(v)] == []
    assert not grammar.match(grammar.accepted[0] + "\n"), "a trailing newline must not pass"
    with pytest.raises(ValidationError) as info:
        grammar.check(grammar.refused[-1], field="x")
    assert info.value.details["field"] == "x" and grammar.rule in info.value.message


def _shell_verdicts(var: str, values: list[str]) -> list[bool]:
    """Match each value with ``[[ $v =~ $VAR ]]`` after sourcing lib_install.sh, as the scripts do."""
    script = f'source "{LIB}"; while IFS= read -r -d "" v; do if [[ $v =~ ${var} ]]; then echo 1; else echo 0; fi; done'
    out = subprocess.run(["bash", "-c", script], input="".join(v + "\0" for v in values), capture_output=True,
                         text=True, check=True, env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"})
    return [line == "1" for line in out.stdout.split()]


@pytest.mark.parametrize("var,name", sorted(SHELL_COPIES.items()))
def test_the_install_scripts_patterns_are_the_grammars(var, name):
    grammar = GRAMMARS[name]
    text = LIB.read_text()
    assert f"{var}='{grammar.posix}'" in text, f"{var} in {LIB.name} differs from fsm.identifiers.{name}"
    values = [*grammar.accepted, *grammar.refused, grammar.accepted[0] + "\n"]
    assert _shell_verdicts(var, values) == [grammar.match(v) for v in values]


def test_the_command_line_checks_a_value():
    run = lambda *a: subprocess.run([sys.executable, "-m", "fsm.identifiers", *a], capture_output=True,  # noqa: E731
                                    text=True, cwd=ROOT)
    assert run("worker_name", "gpu-box-1").returncode == 0
    bad = run("worker_name", "a b")
    assert bad.returncode == 2 and "letters, digits" in bad.stderr
    assert run("no_such_grammar", "x").returncode == 2


def _task(field):
    from fsm.store.spec import validate

    return lambda v: validate({"function": "echo", **field(v)})


def _worker(v):
    from worker.config import WorkerConfig

    WorkerConfig(mongo_uri="mongodb://h/", name=v, gpus=0, mem_gb=1).validate()


def _tags(v):
    from worker.config import WorkerConfig

    WorkerConfig(mongo_uri="mongodb://h/", name="w", tags=(v,), gpus=0, mem_gb=1).validate()


def _registration(field):
    from registry.service import validate_registration

    def check(v):
        validate_registration({"code": "fn", "version": "v1", "repo": "r", "ref": "main", "entrypoint": "m:f",
                               **field(v)})
    return check


def _repo(v):
    from registry.locations import check_name

    check_name(v)


#: grammar -> a real validator of the product that must agree with it.
VALIDATORS = {
    "task_id": _task(lambda v: {"id": v}),
    "function_name": _task(lambda v: {"function": v}),
    "tag": _task(lambda v: {"requires": {"tags": [v]}}),
    "worker_name": _worker,
    "function_code": _registration(lambda v: {"code": v}),
    "version": _registration(lambda v: {"version": v}),
    "repo_name": _repo,
}


@pytest.mark.parametrize("name", sorted(VALIDATORS))
def test_the_validators_use_the_grammars(name):
    grammar, validator = GRAMMARS[name], VALIDATORS[name]
    for value in grammar.accepted:
        try:
            validator(value)
        except SuanwangError as exc:  # only a refusal of this identifier would be a disagreement
            assert exc.details.get("field") not in (None, name) and grammar.rule not in exc.message, (value, exc)
    for value in grammar.refused:
        with pytest.raises((ValidationError, ConfigError)):
            validator(value)
    if name == "tag":
        with pytest.raises(ConfigError):
            _tags(grammar.refused[1])


def test_users_and_schedules_use_the_grammars(store):
    from scheduler import schedules

    grammar = GRAMMARS["user_name"]
    for value in grammar.refused:
        with pytest.raises(ValidationError):
            store.users.add(value, "general")
    store.users.add(grammar.accepted[1], "general")
    admin = {"_id": "admin", "role": "admin"}
    for value in GRAMMARS["schedule_id"].refused[1:]:
        with pytest.raises(ValidationError, match="'id'"):
            schedules.create(store, {"id": value, "interval_s": 60, "task": {"function": "noop"}}, admin)
    assert store.db.schedules.count_documents({}) == 0
