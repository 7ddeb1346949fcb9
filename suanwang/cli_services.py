"""``suanwang service create|list|show|deploy|rollback|undeploy`` and ``suanwang group add|list|set|remove``.

They call the HTTP API (``--server-url``, ``--token``) like ``suanwang submit``, so the server
enforces roles and partitions.
"""
from __future__ import annotations

import json

import click

from suanwang.cli_common import Group, action_command, api_client, api_options


def _line(s: dict) -> str:
    return (f"{s['name']:<20} {s['function']}@{s['deployed']:<12} previous {s.get('previous') or '-':<10} "
            f"{s['state']:<10} partition {s['partition']}  price {s.get('price', 0)}")


@click.group("service", cls=Group)
def service_group():
    """Services: stable names for a function version, with deploy, roll-back and undeploy."""


@service_group.command("create")
@click.argument("name")
@click.option("--function", "function", required=True, help="a registered function (code)")
@click.option("--version", "version", required=True, help="the version to deploy first")
@click.option("--partition", default="public", show_default=True)
@click.option("--price", type=float, default=0, show_default=True, help="credits per call")
@api_options
def service_create(name, function, version, partition, price, server_url, token, data_dir):
    """Create a service NAME that calls FUNCTION at --version (super-user)."""
    body = {"name": name, "function": function, "version": version, "partition": partition, "price": price}
    click.echo(_line(api_client(server_url, token, data_dir).post("/services", body)))


@service_group.command("list")
@api_options
def service_list(server_url, token, data_dir):
    """Services you may call, one per line."""
    for s in api_client(server_url, token, data_dir).get("/services")["items"]:
        click.echo(_line(s))


@service_group.command("show")
@click.argument("name")
@api_options
def service_show(name, server_url, token, data_dir):
    """One service as JSON, with its deploy history."""
    click.echo(json.dumps(api_client(server_url, token, data_dir).get(f"/services/{name}"), indent=2))


@service_group.command("deploy")
@click.argument("name")
@click.argument("version")
@api_options
def service_deploy(name, version, server_url, token, data_dir):
    """Switch NAME to VERSION at once; the previous version stays deployable."""
    click.echo(_line(api_client(server_url, token, data_dir).post(f"/services/{name}/deploy", {"version": version})))


service_rollback = action_command(service_group, "rollback", "/services/{}/rollback", _line,
                                  "Go back to the previously deployed version in one call.")
service_undeploy = action_command(service_group, "undeploy", "/services/{}/undeploy", _line,
                                  "Refuse new calls (running tasks go on).")


@click.group("group", cls=Group)
def group_group():
    """Groups of users and the partitions they open (admin)."""


@group_group.command("add")
@click.argument("name")
@click.argument("partitions", nargs=-1)
@api_options
def group_add(name, partitions, server_url, token, data_dir):
    """Create a group that opens these partitions."""
    g = api_client(server_url, token, data_dir).post("/groups", {"name": name, "partitions": list(partitions)})
    click.echo(f"{g['name']}: {', '.join(g['partitions']) or '-'}")


@group_group.command("list")
@api_options
def group_list(server_url, token, data_dir):
    """Groups and their partitions."""
    for g in api_client(server_url, token, data_dir).get("/groups")["items"]:
        click.echo(f"{g['name']:<20} {', '.join(g['partitions']) or '-'}")


@group_group.command("set")
@click.argument("name")
@click.argument("partitions", nargs=-1)
@api_options
def group_set(name, partitions, server_url, token, data_dir):
    """Replace a group's partitions."""
    g = api_client(server_url, token, data_dir).patch(f"/groups/{name}", {"partitions": list(partitions)})
    click.echo(f"{g['name']}: {', '.join(g['partitions']) or '-'}")


@group_group.command("remove")
@click.argument("name")
@api_options
def group_remove(name, server_url, token, data_dir):
    """Remove a group."""
    api_client(server_url, token, data_dir).delete(f"/groups/{name}")
    click.echo(f"removed group {name}")
