"""``suanwang quota set|show``: a user's or a group's limits on waiting tasks, running tasks and stored bytes.

Example: suanwang quota set ann --queued 100 --running 2; suanwang quota show --group nlp
"""
from __future__ import annotations

import click

from suanwang.cli_common import Group, api_client, api_options


def _path(name: str, group: bool) -> str:
    return f"/{'groups' if group else 'users'}/{name}/quotas"


def _show(q: dict) -> str:
    def cell(key):
        limit = q[key]
        return f"{key} {q['usage'][key]}/{'-' if limit is None else limit}"
    return f"{q['kind']} {q['name']}: " + ", ".join(cell(k) for k in ("queued", "running", "data_bytes")) + \
        "  (used/limit; - is no limit)"


@click.group("quota", cls=Group)
def quota_group():
    """Quotas of a user or group: tasks waiting, tasks running, bytes stored."""


@quota_group.command("set")
@click.argument("name")
@click.option("--group", is_flag=True, help="NAME is a group (its members count together)")
@click.option("--queued", type=click.IntRange(0), help="tasks waiting at most (left out: no limit)")
@click.option("--running", type=click.IntRange(0), help="tasks running at most")
@click.option("--data-bytes", type=click.IntRange(0), help="bytes of stored data at most")
@api_options
def quota_set(name, group, queued, running, data_bytes, server_url, token, data_dir):
    """Replace NAME's quotas (admin); a limit left out is no limit."""
    client = api_client(server_url, token, data_dir)
    body = {"queued": queued, "running": running, "data_bytes": data_bytes}
    click.echo(_show(client.put(_path(name, group), body)))


@quota_group.command("show")
@click.argument("name")
@click.option("--group", is_flag=True, help="NAME is a group")
@api_options
def quota_show(name, group, server_url, token, data_dir):
    """NAME's quotas and what is in use (the user themself, a member of the group, or an admin)."""
    click.echo(_show(api_client(server_url, token, data_dir).get(_path(name, group))))
