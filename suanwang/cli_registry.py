"""``suanwang function …`` and ``suanwang repo …``: the registry from the command line.

Each command talks to MongoDB through ``registry.service.Registry``. Whoever holds the
MongoDB URI administers the network, so these commands act as an admin (recorded as
``cli:<login>``); the HTTP API is where roles are enforced per user.
"""
from __future__ import annotations

import getpass
import json
import os
from datetime import datetime

import click

from fsm.errors import ValidationError
from fsm.store import database
from fsm.store.driver import StoredId
from registry.resolver import DEFAULT_CACHE_DIR
from registry.service import Registry
from suanwang.cli_common import MONGO_HELP, Group

def _cli_user() -> dict:
    try:
        login = getpass.getuser()
    except (KeyError, OSError):
        login = str(os.getuid())
    return {"_id": f"cli:{login}", "role": "admin"}


def _registry(mongo: str, cache_dir: str | None = None, roots: tuple[str, ...] = ()) -> Registry:
    return Registry(database(mongo), cache_dir or str(DEFAULT_CACHE_DIR), roots=roots)


def _plain(value):
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, StoredId):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k not in ("_id", "serial")}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if isinstance(value, datetime) else ""


mongo_option = click.option("--mongo", envvar="SUANWANG_MONGO_URI", required=True, help=MONGO_HELP)
cache_option = click.option("--cache-dir", envvar="SUANWANG_CACHE_DIR",
                            help=f"git mirrors and checkouts (default {DEFAULT_CACHE_DIR})")
json_option = click.option("--json", "as_json", is_flag=True, help="print JSON")


@click.group("function", cls=Group)
def function_group():
    """Register and inspect function versions (pinned commits of registered repositories)."""


@function_group.command("register")
@mongo_option
@click.option("--repo", required=True, help="a registered repository: its name or location")
@click.option("--ref", required=True, help="tag, branch or commit SHA (recorded as the full SHA)")
@click.option("--entrypoint", required=True, help="module:function inside the repository")
@click.option("--code", required=True, help="the function's code, e.g. func1 (what tasks name)")
@click.option("--version", "version", required=True, help="the version, e.g. 1.0 (immutable once registered)")
@click.option("--name", help="a human name (default: the code)")
@click.option("--description", default="", help="what it does")
@click.option("--developer-name", default="")
@click.option("--developer-contact", default="", help="e-mail or chat handle")
@click.option("--developer-cell", default="", help="phone")
@click.option("--public", is_flag=True, help="business users may publish tasks of it")
@click.option("--requires", "requires", help='task defaults, JSON, e.g. \'{"gpus": 1}\'')
@cache_option
def function_register(mongo, repo, ref, entrypoint, code, version, name, description, developer_name,
                      developer_contact, developer_cell, public, requires, cache_dir):
    """Register one version of a function from a registered repository."""
    body = {"repo": repo, "ref": ref, "entrypoint": entrypoint, "code": code, "version": version,
            "name": name or code, "description": description, "developer_name": developer_name,
            "developer_contact": developer_contact, "developer_cell": developer_cell, "public": public}
    if requires:
        try:
            body["requires"] = json.loads(requires)
        except ValueError:
            raise ValidationError(f"--requires must be JSON, e.g. '{{\"gpus\": 1}}', got {requires!r}") from None
    doc, created = _registry(mongo, cache_dir).register(_cli_user(), body)
    verb = "registered" if created else "already registered (unchanged):"
    click.echo(f"{verb} {doc['code']} {doc['version']} = {doc['entrypoint']} at {doc['repo']} "
               f"{doc['commit']}")


@function_group.command("list")
@mongo_option
@click.argument("code", required=False)
@click.option("--active", is_flag=True, help="hide deprecated versions")
@json_option
def function_list(mongo, code, active, as_json):
    """List registered function versions (newest first within each code)."""
    items, total = _registry(mongo).list_functions(code, include_deprecated=not active)
    if as_json:
        click.echo(json.dumps({"items": _plain(items), "total": total}, indent=2))
        return
    click.echo(f"{'CODE':<20} {'VERSION':<12} {'COMMIT':<12} {'FLAGS':<18} {'REGISTERED':<16} NAME")
    for d in items:
        flags = ",".join(f for f in ("public", "deprecated") if d.get(f)) or "-"
        click.echo(f"{d['code']:<20} {d['version']:<12} {d['commit'][:12]:<12} {flags:<18} "
                   f"{_when(d.get('create_time')):<16} {d.get('name', '')}")
    click.echo(f"{total} version(s)")


@function_group.command("show")
@mongo_option
@click.argument("code")
@click.argument("version", required=False)
@click.option("--source/--no-source", default=True, help="print the module's source text")
@json_option
def function_show(mongo, code, version, source, as_json):
    """Show one version (default: the newest non-deprecated one), with its source."""
    doc = _registry(mongo).get_function(code, version)
    if as_json:
        click.echo(json.dumps(_plain(doc), indent=2))
        return
    for field in ("code", "version", "name", "description", "entrypoint", "repo", "repo_url", "ref", "commit",
                  "path", "public", "deprecated", "requires", "developer_name", "developer_contact",
                  "developer_cell", "registered_by", "create_time", "update_time"):
        click.echo(f"{field + ':':<19} {_plain(doc.get(field))}")
    if source:
        click.echo(f"--- {doc['path']} @ {doc['commit'][:12]}")
        click.echo(doc["content"], nl=not doc["content"].endswith("\n"))


@function_group.command("set")
@mongo_option
@click.argument("code")
@click.argument("version")
@click.option("--public/--private", default=None, help="may business users publish tasks of it")
@click.option("--deprecated/--active", default=None, help="deprecated versions are never picked by default")
def function_set(mongo, code, version, public, deprecated):
    """Change a version's flags (its code and commit never change)."""
    doc = _registry(mongo).set_flags(_cli_user(), code, version, public=public, deprecated=deprecated)
    click.echo(f"{doc['code']} {doc['version']}: public={doc['public']} deprecated={doc['deprecated']}")


@click.group("repo", cls=Group)
def repo_group():
    """The repositories workers may pull function code from (admins only)."""


@repo_group.command("add")
@mongo_option
@click.argument("location")
@click.option("--name", help="short name (default: the last part of the location)")
@click.option("--description", default="")
@click.option("--allowed-root", "roots", multiple=True, envvar="SUANWANG_REPO_ROOTS",
              type=click.Path(file_okay=False), help="a directory local repositories must lie under (repeatable; "
              f"the environment variable takes a {os.pathsep!r}-separated list)")
@click.option("--verify/--no-verify", default=True, help="check that git can read it now")
@cache_option
def repo_add(mongo, location, name, description, roots, verify, cache_dir):
    """Allow workers to pull from LOCATION: a git URL, or a local path under an allowed root."""
    doc = _registry(mongo, cache_dir, tuple(roots)).add_repo(_cli_user(), location, name=name,
                                                             description=description, verify=verify)
    click.echo(f"added repository {doc['_id']}: {doc['url']}")


@repo_group.command("list")
@mongo_option
@json_option
def repo_list(mongo, as_json):
    """List the registered repositories."""
    repos = _registry(mongo).list_repos()
    if as_json:
        click.echo(json.dumps([{"name": r["_id"], **_plain(r)} for r in repos], indent=2))
        return
    for r in repos:
        click.echo(f"{r['_id']:<20} {r['kind']:<5} {r['url']}  {r.get('description', '')}".rstrip())

