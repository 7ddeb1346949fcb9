"""A throw-away database for the benchmarks: an embedded mongod in a temporary folder."""
from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fsm.store import Store, database  # noqa: E402
from fsm.store.embedded import EmbeddedMongo  # noqa: E402


@contextlib.contextmanager
def scratch_store(name: str) -> Iterator[tuple[Store, str]]:
    """A ``Store`` on database ``name`` of a fresh mongod, and that mongod's URI; all gone afterwards."""
    folder = tempfile.mkdtemp(prefix=f"suanwang-{name}-")
    mongo = EmbeddedMongo(folder)
    uri = mongo.start()
    store = Store(database(uri, name))
    try:
        yield store, uri
    finally:
        store.close()
        mongo.stop()
        shutil.rmtree(folder, ignore_errors=True)
