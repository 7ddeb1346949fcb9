"""``suanwang credits topup|ledger``: credit balances and their movements, through the server's API.

Example: suanwang credits topup ann 100 --note "invoice 42"; suanwang credits ledger ann
"""
from __future__ import annotations

import click

from suanwang.cli_common import api_client, api_options


@click.group("credits")
def credits_group():
    """Credits: top up a user (admin) and read a user's ledger."""


@credits_group.command("topup")
@click.argument("user")
@click.argument("amount", type=float)
@click.option("--note", help="why (kept in the ledger and the audit trail)")
@api_options
def credits_topup(user, amount, note, server_url, token, data_dir):
    """Add AMOUNT credits to USER (admin); a negative AMOUNT corrects, never below zero
    (write it after ``--``: suanwang credits topup ann -- -5)."""
    done = api_client(server_url, token, data_dir).post(f"/users/{user}/credits", {"amount": amount, "note": note})
    click.echo(f"{done['account']}: {done['entry']['amount']:+g} credits, balance {done['balance']:g}")


@credits_group.command("ledger")
@click.argument("user")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True, help="movements to show")
@api_options
def credits_ledger(user, limit, server_url, token, data_dir):
    """USER's credit movements, newest first (the user themself, or admin)."""
    page = api_client(server_url, token, data_dir).get(f"/users/{user}/ledger?limit={limit}")
    click.echo(f"balance {page['credits']['balance']:g} credits ({page['total']} movements)")
    click.echo(f"{'at':<19}  {'amount':>12}  {'balance':>12}  {'reason':<14}  {'task':<24}  {'by':<12}  note")
    for e in page["items"]:
        click.echo(f"{str(e['at'])[:19].replace('T', ' '):<19}  {e['amount']:>+12g}  {e['balance_after']:>12g}  "
                   f"{e['reason']:<14}  {e['task'] or '-':<24}  {e['by']:<12}  {e['note'] or ''}")
