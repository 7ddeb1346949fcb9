"""``suanwang function …`` and ``suanwang repo …``: the registry from the command line.

Each command calls the server's HTTP API (``/api/v1/functions``, ``/api/v1/repos``) with a
token, like ``suanwang submit``, so roles are enforced per user: registering needs super,
repositories need admin. The server clones and checks repositories itself; local paths must
lie under one of its ``--repo-root`` directories.
"""
from __future__ import annotations

import json
from urllib.parse import quote

import click

from fsm.errors import ValidationError
from suanwang.cli_common import Group, api_client, api_options


def _when(value) -> str:
    return value[:16].replace("T", " ") if isinstance(value, str) else ""


json_option = click.option("--json", "as_json", is_flag=True, help="print JSON")


@click.group("function", cls=Group)
def function_group():
    """Register and inspect function versions (pinned commits of registered repositories)."""


@function_group.command("register")
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
@click.option("--partition", default="public", show_default=True, help="the partition it belongs to (who may see it)")
@click.option("--requires", "requires", help='task defaults, JSON, e.g. \'{"gpus": 1}\'')
@api_options
def function_register(repo, ref, entrypoint, code, version, name, description, developer_name,
                      developer_contact, developer_cell, public, partition, requires, server_url, token, data_dir):
    """Register one version of a function from a registered repository (super)."""
    body = {"repo": repo, "ref": ref, "entrypoint": entrypoint, "code": code, "version": version,
            "name": name or code, "description": description, "developer_name": developer_name,
            "developer_contact": developer_contact, "developer_cell": developer_cell, "public": public,
            "partition": partition}
    if requires:
        try:
            body["requires"] = json.loads(requires)
        except ValueError:
            raise ValidationError(f"--requires must be JSON, e.g. '{{\"gpus\": 1}}', got {requires!r}") from None
    client = api_client(server_url, token, data_dir)
    before = _exists(client, code, version)
    doc = client.post("/functions", body)
    verb = "already registered (unchanged):" if before else "registered"
    click.echo(f"{verb} {doc['code']} {doc['version']} = {doc['entrypoint']} at {doc['repo']} "
               f"{doc['commit']}")


def _exists(client, code: str, version: str) -> bool:
    items = client.get(f"/functions?code={quote(code)}&limit=500")["items"]
    return any(d.get("version") == version and not d.get("builtin") for d in items)


@function_group.command("list")
@click.argument("code", required=False)
@click.option("--active", is_flag=True, help="hide deprecated versions")
@json_option
@api_options
def function_list(code, active, as_json, server_url, token, data_dir):
    """List function versions: built-ins and registered ones (newest first within each code)."""
    query = "&".join(f"{k}={quote(v)}" for k, v in (("code", code), ("active", "1" if active else None)) if v)
    page = api_client(server_url, token, data_dir).get("/functions" + (f"?{query}" if query else ""))
    items = [d for d in page["items"] if not d.get("builtin")]
    if as_json:
        click.echo(json.dumps({"items": items, "total": len(items)}, indent=2))
        return
    click.echo(f"{'CODE':<20} {'VERSION':<12} {'COMMIT':<12} {'FLAGS':<18} {'REGISTERED':<16} NAME")
    for d in page["items"]:
        flags = ",".join(f for f in ("builtin", "public", "deprecated") if d.get(f)) or "-"
        click.echo(f"{d['code']:<20} {d['version']:<12} {d.get('commit', '')[:12]:<12} {flags:<18} "
                   f"{_when(d.get('create_time')):<16} {d.get('name', '')}")
    click.echo(f"{len(items)} registered version(s)")


@function_group.command("show")
@click.argument("code")
@click.argument("version", required=False)
@click.option("--source/--no-source", default=True, help="print the module's source text")
@json_option
@api_options
def function_show(code, version, source, as_json, server_url, token, data_dir):
    """Show one version (default: the newest non-deprecated one), with its source."""
    path = f"/functions/{quote(code, safe='')}" + (f"/{quote(version, safe='')}" if version else "")
    doc = api_client(server_url, token, data_dir).get(path)
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    for field in ("code", "version", "name", "description", "entrypoint", "repo", "repo_url", "ref", "commit",
                  "path", "public", "deprecated", "requires", "developer_name", "developer_contact",
                  "developer_cell", "registered_by", "create_time", "update_time"):
        click.echo(f"{field + ':':<19} {doc.get(field)}")
    if source:
        click.echo(f"--- {doc['path']} @ {doc['commit'][:12]}")
        click.echo(doc["content"], nl=not doc["content"].endswith("\n"))


@function_group.command("set")
@click.argument("code")
@click.argument("version")
@click.option("--public/--private", default=None, help="may business users publish tasks of it")
@click.option("--deprecated/--active", default=None, help="deprecated versions are never picked by default")
@api_options
def function_set(code, version, public, deprecated, server_url, token, data_dir):
    """Change a version's flags (its code and commit never change)."""
    body = {k: v for k, v in (("public", public), ("deprecated", deprecated)) if v is not None}
    doc = api_client(server_url, token, data_dir).patch(f"/functions/{quote(code, safe='')}/"
                                                        f"{quote(version, safe='')}", body)
    click.echo(f"{doc['code']} {doc['version']}: public={doc['public']} deprecated={doc['deprecated']}")


@click.group("repo", cls=Group)
def repo_group():
    """The repositories workers may pull function code from (admins only)."""


@repo_group.command("add")
@click.argument("location")
@click.option("--name", help="short name (default: the last part of the location)")
@click.option("--description", default="")
@click.option("--verify/--no-verify", default=True, help="check that git can read it now")
@api_options
def repo_add(location, name, description, verify, server_url, token, data_dir):
    """Allow workers to pull from LOCATION: a git URL, or a local path under one of the server's --repo-root."""
    body = {"location": location, "description": description, "verify": verify, **({"name": name} if name else {})}
    doc = api_client(server_url, token, data_dir).post("/repos", body)
    click.echo(f"added repository {doc['name']}: {doc['url']}")


@repo_group.command("list")
@json_option
@api_options
def repo_list(as_json, server_url, token, data_dir):
    """List the registered repositories."""
    repos = api_client(server_url, token, data_dir).get("/repos")["items"]
    if as_json:
        click.echo(json.dumps(repos, indent=2))
        return
    for r in repos:
        click.echo(f"{r['name']:<20} {r['kind']:<5} {r['url']}  {r.get('description', '')}".rstrip())
