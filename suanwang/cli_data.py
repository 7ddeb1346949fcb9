"""``suanwang data put|get|ls|rm``: data objects through the HTTP API, with progress bars."""
from __future__ import annotations

import json
from pathlib import Path

import click

from suanwang import settings
from suanwang.cli_common import Group, api_options


def _client(server_url: str, token: str | None, data_dir: str):
    from suanwang.client import Client

    return Client(server_url, token or settings.read_token(data_dir))


def progress_bar(total: int | None, what: str):
    """A rich progress bar on stderr; returns (context manager, advance(n), reset())."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    bar = Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                   TimeRemainingColumn(), console=Console(stderr=True))
    task = bar.add_task(what, total=total)
    return bar, (lambda n: bar.advance(task, n)), (lambda: bar.reset(task))


@click.group("data", cls=Group)
def data_group():
    """Data objects (inputs, data sets, models) stored in MongoDB's GridFS.

    Pass one to a task as {"__data__": "ID"}: the function receives a local pathlib.Path.
    """


@data_group.command("put")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", help="the object's name (default: the file's name)")
@api_options
def put(file, name, server_url, token, data_dir):
    """Upload FILE; prints the new object's id."""
    from suanwang.transfer import upload

    client = _client(server_url, token, data_dir)
    bar, advance, reset = progress_bar(file.stat().st_size, f"upload {file.name}")
    with bar:
        meta = upload(client, file, name, advance, reset)
    click.echo(meta["id"])


@data_group.command("get")
@click.argument("data_id", metavar="ID")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="where to save it (default: its name, in this directory)")
@api_options
def get(data_id, output, server_url, token, data_dir):
    """Download object ID (sha256 verified); prints where it was saved."""
    from suanwang.transfer import download

    client = _client(server_url, token, data_dir)
    meta = client.get(f"/data/{data_id}")
    target = output or Path(Path(meta["name"] or data_id).name)
    bar, advance, _ = progress_bar(meta["size"], f"download {target.name}")
    with bar:
        got = download(client, f"/data/{data_id}/content", target, advance, meta["sha256"])
    click.echo(f"saved {got['path']} ({got['size']} bytes, sha256 {got['sha256']})")


@data_group.command("ls")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print the JSON answer")
@api_options
def ls(limit, as_json, server_url, token, data_dir):
    """List the data objects you may see, newest first."""
    page = _client(server_url, token, data_dir).get(f"/data?limit={limit}")
    if as_json:
        click.echo(json.dumps(page, indent=2))
        return
    for item in page["items"]:
        click.echo(f"{item['id']}  {item['size']:>14,}  {item['owner']:<16} {item['created_at'][:19]}  {item['name']}")
    click.echo(f"{len(page['items'])} of {page['total']} object(s)", err=True)


@data_group.command("rm")
@click.argument("data_id", metavar="ID")
@api_options
def rm(data_id, server_url, token, data_dir):
    """Delete object ID (refused while a live task uses it)."""
    _client(server_url, token, data_dir).delete(f"/data/{data_id}")
    click.echo(f"deleted {data_id}")


def save_result(client, task: dict, output: str | None) -> None:
    """``submit --wait``: a stored (large) result, or any result given ``-o``, goes to a file."""
    from suanwang.transfer import download

    ref = task.get("result_ref") or {}
    if output:
        target = Path(output)
    else:
        suffix = ".json" if ref.get("content_type") == "application/json" else ".bin"
        target = Path(f"result-{task['id']}{suffix}")
    if not ref:
        target.write_text(json.dumps(task.get("result"), indent=2, default=str) + "\n")
        click.echo(f"result saved to {target}")
        return
    bar, advance, _ = progress_bar(ref.get("size"), f"result {task['id']}")
    with bar:
        got = download(client, f"/tasks/{task['id']}/result", target, advance, ref.get("sha256"))
    click.echo(f"result ({got['size']} bytes, sha256 {got['sha256']}) saved to {got['path']}")
