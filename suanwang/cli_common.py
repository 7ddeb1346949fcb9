"""Pieces every `suanwang` command group shares: error handling and the common options."""
from __future__ import annotations

import json
import sys

import click

from fsm.errors import SuanwangError, Unauthorized
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
    """--server-url, --token and --data-dir (where a running `suanwang up` keeps its URL and token)."""
    f = click.option("--token", envvar="SUANWANG_TOKEN", help="API token (default: DATA_DIR/admin.token)")(f)
    f = click.option("--server-url", envvar="SUANWANG_SERVER",
                     help=f"the Suanwang server (default: DATA_DIR/server.url, else {SERVER_DEFAULT})")(f)
    f = click.option("--data-dir", envvar="SUANWANG_DATA_DIR", default=str(settings.DEFAULT_DATA_DIR),
                     show_default=True, help="the data directory of `suanwang up`: its server URL and token")(f)
    return f


def api_client(server_url: str | None, token: str | None, data_dir: str | None):
    """A ``Client`` of the server: flags and environment first, then what `suanwang up` left in DATA_DIR."""
    from suanwang.client import Client

    folder = settings.data_dir_path(data_dir)
    token = token or settings.read_token(folder)
    if not token:
        raise Unauthorized(f"no API token: pass --token or set SUANWANG_TOKEN, or point --data-dir (or "
                           f"SUANWANG_DATA_DIR) at the data directory of a running `suanwang up` "
                           f"({folder / settings.TOKEN_FILE} does not exist)")
    found = None if server_url else settings.read_server_url(folder)
    origin = "--server-url / SUANWANG_SERVER" if server_url else (
        f"from {folder / settings.SERVER_FILE}" if found else "the default; pass --server-url or --data-dir")
    return Client(server_url or found or SERVER_DEFAULT, token, origin=origin)


def action_command(group: click.Group, verb: str, path: str, line, help_text: str, argument: str = "name"):
    """Add ``group VERB ARGUMENT``: POST ``path`` (formatted with the argument) and print ``line(answer)``.

    The verbs that only name an object and act on it (pause, resume, rollback, undeploy) are
    this one command; only the URL and the printed line differ.
    """
    def command(server_url, token, data_dir, **kwargs):
        click.echo(line(api_client(server_url, token, data_dir).post(path.format(kwargs[argument]))))

    command.__doc__ = help_text
    return group.command(verb)(click.argument(argument)(api_options(command)))


def parse_value(text: str):
    """A command-line argument is JSON when it parses as JSON, else a plain string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def task_call(function: str | None, args: tuple, service: str | None, kwargs: tuple) -> dict:
    """The start of a task body from ``FUNCTION ARGS... -k NAME=VALUE`` or ``--service NAME ARGS...``."""
    if service:  # FUNCTION, when given, is the first argument
        args = ((function,) if function is not None else ()) + tuple(args)
    elif function is None:
        raise click.UsageError("name a FUNCTION, or a service with --service NAME")
    body: dict = {"service": service} if service else {"function": function}
    body["args"] = [parse_value(a) for a in args]
    for item in kwargs:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint="--kwarg")
        body.setdefault("kwargs", {})[key] = parse_value(value)
    return body
