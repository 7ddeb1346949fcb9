"""Static checks of an entrypoint against a commit's files: no registrant code runs on the server.

``module:function`` names a module (``pkg.mod`` is ``pkg/mod.py`` or ``pkg/mod/__init__.py``)
and a name defined at its top level (a ``def``, ``class``, assignment or import); ``Cls.method``
is checked as far as ``Cls``.
"""
from __future__ import annotations

import ast
import re

from fsm.errors import RegistryError, ValidationError

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
ENTRYPOINT = re.compile(rf"^{IDENT}(?:\.{IDENT})*:{IDENT}(?:\.{IDENT})*$")
#: Largest module source kept in ``functions.content``.
MAX_CONTENT_BYTES = 1 << 20


def split_entrypoint(entrypoint: str) -> tuple[str, str]:
    if not isinstance(entrypoint, str) or not ENTRYPOINT.match(entrypoint):
        raise ValidationError(f"entrypoint must look like 'package.module:function', got {entrypoint!r}",
                              field="entrypoint")
    module, _, attr = entrypoint.partition(":")
    return module, attr


def module_files(module: str) -> list[str]:
    """Where ``module`` may live in a checkout, in import order."""
    base = module.replace(".", "/")
    return [f"{base}.py", f"{base}/__init__.py"]


def top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for sub in ast.walk(target):
                    if isinstance(sub, ast.Name):
                        names.add(sub.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                names.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, (ast.If, ast.Try)):  # names defined under a guard still count
            names |= top_level_names(ast.Module(body=_guarded_body(node), type_ignores=[]))
    return names


def _guarded_body(node) -> list:
    body = list(node.body) + list(getattr(node, "orelse", []))
    for handler in getattr(node, "handlers", []):
        body += handler.body
    return body + list(getattr(node, "finalbody", []))


def check_source(entrypoint: str, path: str, data: bytes) -> str:
    """The module's text, after checking it parses and defines the function; raises RegistryError."""
    _, attr = split_entrypoint(entrypoint)
    if len(data) > MAX_CONTENT_BYTES:
        raise RegistryError(f"{path} is {len(data)} bytes; the registry keeps modules up to {MAX_CONTENT_BYTES}")
    try:
        text = data.decode("utf-8")
        tree = ast.parse(text, filename=path)
    except (UnicodeDecodeError, SyntaxError, ValueError) as exc:
        raise RegistryError(f"{path} is not valid Python source: {exc}") from None
    name = attr.split(".")[0]
    if name not in top_level_names(tree):
        raise RegistryError(f"module {path} defines no function {name!r} (entrypoint {entrypoint})")
    return text
