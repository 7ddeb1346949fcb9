"""``suanwang why ID``: why a task is not running (the API's /tasks/<id>/explain, as a table)."""
from __future__ import annotations

import json

import click

from suanwang.cli_common import api_client, api_options


@click.command("why")
@click.argument("task_id")
@click.option("--json", "as_json", is_flag=True, help="print the API's answer as JSON")
@api_options
def why(task_id, as_json, server_url, token, data_dir):
    """Why task TASK_ID waits: which workers could take it, why the others cannot, what is ahead."""
    from rich.console import Console
    from rich.table import Table

    answer = api_client(server_url, token, data_dir).get(f"/tasks/{task_id}/explain")
    if as_json:
        click.echo(json.dumps(answer, indent=2, default=str))
        return
    console = Console()
    console.print(f"[bold]{answer['id']}[/bold] is {answer['status']}: {answer['summary']}")
    for warning in answer.get("warnings", []):
        console.print(f"[yellow]warning:[/yellow] {warning}")
    if answer["workers"]:
        table = Table("worker", "host", "state", "free slots", "can run it", "why not")
        for w in answer["workers"]:
            table.add_row(w["name"], w.get("host") or "", w["state"], str(w["free_slots"]),
                          "yes" if w["can_run"] else "no", "; ".join(w["why_not"]))
        console.print(table)
