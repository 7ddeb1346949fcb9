"""The registry's verbs for admins and super-users: allowed repositories and function versions.

``Registry(store, cache_dir, roots=…)`` (a ``Store``, or a raw ``Database``) is what the command line and the HTTP blueprint call; both
pass the caller as a user document (``{"_id": name, "role": …}``). Registration resolves the
ref to a full commit in this machine's mirror, reads the entrypoint's module from that commit
and checks it statically; a refused registration writes nothing.
"""
from __future__ import annotations

import os
from typing import Any

from fsm.fields import json_object
from fsm.errors import Conflict, Forbidden, FunctionNotFound, RegistryError, ValidationError
from fsm.identifiers import FUNCTION_CODE, REPO_NAME, VERSION, PARTITION
from fsm.pricing import check_price
from fsm.store.spec import validate as validate_task
from fsm import rights
from registry.builtins import BUILTIN_VERSION, BUILTINS
from registry.checkout import GitCache
from registry.locations import check_location, check_name, check_syntax
from registry.source import check_source, module_files, split_entrypoint
from registry.store import ensure_indexes, new_serial, now, registry_stores

TEXT_LIMITS = {"name": 200, "description": 10_000, "developer_name": 200, "developer_contact": 200,
               "developer_cell": 64}
REGISTER_FIELDS = {"repo", "ref", "entrypoint", "code", "version", "public", "partition", "requires", "price",
                   *TEXT_LIMITS}
REQUIRED = ("repo", "ref", "entrypoint", "code", "version")


def caller_name(user: dict) -> str:
    return str(user.get("_id") or user.get("name") or "?")


def require_registrant(user: dict | None, action: str) -> None:
    if not rights.may(user, "manage_functions"):
        raise Forbidden(f"only admin and super-users may {action}"
                        + (f" (you are {caller_name(user)!r}, role {user.get('role')!r})" if user else ""))


def require_admin(user: dict | None, action: str) -> None:
    if not rights.may(user, "manage_repos"):
        raise Forbidden(f"only admins may {action}")


def _text(body: dict, field: str, default: str = "") -> str:
    value = body.get(field, default)
    if value is None:
        value = default
    if not isinstance(value, str):
        raise ValidationError(f"'{field}' must be a string", field=field)
    if len(value) > TEXT_LIMITS[field]:
        raise ValidationError(f"'{field}' is longer than {TEXT_LIMITS[field]} characters", field=field)
    return value.strip()


def validate_registration(body: Any) -> dict:
    """Check a registration request's fields (no database, no git); return the clean fields."""
    json_object(body, REGISTER_FIELDS, "a registration")
    missing = [f for f in REQUIRED if not body.get(f)]
    if missing:
        raise ValidationError(f"missing required field(s): {', '.join(missing)}", field=missing[0])
    code, version = body["code"], body["version"]
    if not FUNCTION_CODE.match(code):
        raise ValidationError(f"'code' must be {FUNCTION_CODE.rule}", field="code")
    if code in BUILTINS:
        raise ValidationError(f"'code' {code!r} is a built-in function's name", field="code")
    if not VERSION.match(version) or version == BUILTIN_VERSION:
        raise ValidationError(f"'version' must be {VERSION.rule}, and not {BUILTIN_VERSION!r}", field="version")
    split_entrypoint(body["entrypoint"])
    if not isinstance(body["repo"], str) or not isinstance(body["ref"], str):
        raise ValidationError("'repo' and 'ref' must be strings", field="repo")
    public = body.get("public", False)
    if not isinstance(public, bool):
        raise ValidationError("'public' must be true or false", field="public")
    partition = PARTITION.check(body.get("partition", "public"), "partition", field="partition")
    requires = body.get("requires")
    if requires is not None:
        requires = validate_task({"function": "x", "requires": requires}).requires
    clean = {f: _text(body, f) for f in TEXT_LIMITS}
    clean["name"] = clean["name"] or code
    return {**clean, "code": code, "version": version, "entrypoint": body["entrypoint"], "repo": body["repo"],
            "ref": body["ref"].strip(), "public": public, "partition": partition,
            "requires": requires, "price": check_price(body.get("price"))}


class Registry:
    """Repositories and function versions over one database, with this machine's git cache."""

    def __init__(self, db, cache_dir: str, *, roots: tuple[str, ...] | list[str] = (),
                 git_timeout_s: float = 120.0):
        ensure_indexes(db)
        self.functions, self.repos = registry_stores(db)
        self.git = GitCache(cache_dir, timeout_s=git_timeout_s)
        self.roots = tuple(roots)

    # ------------------------------------------------------------ repositories
    def add_repo(self, user: dict, location: str, *, name: str | None = None, description: str = "",
                 verify: bool = True) -> dict:
        """Allow workers to pull from ``location`` (admins only); ``verify`` checks git can read it."""
        require_admin(user, "register repositories")
        checked = check_location(location, self.roots)
        name = check_name(name or checked.default_name())
        if not isinstance(description, str) or len(description) > TEXT_LIMITS["description"]:
            raise ValidationError("'description' must be a string of at most 10000 characters", field="description")
        existing = self.repos.find(name) or self.repos.find(checked.url)
        if existing:
            raise Conflict(f"repository {existing['_id']!r} ({existing['url']}) is already registered")
        if verify:
            self.git._git(["ls-remote", "--quiet", "--exit-code", "--", checked.url, "HEAD"],
                          what=f"reading {checked.url}")
        doc = {"_id": name, "url": checked.url, "kind": checked.kind, "description": description,
               "added_by": caller_name(user), "create_time": now()}
        return self.repos.insert(doc)

    def find_repo(self, name_or_location: str) -> dict | None:
        """A registered repository, by name or by location (paths compared after resolving them)."""
        repo = self.repos.find(name_or_location)
        if repo is None:
            checked = check_syntax(name_or_location) if not REPO_NAME.match(name_or_location) else None
            if checked is not None:
                url = os.path.realpath(checked.url) if checked.kind == "path" else checked.url
                repo = self.repos.find(url)
        return repo

    def list_repos(self) -> list[dict]:
        return self.repos.list()

    # -------------------------------------------------------------- functions
    def register(self, user: dict, body: dict) -> tuple[dict, bool]:
        """Register one function version; returns (document, created). Nothing is written on refusal."""
        require_registrant(user, "register functions")
        fields = validate_registration(body)
        repo = self.find_repo(fields["repo"])
        if repo is None:
            raise RegistryError(f"repository {fields['repo']!r} is not registered; an admin adds it first with "
                                "'suanwang repo add' (functions are only taken from registered repositories)")
        commit = self.git.resolve(repo["url"], fields["ref"])
        existing = self.functions.find(fields["code"], fields["version"])
        if existing:
            return self._same_version(existing, commit, fields), False
        module, _ = split_entrypoint(fields["entrypoint"])
        path, data = self._module_source(repo["url"], commit, module)
        if data is None:
            raise RegistryError(f"module {module!r} is not in {repo['_id']} at {fields['ref']} ({commit[:12]}): "
                                f"looked for {' and '.join(module_files(module))}")
        content = check_source(fields["entrypoint"], path, data)
        stamp = now()
        doc = {**fields, "repo": repo["_id"], "repo_url": repo["url"], "commit": commit, "path": path,
               "content": content, "requires": fields["requires"] or {}, "deprecated": False,
               "registered_by": caller_name(user), "create_time": stamp, "update_time": stamp,
               "serial": new_serial()}
        try:
            return self.functions.insert(doc), True
        except Conflict:
            raced = self.functions.find(fields["code"], fields["version"])
            return self._same_version(raced, commit, fields), False

    def _module_source(self, url: str, commit: str, module: str) -> tuple[str, bytes | None]:
        for path in module_files(module):
            data = self.git.read_file(url, commit, path)
            if data is not None:
                return path, data
        return module_files(module)[0], None

    @staticmethod
    def _same_version(existing: dict, commit: str, fields: dict) -> dict:
        if existing["commit"] != commit or existing["entrypoint"] != fields["entrypoint"]:
            raise Conflict(f"function {fields['code']} version {fields['version']} is already registered at "
                           f"commit {existing['commit'][:12]} ({existing['entrypoint']}); a version never changes: "
                           "register a new version instead")
        return existing

    def list_functions(self, code: str | None = None, **kwargs) -> tuple[list[dict], int]:
        return self.functions.list(code, **kwargs)

    def get_function(self, code: str, version: str | None = None) -> dict:
        """One version with its source; without ``version``, the newest non-deprecated one."""
        if version is None:
            newest = self.functions.newest(code)
            if newest is None:
                raise FunctionNotFound(f"function {code!r} has no non-deprecated version" if self.functions.exists(code)
                                       else f"unknown function {code!r}")
            version = newest["version"]
        return self.functions.get(code, version)

    def set_flags(self, user: dict, code: str, version: str, *, public: bool | None = None,
                  deprecated: bool | None = None, **price) -> dict:
        """Change ``public``, ``deprecated`` and/or ``price`` (``price=None`` makes the version free)."""
        require_registrant(user, "change function versions")
        flags = {k: v for k, v in (("public", public), ("deprecated", deprecated)) if v is not None}
        if not all(isinstance(v, bool) for v in flags.values()) or not (flags or "price" in price):
            raise ValidationError("give 'public' and/or 'deprecated' as true or false, and/or 'price'")
        if set(price) - {"price"}:
            raise ValidationError(f"unknown field(s): {', '.join(sorted(set(price) - {'price'}))}")
        if "price" in price:
            flags["price"] = check_price(price["price"])
        return self.functions.set_flags(code, version, **flags)
