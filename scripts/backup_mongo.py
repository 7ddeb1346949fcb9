#!/usr/bin/env python3
"""A consistent copy of a MongoDB data directory, taken under ``fsyncLock`` (docs/OPERATIONS.md).

    .venv/bin/python scripts/backup_mongo.py --mongo URI --db-path ~/.suanwang/db --to /backup/suanwang-2026-12-01

The node is flushed and locked against writes (``fsync`` with ``lock: true``) while the files are
copied, then unlocked, also when the copy fails. Writes wait (they are not refused) during the
copy, so on a busy network copy from a secondary instead (``--mongo`` naming that member with
``directConnection=true``). Prints what it copied and for how long the node was locked.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from pymongo import MongoClient

#: Not part of the data: mongod recreates them (the lock file of a locked node would make a
#: restored copy look like a crashed one, which WiredTiger recovers from anyway; skip it).
SKIP = shutil.ignore_patterns("mongod.lock", "diagnostic.data", "mongod.log*")


def backup(uri: str, db_path: Path, dest: Path) -> tuple[int, float]:
    """Copy ``db_path`` to ``dest`` with the node at ``uri`` fsync-locked; returns (bytes, locked seconds)."""
    if dest.exists():
        raise SystemExit(f"error: {dest} exists; give a new directory")
    if not (db_path / "WiredTiger").exists():
        raise SystemExit(f"error: {db_path} is not a mongod data directory (no WiredTiger file)")
    client = MongoClient(uri, serverSelectionTimeoutMS=10_000)
    try:
        client.admin.command("fsync", lock=True)
        started = time.monotonic()
        try:
            shutil.copytree(db_path, dest, ignore=SKIP)
        finally:
            client.admin.command("fsyncUnlock")
        locked = time.monotonic() - started
    finally:
        client.close()
    size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    return size, locked


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mongo", required=True, help="URI of the node whose files are copied")
    parser.add_argument("--db-path", required=True, type=Path, help="that node's --dbpath")
    parser.add_argument("--to", required=True, type=Path, help="a new directory for the copy")
    args = parser.parse_args(argv)
    size, locked = backup(args.mongo, args.db_path.expanduser(), args.to.expanduser())
    print(f"backed up {args.db_path} to {args.to}: {size / 1e6:.1f} MB; writes waited {locked:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
