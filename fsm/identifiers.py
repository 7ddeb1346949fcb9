"""Every identifier grammar of Suanwang, written once: task ids, function names and codes,
versions, tags, user, worker, schedule and repository names, git refs and commits, tokens.
Task ids with ``@`` are reserved for schedule firings (``SCHEDULED_TASK_ID``, ``check_chosen_task_id``).

Each ``Grammar`` holds its pattern (matched whole, without anchors: ``fullmatch``, so a
trailing newline never slips through as it would with ``$``), the rule in words for error
messages, and examples it accepts and refuses. The task spec, the registry, the users,
the schedules, the worker's settings and the CLI check through ``check``; the install
scripts keep POSIX copies (``SW_*_RE`` in ``scripts/lib_install.sh``) that
``tests/test_identifiers.py`` holds to these patterns and examples. From a shell::

    python -m fsm.identifiers worker_name gpu-box-1     # exit 0, or 2 with the rule on stderr
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass

from fsm.errors import ValidationError


@dataclass(frozen=True)
class Grammar:
    """One identifier grammar: ``pattern`` (unanchored), ``rule`` (words), examples."""

    name: str
    pattern: str
    rule: str
    accepted: tuple[str, ...]
    refused: tuple[str, ...]

    @property
    def regex(self) -> re.Pattern:
        return _compiled(self.pattern)

    def match(self, value: object) -> bool:
        return isinstance(value, str) and self.regex.fullmatch(value) is not None

    def check(self, value: object, what: str | None = None, *, field: str | None = None) -> str:
        """``value`` when it matches; else ``ValidationError`` (422) naming the rule and ``field``."""
        if not self.match(value):
            label = what or self.name.replace("_", " ")
            raise ValidationError(f"{label} {value!r} is not valid: {self.rule}", field=field or self.name,
                                  grammar=self.name)
        return value  # type: ignore[return-value]

    @property
    def posix(self) -> str:
        """The anchored POSIX ERE form the shell scripts use (``[[ $v =~ $RE ]]``)."""
        return f"^{self.pattern}$"


_cache: dict[str, re.Pattern] = {}


def _compiled(pattern: str) -> re.Pattern:
    if pattern not in _cache:
        _cache[pattern] = re.compile(pattern)
    return _cache[pattern]


_START = "starting with a letter or digit"
TASK_ID = Grammar("task_id", r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}",
                  f"1-128 characters: letters, digits and . _ : @ - ({_START})",
                  ("t1", "nightly@20260101T000000Z", "a.b:c-d_e"), ("", "-x", "a b", "x/y", "a" * 129, "a\n"))
FUNCTION_NAME = Grammar("function_name", r"[A-Za-z_][A-Za-z0-9_.:-]{0,199}",
                        "1-200 characters: a letter or _, then letters, digits and _ . : - "
                        "(a function name such as \"echo\" or \"module:function\")",
                        ("echo", "pkg.mod:fn", "_private"), ("", "1abc", "a b", "os;rm", "a" * 201))
FUNCTION_CODE = Grammar("function_code", r"[A-Za-z_][A-Za-z0-9_.-]{0,63}",
                        "1-64 characters: a letter or _, then letters, digits and . _ -",
                        ("train", "lgbm.fit", "_x"), ("", "9lives", "a:b", "a" * 65))
VERSION = Grammar("version", r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}",
                  f"1-64 characters: letters, digits and . _ + - ({_START})",
                  ("v1", "1.2.3+build", "2026-01"), ("", "-v1", "v 1", "a" * 65))
TAG = Grammar("tag", r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}",
              f"1-64 characters: letters, digits and . _ - ({_START})",
              ("gpu", "a100", "big.mem_2"), ("", "-gpu", "a,b", "a b", "gpu:1", "a" * 65))
WORKER_NAME = Grammar("worker_name", r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}",
                      f"1-128 characters: letters, digits and . _ : @ - ({_START})",
                      ("gpu-box-1", "w@host:2", "node.lan"), ("", "-w", "a b", "x/y", "a;b", "a" * 129))
USER_NAME = Grammar("user_name", r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}",
                    f"1-64 characters: letters, digits and . _ @ - ({_START})",
                    ("ann", "ann@lab", "u-business"), ("", "-ann", "a b", "a:b", "a" * 65))
SCHEDULE_ID = Grammar("schedule_id", r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}",
                      f"1-64 characters: letters, digits and . _ - ({_START})",
                      ("nightly", "every.5m", "a_b-c"), ("", "a b", "a@b", "-x", "a" * 65))
#: The ids schedule firings give their tasks (``scheduler.schedules.task_id``): ``<schedule id>@<UTC fire
#: time>``. They are the only task ids with ``@`` (``RESERVED``): a caller-chosen id with one is refused
#: (``check_chosen_task_id``), so nobody can take a firing's id before it fires.
SCHEDULED_TASK_ID = Grammar("scheduled_task_id", SCHEDULE_ID.pattern + r"@[0-9]{8}T[0-9]{6}(\.[0-9]{6})?Z",
                            "<schedule id>@<UTC fire time>, e.g. nightly@20260101T000000Z",
                            ("nightly@20260101T000000Z", "a.b@20261203T225500.250000Z"),
                            ("nightly", "nightly@2026", "a b@20260101T000000Z", "x@20260101T000000"))
#: The character of task ids reserved for schedule firings.
RESERVED = "@"
REPO_NAME = Grammar("repo_name", r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}",
                    f"1-64 characters: letters, digits and . _ - ({_START})",
                    ("models", "ml.repo", "r-1"), ("", "a/b", "-r", "a b", "a" * 65))
GIT_REF = Grammar("git_ref", r"[A-Za-z0-9_][A-Za-z0-9._/+@-]{0,199}",
                  "a tag, a branch or a commit SHA: 1-200 characters, letters, digits and . _ / + @ -",
                  ("main", "v1.2", "feature/x", "0123abc"), ("", "-main", "a b", "a" * 201))
COMMIT_SHA = Grammar("commit_sha", r"[0-9a-f]{40}|[0-9a-f]{64}", "a full commit SHA (40 or 64 hex digits)",
                     ("0" * 40, "a" * 64), ("", "abc", "A" * 40, "0" * 41))
TOKEN = Grammar("token", r"[A-Za-z0-9._~-]{16,256}",
                "16-256 characters: letters, digits and . _ ~ - (as `secrets.token_urlsafe` makes)",
                ("abcdefghijklmnop", "x" * 43), ("short", "a b" * 8, "a$" * 10, "a" * 257))
#: A partition (an area of functions and services), a group and a service: lower-case names.
PARTITION = Grammar("partition", r"[a-z0-9][a-z0-9_-]{0,63}",
                    "1-64 characters: lower-case letters, digits, _ and - (starting with a letter or digit)",
                    ("public", "nlp", "vision-2"), ("", "NLP", "a b", "-x", "a" * 65))
GROUP_NAME = Grammar("group_name", r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}",
                     f"1-64 characters: letters, digits and . _ - ({_START})",
                     ("lab", "nlp-team"), ("", "a b", "-x", "a" * 65))
SERVICE_NAME = Grammar("service_name", r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}",
                       f"1-64 characters: letters, digits and . _ - ({_START})",
                       ("translate", "ocr.v2"), ("", "a b", "-x", "a/b", "a" * 65))

#: An API token's id (``fsm.store.tokens``): the head of the SHA-256 of its secret.
TOKEN_ID = Grammar("token_id", r"[0-9a-f]{16}", "16 lower-case hex digits (as `suanwang token list` shows)",
                   ("0123456789abcdef",), ("", "0123", "0123456789ABCDEF", "0123456789abcdef0"))



def check_chosen_task_id(value: object, field: str = "id") -> str:
    """A task id a caller chose: ``TASK_ID`` without the reserved ``@`` (422 naming the rule)."""
    TASK_ID.check(value, "task id", field=field)
    if RESERVED in value:  # type: ignore[operator]
        raise ValidationError(f"task id {value!r} is not valid: '{RESERVED}' is reserved for the tasks of schedule "
                              f"firings ({SCHEDULED_TASK_ID.rule}); choose an id without '{RESERVED}'",
                              field=field, grammar=SCHEDULED_TASK_ID.name)
    return value  # type: ignore[return-value]


#: Every grammar by name.
GRAMMARS: dict[str, Grammar] = {g.name: g for g in (TASK_ID, FUNCTION_NAME, FUNCTION_CODE, VERSION, TAG,
                                                    WORKER_NAME, USER_NAME, SCHEDULE_ID, REPO_NAME, GIT_REF,
                                                    COMMIT_SHA, TOKEN, TOKEN_ID,
                                                    SCHEDULED_TASK_ID, PARTITION, GROUP_NAME, SERVICE_NAME)}


def main(argv: list[str]) -> int:
    """``python -m fsm.identifiers GRAMMAR VALUE...``: 0 when every value matches, else 2."""
    if len(argv) < 2 or argv[0] not in GRAMMARS:
        print(f"usage: python -m fsm.identifiers {{{','.join(GRAMMARS)}}} VALUE...", file=sys.stderr)
        return 2
    grammar = GRAMMARS[argv[0]]
    bad = [v for v in argv[1:] if not grammar.match(v)]
    for value in bad:
        print(f"bad {grammar.name.replace('_', ' ')} {value!r}: {grammar.rule}", file=sys.stderr)
    return 2 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
