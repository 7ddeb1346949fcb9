"""``suanwang schedule add|list|show|pause|resume|remove``: schedules through the HTTP API.

Like ``suanwang submit``, these commands call the server (``--server-url``, ``--token``), so
roles are enforced per user and the leading server picks a change up within seconds.
"""
from __future__ import annotations

import json

import click

from suanwang.cli_common import Group, action_command, api_client, api_options, task_call

_client = api_client


def _duration(text: str) -> float:
    """``90``, ``90s``, ``5m``, ``2h``, ``1d`` -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    try:
        if text and text[-1] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a duration such as 30s, 5m, 2h, 1d") from None


def _line(s: dict) -> str:
    trig = s["trigger"]
    what = {"cron": lambda: " ".join(f"{k}={trig[k]}" for k in ("second", "minute", "hour", "day", "month",
                                                                  "day_of_week", "week", "year") if k in trig),
            "interval": lambda: "every " + " ".join(f"{trig[k]}{k[0]}" for k in ("weeks", "days", "hours", "minutes",
                                                                                 "seconds") if k in trig),
            "date": lambda: f"at {trig.get('run_date')}"}[trig["type"]]()
    state = "paused" if s.get("paused") else f"next {s.get('next_run_time') or '-'}"
    return (f"{s['id']:<24} {trig['type']:<8} {what} ({trig.get('timezone', 'UTC')})  "
            f"{_what_runs(s['task'])}  {state}  fired {s.get('fired', 0)}")


def _what_runs(task: dict) -> str:
    return task["function"] if "function" in task else f"service {task.get('service')}"


@click.group("schedule", cls=Group)
def schedule_group():
    """Cron, interval and one-off schedules that publish a task each time they fire."""


@schedule_group.command("add", context_settings={"ignore_unknown_options": True})
@click.argument("function", required=False)
@click.argument("args", nargs=-1)
@click.option("--service", help="call this service (its deployed version at each firing) instead of FUNCTION; "
                                "ARGS follow")
@click.option("--cron", help="crontab: 'm h dom mon dow', or 6 fields with seconds first")
@click.option("--every", help="an interval: 30s, 5m, 2h, 1d")
@click.option("--at", "run_at", help="one run at this ISO 8601 time")
@click.option("--tz", "tz", default="UTC", show_default=True, help="time zone of the trigger (IANA name)")
@click.option("--id", "schedule_id", help="a name for the schedule (default: generated)")
@click.option("--kwarg", "-k", "kwargs", multiple=True, metavar="NAME=VALUE", help="keyword argument (JSON value)")
@click.option("--version", "fn_version", help="function version (default: the newest at each firing)")
@click.option("--priority", type=int)
@click.option("--gpus", type=int, help="GPUs a worker must have")
@click.option("--tags", help="comma-separated tags a worker must have")
@click.option("--misfire-grace", type=int, help="seconds a late firing still runs (default 60)")
@click.option("--no-coalesce", is_flag=True, help="run every missed firing, not just the last")
@click.option("--paused", is_flag=True, help="create it paused")
@api_options
def add(function, args, service, cron, every, run_at, tz, schedule_id, kwargs, fn_version, priority, gpus, tags,
        misfire_grace, no_coalesce, paused, server_url, token, data_dir):
    """Schedule FUNCTION [ARGS...] (each ARG is JSON if it parses, else a string), or --service NAME [ARGS...].

    Example: suanwang schedule add echo '"hello"' --cron '0 3 * * *' --tz Asia/Shanghai --id nightly
    """
    given = [name for name, value in (("--cron", cron), ("--every", every), ("--at", run_at)) if value]
    if len(given) != 1:
        raise click.UsageError("give exactly one of --cron, --every, --at")
    task = task_call(function, args, service, kwargs)
    if fn_version:
        task["version"] = fn_version
    if priority is not None:
        task["priority"] = priority
    if gpus is not None or tags:
        task["requires"] = {"gpus": gpus or 0, "tags": [t for t in (tags or "").split(",") if t]}
    body: dict = {"task": task, "timezone": tz}
    if cron:
        body["cron"] = cron
    elif every:
        body["interval_s"] = _duration(every)
    else:
        body["run_at"] = run_at
    if schedule_id:
        body["id"] = schedule_id
    if misfire_grace is not None:
        body["misfire_grace_s"] = misfire_grace
    if no_coalesce:
        body["coalesce"] = False
    if paused:
        body["paused"] = True
    created = _client(server_url, token, data_dir).post("/schedules", body)
    click.echo(_line(created))


@schedule_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@api_options
def list_(as_json, server_url, token, data_dir):
    """Schedules you can see, with their next run time."""
    page = _client(server_url, token, data_dir).get("/schedules?limit=500")
    if as_json:
        click.echo(json.dumps(page["items"], indent=2, default=str))
        return
    if not page["items"]:
        click.echo("no schedules")
    for item in page["items"]:
        click.echo(_line(item))


@schedule_group.command("show")
@click.argument("schedule_id")
@api_options
def show(schedule_id, server_url, token, data_dir):
    """One schedule as JSON, with its recent tasks."""
    click.echo(json.dumps(_client(server_url, token, data_dir).get(f"/schedules/{schedule_id}"), indent=2,
                          default=str))


pause = action_command(schedule_group, "pause", "/schedules/{}/pause", _line,
                       "Stop a schedule firing until it is resumed (missed firings are not caught up).",
                       argument="schedule_id")
resume = action_command(schedule_group, "resume", "/schedules/{}/resume", _line, "Let a paused schedule fire again.",
                        argument="schedule_id")


@schedule_group.command("remove")
@click.argument("schedule_id")
@api_options
def remove(schedule_id, server_url, token, data_dir):
    """Delete a schedule (the tasks it created stay)."""
    _client(server_url, token, data_dir)._call("DELETE", f"/schedules/{schedule_id}")
    click.echo(f"schedule {schedule_id} removed")
