"""Pieces every `suanwang` command group shares: error handling and the common options."""
from __future__ import annotations

import sys

import click

from fsm.errors import SuanwangError
from scheduler.config import default
from suanwang import settings

MONGO_HELP = "MongoDB URI, e.g. mongodb://host:27017/?replicaSet=suanwang"
#: The server ``suanwang up`` and ``suanwang server`` start by default (``scheduler.config``).
SERVER_DEFAULT = f"http://{default('host')}:{default('port')}"


class Group(click.Group):
    """Suanwang's own errors become one clear line and exit status 2, not a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SuanwangError as exc:
            click.secho(f"error: {exc.message}", fg="red", err=True)
            sys.exit(2)


def mongo_option(required: bool = True):
    return click.option("--mongo", "mongo", envvar="SUANWANG_MONGO_URI", required=required, help=MONGO_HELP)


def api_options(f):
    """--server-url, --token and --data-dir (where `suanwang up` keeps the admin token)."""
    f = click.option("--token", envvar="SUANWANG_TOKEN", help="API token (default: DATA_DIR/admin.token)")(f)
    f = click.option("--server-url", envvar="SUANWANG_SERVER", default=SERVER_DEFAULT, show_default=True,
                     help="the Suanwang server")(f)
    f = click.option("--data-dir", envvar="SUANWANG_DATA_DIR", default=str(settings.DEFAULT_DATA_DIR),
                     show_default=True, help="where `suanwang up` keeps its token")(f)
    return f
