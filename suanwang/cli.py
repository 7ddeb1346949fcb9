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

from scheduler.config import TLS_MODES, default as server_default
from suanwang import settings
from suanwang.cli_common import Group, api_client, api_options, mongo_option, task_call
from worker.config import default as worker_default

SUBCOMMANDS = ["up", "mongo", "server", "worker", "submit", "status", "user", "function", "repo", "schedule", "why",
               "data", "token", "service", "group"]


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
@click.option("--port", default=server_default("port"), show_default=True, envvar="SUANWANG_PORT", help="HTTP port")
@click.option("--host", default=server_default("host"), show_default=True, help="HTTP address to listen on")
@mongo_option(required=False)
@click.option("--bind-ip", default="127.0.0.1", show_default=True,
              help="address the embedded MongoDB listens on (0.0.0.0 to let other machines' workers in)")
@click.option("--concurrency", type=int, help="slots of the local worker (default: CPU count)")
@click.option("--name", "worker_name", help="name of the local worker (default: the hostname)")
@click.option("--repo-root", "repo_roots", multiple=True, type=click.Path(file_okay=False),
              help="a directory whose git repositories admins may register (repeatable)")
def up(data_dir, port, host, mongo, bind_ip, concurrency, worker_name, repo_roots):
    """Start the embedded MongoDB (unless --mongo), the server with its web pages, and one local worker.

    Prints the URL, an admin token (also in DATA_DIR/admin.token) and the MongoDB URI that
    workers on other machines use. Ctrl-C stops all of it cleanly.
    """
    from suanwang.up import run_up

    sys.exit(run_up(Path(data_dir), port, mongo, host, bind_ip, concurrency, worker_name, echo=click.echo,
                    repo_roots=repo_roots))


@main.command()
@click.option("--data-dir", envvar="SUANWANG_DATA_DIR", default=str(settings.DEFAULT_DATA_DIR / "db"),
              show_default=True)
@click.option("--port", type=int, default=27017, show_default=True)
@click.option("--bind-ip", default="127.0.0.1", show_default=True)
@click.option("--no-auth", is_flag=True, help="no access control (only for a database nobody else can reach)")
def mongo(data_dir, port, bind_ip, no_auth):
    """Start only the embedded MongoDB (a single-node replica set) and print its URIs.

    It runs with access control: the users admin, suanwang-server and suanwang-worker are
    created on the first start, their passwords kept in DATA_DIR/credentials.json (mode 0600).
    Printed: the server's and the workers' URIs, passwords masked (they would land in logs).
    """
    from fsm.store.access import mask_password
    from fsm.store.embedded import EmbeddedMongo

    server = EmbeddedMongo(Path(data_dir).expanduser(), port=port, bind_ip=bind_ip, auth=not no_auth)
    server.start()
    if no_auth:
        click.echo(server.uri)
    else:
        click.echo(f"server : {mask_password(server.uri)}")
        click.echo(f"workers: {mask_password(server.worker_uri)}")
        click.echo(f"passwords in {server.credentials_path} (mode 0600)")
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
@click.option("--host", default=server_default("host"), show_default=True, envvar="SUANWANG_HOST")
@click.option("--port", type=int, default=server_default("port"), show_default=True, envvar="SUANWANG_PORT")
@click.option("--threads", type=int, default=server_default("threads"), show_default=True, help="HTTP worker threads")
@click.option("--admin-token", envvar="SUANWANG_ADMIN_TOKEN", help="make sure this token works for user admin")
@click.option("--no-scheduler", is_flag=True, help="never run the periodic jobs in this process")
@click.option("--smtp-host", envvar="SUANWANG_SMTP_HOST", help="mail server for e-mail notifications")
@click.option("--smtp-port", type=int, default=server_default("smtp_port"), show_default=True,
              envvar="SUANWANG_SMTP_PORT")
@click.option("--smtp-user", envvar="SUANWANG_SMTP_USER")
@click.option("--smtp-password", envvar="SUANWANG_SMTP_PASSWORD")
@click.option("--smtp-tls", type=click.Choice(TLS_MODES), default=server_default("smtp_tls"), show_default=True,
              envvar="SUANWANG_SMTP_TLS")
@click.option("--mail-from", default=server_default("mail_from"), show_default=True, envvar="SUANWANG_MAIL_FROM")
@click.option("--metrics-token", envvar="SUANWANG_METRICS_TOKEN", help="require this token for /metrics")
@click.option("--max-data-bytes", type=int, envvar="SUANWANG_MAX_DATA_BYTES", help="largest data upload (64 GiB)")
@click.option("--data-quota-bytes", type=int, envvar="SUANWANG_DATA_QUOTA_BYTES", help="per-user storage quota")
@click.option("--data-retention-days", type=float, envvar="SUANWANG_DATA_RETENTION_DAYS",
              help="delete data no task refers to after this many days (30)")
@click.option("--repo-root", "repo_roots", multiple=True, envvar="SUANWANG_REPO_ROOTS", type=click.Path(file_okay=False),
              help="a directory whose local git repositories admins may register (repeatable; the variable "
              "takes a ':'-separated list)")
@click.option("--priority-cap", "priority_caps", multiple=True, envvar="SUANWANG_PRIORITY_CAPS", metavar="ROLE=N",
              help="highest priority ROLE may set (repeatable; default business=100 general=100; "
              "ROLE=none lifts a cap)")
@click.option("--retention-days", type=float, envvar="SUANWANG_RETENTION_DAYS",
              help="finished tasks older than this leave the tasks collection (default: kept)")
@click.option("--retention-mode", type=click.Choice(["archive", "delete"]), default=server_default("retention_mode"),
              show_default=True, envvar="SUANWANG_RETENTION_MODE", help="move them to tasks_archive, or delete them")
@click.option("--credits-low-threshold", type=click.FloatRange(min=0), default=server_default("credits_low_threshold"),
              show_default=True, envvar="SUANWANG_CREDITS_LOW_THRESHOLD",
              help="a credit balance under this raises one credits.low event (again after a top-up)")
def server(mongo, host, port, threads, admin_token, no_scheduler, smtp_host, smtp_port, smtp_user, smtp_password,
           smtp_tls, mail_from, metrics_token, max_data_bytes, data_quota_bytes, data_retention_days, repo_roots,
           priority_caps, retention_days, retention_mode, credits_low_threshold):
    """The control center: HTTP API, web pages and periodic jobs (one scheduler per network)."""
    import web
    from scheduler.config import ServerConfig
    from scheduler.server import serve

    from web.assets import missing_note

    def ready(srv) -> None:
        click.echo(f"serving on {srv.url}/ (API under {srv.url}/api/v1)")
        note = missing_note()
        if note:
            click.secho(note, fg="yellow", err=True)
        if srv.new_admin_token:
            click.echo(f"created user admin; its API token (shown once):\n{srv.new_admin_token}")

    data = {k: v for k, v in (("max_data_bytes", max_data_bytes), ("data_quota_bytes", data_quota_bytes),
                              ("data_retention_days", data_retention_days)) if v is not None}
    sys.exit(serve(ServerConfig(mongo_uri=mongo, host=host, port=port, threads=threads, admin_token=admin_token,
                                run_scheduler=not no_scheduler, smtp_host=smtp_host, smtp_port=smtp_port,
                                smtp_user=smtp_user, smtp_password=smtp_password, smtp_tls=smtp_tls,
                                mail_from=mail_from, metrics_token=metrics_token, **data,
                                retention_days=retention_days, retention_mode=retention_mode,
                                repo_roots=tuple(str(Path(r).expanduser().resolve()) for r in repo_roots),
                                priority_caps=_priority_caps(priority_caps),
                                credits_low_threshold=credits_low_threshold),
                 ready=ready, extensions=(web.init_app,)))


def _priority_caps(items: tuple[str, ...]) -> dict:
    """``("business=50", "general=none")`` over the defaults -> ``{"business": 50}``."""
    from scheduler.config import DEFAULT_PRIORITY_CAPS

    caps = dict(DEFAULT_PRIORITY_CAPS)
    for item in items:
        role, sep, value = item.partition("=")
        if not sep or not role:
            raise click.BadParameter(f"{item!r} is not ROLE=N", param_hint="--priority-cap")
        if value.strip().lower() == "none":
            caps.pop(role.strip(), None)
            continue
        try:
            caps[role.strip()] = int(value)
        except ValueError:
            raise click.BadParameter(f"{item!r}: N must be an integer or none", param_hint="--priority-cap") from None
    return caps


@main.command()
@mongo_option()
@click.option("--name", envvar="SUANWANG_WORKER_NAME", help="worker name (default: the hostname)")
@click.option("--tags", envvar="SUANWANG_WORKER_TAGS", default="", help="comma-separated tags, e.g. gpu,big")
@click.option("--concurrency", type=int, envvar="SUANWANG_CONCURRENCY", help="slots (default: CPU count)")
@click.option("--heartbeat", type=float, default=worker_default("heartbeat_s"), show_default=True,
              help="seconds between heartbeats")
@click.option("--cache-dir", envvar="SUANWANG_CACHE_DIR", help="function checkouts (default ~/.suanwang/cache)")
@click.option("--drain-timeout", type=float, default=worker_default("drain_timeout_s"), show_default=True,
              envvar="SUANWANG_DRAIN_TIMEOUT",
              help="seconds running attempts get to finish after SIGTERM")
@click.option("--burst", is_flag=True, help="exit when nothing is left to claim")
@click.option("--inline-result-bytes", type=int, envvar="SUANWANG_INLINE_RESULT_BYTES",
              help="JSON results larger than this go to GridFS (262144)")
@click.option("--data-cache-bytes", type=int, envvar="SUANWANG_DATA_CACHE_BYTES", help="data cache size limit (20 GiB)")
@click.option("--cpus", type=float, envvar="SUANWANG_CPUS",
              help="cores offered to tasks (default: the larger of --concurrency and the machine's cores)")
@click.option("--gpus", type=int, envvar="SUANWANG_GPUS", help="GPUs offered (default: those NVML finds)")
@click.option("--gpu-mem-gb", envvar="SUANWANG_GPU_MEM_GB",
              help="each GPU's memory in GB, comma-separated (default: read by NVML)")
@click.option("--max-temp", "max_temp_c", type=float, envvar="SUANWANG_MAX_TEMP_C",
              help="no new claims while a CPU or GPU is at or above this many °C")
@click.option("--prefetch", type=int, default=worker_default("prefetch"), show_default=True,
              envvar="SUANWANG_PREFETCH",
              help="most tasks a slot claims at once when their function is measured as short (1: one at a time)")
def worker(mongo, name, tags, concurrency, heartbeat, cache_dir, drain_timeout, burst, inline_result_bytes,
           data_cache_bytes, cpus, gpus, gpu_mem_gb, max_temp_c, prefetch):
    """A worker daemon: claims tasks from MongoDB and runs them in child processes."""
    from worker.config import WorkerConfig
    from worker.daemon import run_worker

    options = {"mongo_uri": mongo, "tags": tuple(t.strip() for t in tags.split(",") if t.strip()),
               "heartbeat_s": heartbeat, "drain_timeout_s": drain_timeout, "burst": burst, "prefetch": prefetch}
    if name:
        options["name"] = name
    if concurrency:
        options["concurrency"] = concurrency
    if cache_dir:
        options["cache_dir"] = cache_dir
    if gpu_mem_gb:
        try:
            options["gpu_mem_gb"] = tuple(float(x) for x in gpu_mem_gb.split(",") if x.strip())
        except ValueError:
            raise click.BadParameter(f"{gpu_mem_gb!r} is not a comma-separated list of numbers",
                                     param_hint="--gpu-mem-gb") from None
    for key, value in (("inline_result_bytes", inline_result_bytes), ("data_cache_bytes", data_cache_bytes),
                       ("cpus", cpus), ("gpus", gpus), ("max_temp_c", max_temp_c)):
        if value is not None:
            options[key] = value
    sys.exit(run_worker(WorkerConfig(**options)) or 0)



@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("function", required=False)
@click.argument("args", nargs=-1)
@click.option("--service", help="call this service (its deployed version) instead of FUNCTION; ARGS follow")
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
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="with --wait: save the result to this file")
@api_options
def submit(function, args, service, kwargs, fn_version, priority, redundancy, quorum, timeout_s, max_retries, gpus, tags,
           disabled, wait, output, server_url, token, data_dir):
    """Publish a task: FUNCTION [ARGS...] (each ARG is JSON if it parses, else a string).

    Example: suanwang submit echo '{"x": 1}' --wait
    """
    body = task_call(function, args, service, kwargs)
    for key, value in (("version", fn_version), ("priority", priority), ("redundancy", redundancy),
                       ("quorum", quorum), ("timeout_s", timeout_s), ("max_retries", max_retries)):
        if value is not None:
            body[key] = value
    if gpus is not None or tags:
        body["requires"] = {"gpus": gpus or 0, "tags": [t for t in (tags or "").split(",") if t]}
    if disabled:
        body["is_enabled"] = False
    client = api_client(server_url, token, data_dir)
    task = client.post("/tasks", body)
    if not wait:
        click.echo(json.dumps({"id": task["id"], "status": task["status"]}))
        return
    final = client.wait(task["id"])
    if final["status"] == "succeeded" and (output or final.get("result_ref")):
        from suanwang.cli_data import save_result

        save_result(client, final, output)
    else:
        click.echo(json.dumps(final.get("result"), indent=2, default=str) if final["status"] == "succeeded"
                   else json.dumps({"status": final["status"], "reason": final.get("reason"),
                                    "error": final.get("error")}, indent=2, default=str))
    sys.exit(0 if final["status"] == "succeeded" else 1)


@main.command()
@api_options
def status(server_url, token, data_dir):
    """Queues, workers and their resources, at a glance."""
    from suanwang.display import show_status

    client = api_client(server_url, token, data_dir)
    show_status(client.get("/stats"), client.get("/workers"))


@main.group()
def user():
    """Users and their tokens, through the server's API (an admin's token)."""


@user.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["admin", "super", "business", "general"]), required=True)
@click.option("--password", help="for the web pages (prompted when given as '-')")
@click.option("--mongo", "mongo", help="create the FIRST admin straight in this database (no server, no token; "
              "refused once the database has an admin)")
@api_options
def user_add(name, role, password, mongo, server_url, token, data_dir):
    """Create a user; prints its API token once.

    Example: suanwang user add ann --role super --password -
    """
    if password == "-":
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    if mongo:
        new_token = _first_admin(mongo, name, role, password)
    else:
        body = {"name": name, "role": role, **({"password": password} if password else {})}
        new_token = api_client(server_url, token, data_dir).post("/users", body)["token"]
    click.echo(f"user {name} ({role}) created; API token (shown once):\n{new_token}")


def _first_admin(mongo: str, name: str, role: str, password: str | None) -> str:
    """The one thing done without the server: an admin for a database that has none."""
    from fsm.errors import Forbidden
    from fsm.store import Store

    if role != "admin":
        raise Forbidden("--mongo only creates the first admin (--role admin); create other users through the "
                        "server with an admin's token (drop --mongo)")
    store = Store.connect(mongo)
    try:
        if any(u.get("role") == "admin" for u in store.users.list()):
            raise Forbidden("this database already has an admin: create users through the server with an "
                            "admin's token (drop --mongo)")
        return store.users.add(name, role, password)
    finally:
        store.close()


@user.command("list")
@api_options
def user_list(server_url, token, data_dir):
    """List users and roles (admin)."""
    for u in api_client(server_url, token, data_dir).get("/users")["items"]:
        click.echo(f"{u['name']:<24} {u['role']}")


def _mount_optional() -> None:
    """Command groups that live beside their feature (registry, schedules)."""
    try:
        from suanwang.cli_registry import function_group, repo_group

        main.add_command(function_group, "function")
        main.add_command(repo_group, "repo")
    except ImportError:
        pass
    from suanwang.cli_why import why

    main.add_command(why, "why")
    from suanwang.cli_services import group_group, service_group

    main.add_command(service_group, "service")
    main.add_command(group_group, "group")
    try:
        from suanwang.cli_schedule import schedule_group

        main.add_command(schedule_group, "schedule")
    except ImportError:
        pass
    from suanwang.cli_data import data_group

    main.add_command(data_group, "data")
    from suanwang.cli_tokens import token_group

    main.add_command(token_group, "token")
    from suanwang.cli_credits import credits_group

    main.add_command(credits_group, "credits")
    from suanwang.cli_quotas import quota_group

    main.add_command(quota_group, "quota")


_mount_optional()

if __name__ == "__main__":  # pragma: no cover
    main()
