"""``suanwang token create|list|revoke``: API tokens, through the server's API.

Without ``--user`` each verb acts on the caller's own tokens (the user of ``--token``);
an admin names another user with ``--user NAME``.
"""
from __future__ import annotations

import json

import click

from suanwang.cli_common import api_client, api_options


def _owner(client, user: str | None) -> str:
    return user or client.get("/whoami")["name"]


@click.group("token")
def token_group():
    """API tokens: create (shown once), list, revoke."""


@token_group.command("create")
@click.option("--label", default="api", show_default=True, help="what the token is for")
@click.option("--expires-in", "expires_in", type=click.IntRange(min=1), metavar="SECONDS",
              help="lifetime in seconds (default: never expires)")
@click.option("--user", help="whose token (default: yours; another user's needs admin)")
@click.option("--json", "as_json", is_flag=True, help="print the API's answer (secret included) as JSON")
@api_options
def token_create(label, expires_in, user, as_json, server_url, token, data_dir):
    """Create a token; prints its secret once (the last line), then never again.

    Example: suanwang token create --label laptop --expires-in 86400
    """
    client = api_client(server_url, token, data_dir)
    made = client.post(f"/users/{_owner(client, user)}/tokens", {"label": label, "expires_in_s": expires_in})
    if as_json:
        click.echo(json.dumps(made, indent=2))
        return
    click.echo(f"token {made['id']} ({made['label']}), expires {made['expires_at'] or 'never'}; "
               "the secret (shown once):")
    click.echo(made["token"])


@token_group.command("list")
@click.option("--user", help="whose tokens (default: yours; another user's needs admin)")
@api_options
def token_list(user, server_url, token, data_dir):
    """List tokens: id, label, created, expires, last used, revoked (never the secrets)."""
    client = api_client(server_url, token, data_dir)
    click.echo(f"{'id':<16}  {'label':<16}  {'created':<19}  {'expires':<19}  {'last used':<19}  state")
    for t in client.get(f"/users/{_owner(client, user)}/tokens")["items"]:
        state = "revoked" if t["revoked"] else "active"
        click.echo(f"{t['id']:<16}  {t['label'] or '':<16}  {_time(t['created_at']):<19}  "
                   f"{_time(t['expires_at']) or 'never':<19}  {_time(t['last_used_at']) or '-':<19}  {state}")


@token_group.command("revoke")
@click.argument("token_id")
@click.option("--user", help="whose token (default: yours; another user's needs admin)")
@api_options
def token_revoke(token_id, user, server_url, token, data_dir):
    """Revoke token TOKEN_ID at once (its id, as `suanwang token list` shows)."""
    client = api_client(server_url, token, data_dir)
    done = client.delete(f"/users/{_owner(client, user)}/tokens/{token_id}")
    click.echo(f"token {done['id']} ({done['label']}) revoked")


def _time(value: str | None) -> str:
    return (value or "")[:19].replace("T", " ")
