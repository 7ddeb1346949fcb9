"""The ``suanwang`` command: parse, build a config, call one library function.

Settings come from flags, then ``SUANWANG_*`` environment variables, then a config file
(see ``suanwang.settings``).
"""
from __future__ import annotations

import json
import logging
import signal
import sys
import time
from pathlib import Path

import click

from suanwang import settings
from suanwang.cli_common import Group, api_options, mongo_option

SUBCOMMANDS = ["up", "mongo", "server", "worker", "submit", "status", "user", "function", "repo", "schedule"]


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--config", "config_path", envvar="SUANWANG_CONFIG", help="a TOML config file")
@click.option("-v", "--verbose", is_flag=True, help="debug logging")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, verbose: bool) -> None:
    """Suanwang (算网): a distributed task queue for a small compute network, on MongoDB.

    Start everything on this machine with `suanwang up`; add machines with
    `suanwang worker --mongo URI`; publish work with `suanwang submit`.
    """
    _setup_logging(verbose)
    ctx.default_map = settings.default_map(SUBCOMMANDS, config_path)


@main.command()
@click.option("--data-dir", envvar="SUANWANG_DATA_DIR", default=str(settings.DEFAULT_DATA_DIR), show_default=True,
              help="database, token and logs")
@click.option("--port", default=8080, show_default=True, envvar="SUANWANG_PORT", help="HTTP port")
@click.option("--host", default="127.0.0.1", show_default=True, help="HTTP address to listen on")
@mongo_option(required=False)
@click.option("--bind-ip", default="127.0.0.1", show_default=True,
              help="address the embedded MongoDB listens on (0.0.0.0 to let other machines' workers in)")
@click.option("--concurrency", type=int, help="slots of the local worker (default: CPU count)")
@click.option("--name", "worker_name", help="name of the local worker (default: the hostname)")
def up(data_dir, port, host, mongo, bind_ip, concurrency, worker_name):
    """Start the embedded MongoDB (unless --mongo), the server with its web pages, and one local worker.

    Prints the URL, an admin token (also in DATA_DIR/admin.token) and the MongoDB URI that
    workers on other machines use. Ctrl-C stops all of it cleanly.
    """
    from suanwang.up import run_up

    sys.exit(run_up(Path(data_dir), port, mongo, host, bind_ip, concurrency, worker_name, echo=click.echo))


@main.command()
@click.option("--data-dir", envvar="SUANWANG_DATA_DIR", default=str(settings.DEFAULT_DATA_DIR / "db"),
              show_default=True)
@click.option("--port", type=int, default=27017, show_default=True)
@click.option("--bind-ip", default="127.0.0.1", show_default=True)
def mongo(data_dir, port, bind_ip):
    """Start only the embedded MongoDB (a single-node replica set) and print its URI."""
    from fsm.store.embedded import EmbeddedMongo

    server = EmbeddedMongo(Path(data_dir).expanduser(), port=port, bind_ip=bind_ip)
    uri = server.start()
    click.echo(uri, err=False)
    sys.stdout.flush()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    try:
        while not stop and server.process and server.process.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


@main.command()
@mongo_option()
@click.option("--host", default="127.0.0.1", show_default=True, envvar="SUANWANG_HOST")
@click.option("--port", type=int, default=8080, show_default=True, envvar="SUANWANG_PORT")
@click.option("--threads", type=int, default=8, show_default=True, help="HTTP worker threads")
@click.option("--admin-token", envvar="SUANWANG_ADMIN_TOKEN", help="make sure this token works for user admin")
@click.option("--no-scheduler", is_flag=True, help="never run the periodic jobs in this process")
@click.option("--smtp-host", envvar="SUANWANG_SMTP_HOST", help="mail server for e-mail notifications")
@click.option("--smtp-port", type=int, default=25, show_default=True, envvar="SUANWANG_SMTP_PORT")
@click.option("--smtp-user", envvar="SUANWANG_SMTP_USER")
@click.option("--smtp-password", envvar="SUANWANG_SMTP_PASSWORD")
@click.option("--smtp-tls", type=click.Choice(["none", "starttls", "ssl"]), default="none", show_default=True,
              envvar="SUANWANG_SMTP_TLS")
@click.option("--mail-from", default="suanwang@localhost", show_default=True, envvar="SUANWANG_MAIL_FROM")
@click.option("--metrics-token", envvar="SUANWANG_METRICS_TOKEN", help="require this token for /metrics")
def server(mongo, host, port, threads, admin_token, no_scheduler, smtp_host, smtp_port, smtp_user, smtp_password,
           smtp_tls, mail_from, metrics_token):
    """The control center: HTTP API, web pages and periodic jobs (one scheduler per network)."""
    import web
    from scheduler.config import ServerConfig
    from scheduler.server import serve

    def ready(srv) -> None:
        click.echo(f"serving on {srv.url}/ (API under {srv.url}/api/v1)")
        if srv.new_admin_token:
            click.echo(f"created user admin; its API token (shown once):\n{srv.new_admin_token}")

    sys.exit(serve(ServerConfig(mongo_uri=mongo, host=host, port=port, threads=threads, admin_token=admin_token,
                                run_scheduler=not no_scheduler, smtp_host=smtp_host, smtp_port=smtp_port,
                                smtp_user=smtp_user, smtp_password=smtp_password, smtp_tls=smtp_tls,
                                mail_from=mail_from, metrics_token=metrics_token), ready=ready,
                     extensions=(web.init_app,)))


@main.command()
@mongo_option()
@click.option("--name", envvar="SUANWANG_WORKER_NAME", help="worker name (default: the hostname)")
@click.option("--tags", envvar="SUANWANG_WORKER_TAGS", default="", help="comma-separated tags, e.g. gpu,big")
@click.option("--concurrency", type=int, envvar="SUANWANG_CONCURRENCY", help="slots (default: CPU count)")
@click.option("--heartbeat", type=float, default=2.0, show_default=True, help="seconds between heartbeats")
@click.option("--cache-dir", envvar="SUANWANG_CACHE_DIR", help="function checkouts (default ~/.suanwang/cache)")
@click.option("--drain-timeout", type=float, default=30.0, show_default=True, envvar="SUANWANG_DRAIN_TIMEOUT",
              help="seconds running attempts get to finish after SIGTERM")
@click.option("--burst", is_flag=True, help="exit when nothing is left to claim")
def worker(mongo, name, tags, concurrency, heartbeat, cache_dir, drain_timeout, burst):
    """A worker daemon: claims tasks from MongoDB and runs them in child processes."""
    from worker.config import WorkerConfig
    from worker.daemon import run_worker

    options = {"mongo_uri": mongo, "tags": tuple(t.strip() for t in tags.split(",") if t.strip()),
               "heartbeat_s": heartbeat, "drain_timeout_s": drain_timeout, "burst": burst}
    if name:
        options["name"] = name
    if concurrency:
        options["concurrency"] = concurrency
    if cache_dir:
        options["cache_dir"] = cache_dir
    sys.exit(run_worker(WorkerConfig(**options)) or 0)


def _parse_value(text: str):
    """A command-line argument is JSON when it parses as JSON, else a plain string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("function")
@click.argument("args", nargs=-1)
@click.option("--kwarg", "-k", "kwargs", multiple=True, metavar="NAME=VALUE", help="keyword argument (JSON value)")
@click.option("--version", "fn_version", help="function version (default: the newest)")
@click.option("--priority", type=int, help="higher runs first")
@click.option("--redundancy", type=int, help="run on K distinct workers")
@click.option("--quorum", type=int, help="results that must agree")
@click.option("--timeout", "timeout_s", type=float, help="seconds before an attempt is killed")
@click.option("--max-retries", type=int)
@click.option("--gpus", type=int, help="GPUs a worker must have")
@click.option("--tags", help="comma-separated tags a worker must have")
@click.option("--disabled", is_flag=True, help="publish disabled (not claimed until enabled)")
@click.option("--wait", is_flag=True, help="show progress and print the result")
@api_options
def submit(function, args, kwargs, fn_version, priority, redundancy, quorum, timeout_s, max_retries, gpus, tags,
           disabled, wait, server_url, token, data_dir):
    """Publish a task: FUNCTION [ARGS...] (each ARG is JSON if it parses, else a string).

    Example: suanwang submit echo '{"x": 1}' --wait
    """
    from suanwang.client import Client

    body: dict = {"function": function, "args": [_parse_value(a) for a in args]}
    if kwargs:
        body["kwargs"] = {}
        for item in kwargs:
            key, sep, value = item.partition("=")
            if not sep:
                raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint="--kwarg")
            body["kwargs"][key] = _parse_value(value)
    for key, value in (("version", fn_version), ("priority", priority), ("redundancy", redundancy),
                       ("quorum", quorum), ("timeout_s", timeout_s), ("max_retries", max_retries)):
        if value is not None:
            body[key] = value
    if gpus is not None or tags:
        body["requires"] = {"gpus": gpus or 0, "tags": [t for t in (tags or "").split(",") if t]}
    if disabled:
        body["is_enabled"] = False
    client = Client(server_url, token or settings.read_token(data_dir))
    task = client.post("/tasks", body)
    if not wait:
        click.echo(json.dumps({"id": task["id"], "status": task["status"]}))
        return
    final = client.wait(task["id"])
    click.echo(json.dumps(final.get("result"), indent=2, default=str) if final["status"] == "succeeded"
               else json.dumps({"status": final["status"], "reason": final.get("reason"),
                                "error": final.get("error")}, indent=2, default=str))
    sys.exit(0 if final["status"] == "succeeded" else 1)


@main.command()
@api_options
def status(server_url, token, data_dir):
    """Queues, workers and their resources, at a glance."""
    from suanwang.client import Client
    from suanwang.display import show_status

    client = Client(server_url, token or settings.read_token(data_dir))
    show_status(client.get("/stats"), client.get("/workers"))


@main.group()
def user():
    """Users and their tokens (talks to MongoDB directly: run it where the database is reachable)."""


@user.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["admin", "super", "business", "general"]), required=True)
@click.option("--password", help="for the web pages (prompted when given as '-')")
@mongo_option()
def user_add(name, role, password, mongo):
    """Create a user; prints its API token once."""
    from fsm.store import Store

    if password == "-":
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    store = Store.connect(mongo)
    token = store.users.add(name, role, password)
    click.echo(f"user {name} ({role}) created; API token (shown once):\n{token}")


@user.command("list")
@mongo_option()
def user_list(mongo):
    """List users and roles."""
    from fsm.store import Store

    for u in Store.connect(mongo).users.list():
        click.echo(f"{u['_id']:<24} {u['role']}")


def _mount_optional() -> None:
    """Command groups that live beside their feature (registry, schedules)."""
    try:
        from suanwang.cli_registry import function_group, repo_group

        main.add_command(function_group, "function")
        main.add_command(repo_group, "repo")
    except ImportError:
        pass
    try:
        from suanwang.cli_schedule import schedule_group

        main.add_command(schedule_group, "schedule")
    except ImportError:
        pass


_mount_optional()

if __name__ == "__main__":  # pragma: no cover
    main()
