"""Tables for `suanwang status` (rich)."""
from __future__ import annotations

from rich.console import Console
from rich.table import Table


def _pct(value) -> str:
    return "-" if value is None else f"{value:.0f}%"


def show_status(stats: dict, workers: dict) -> None:
    console = Console()
    queues = Table(title="Tasks")
    for column in ("status", "count"):
        queues.add_column(column)
    for name, count in (stats.get("counts") or {}).items():
        queues.add_row(name, str(count))
    console.print(queues)
    extra = {k: v for k, v in stats.items() if k not in ("counts",) and not isinstance(v, (dict, list))}
    if extra:
        console.print("  ".join(f"{k}: {v}" for k, v in extra.items()))

    table = Table(title="Workers")
    for column in ("name", "host", "state", "slots", "running", "cpu", "mem", "load", "gpus"):
        table.add_column(column)
    for w in workers.get("items", []):
        gpus = w.get("gpus") or []
        gpu_text = ", ".join(f"#{g.get('index')} {g.get('util', 0)}% {g.get('temp', '-')}°C" for g in gpus) \
            if gpus else (w.get("gpu_note") and "none") or "none"
        load = w.get("load") or []
        table.add_row(w.get("name") or w.get("_id") or "?", str(w.get("host", "")), str(w.get("state", "")),
                      str(w.get("concurrency", "")), str(len(w.get("running") or [])),
                      _pct((w.get("cpu") or {}).get("percent")), _pct((w.get("mem") or {}).get("percent")),
                      f"{load[0]:.2f}" if load else "-", gpu_text)
    console.print(table)
    service_map = stats.get("service_map")
    if service_map:
        smap = Table(title="Service map (function -> workers)")
        smap.add_column("function")
        smap.add_column("workers")
        for fn, names in service_map.items():
            smap.add_row(fn, ", ".join(names))
        console.print(smap)
