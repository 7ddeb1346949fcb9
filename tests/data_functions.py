"""Task functions of the data tests (``tests.data_functions:NAME``), run in executor children."""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path


def checksum(path, label="x"):
    """What the function saw: a Path to a read-only local file, and its sha256."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for piece in iter(lambda: f.read(1 << 20), b""):
            digest.update(piece)
    return {"is_path": isinstance(path, Path), "sha256": digest.hexdigest(), "size": os.path.getsize(path),
            "mode": os.stat(path).st_mode & 0o777, "label": label}


def checksum_slowly(path, seconds=60.0):
    time.sleep(seconds)
    return checksum(path)


def big_json(mb):
    """A JSON result of about ``mb`` MB (the same for every attempt)."""
    return {"rows": [f"{i:08d}" + "x" * 1016 for i in range(mb * 1024)]}


def write_file(mb, name="out.bin"):
    """Write ``mb`` MB into the attempt's working directory and return its Path."""
    block = hashlib.sha256(name.encode()).digest() * (1 << 15)  # 1 MiB, deterministic
    with open(name, "wb") as f:
        for _ in range(mb):
            f.write(block)
    return Path(name)


def outside_path():
    return Path("/etc/hostname")


def give_up():
    from suanwang import Permanent

    raise Permanent("the input is malformed; retrying will not help")


def two_args(a, b):
    return a + b


def size_of(path):
    """Only look at the file, and say when the function started (the benchmark times the fetch)."""
    print(f"started_at={time.time()}")
    return os.path.getsize(path)


def write_file_timed(mb, name="out.bin"):
    """``write_file``, saying when the file was written (the benchmark times the upload)."""
    result = write_file(mb, name)
    print(f"written_at={time.time()}")
    return result
