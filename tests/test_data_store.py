"""The GridFS data store on a real mongod: streamed uploads, ranges, nothing half stored."""
from __future__ import annotations

import hashlib
import io
import os

import pytest

from fsm.errors import ChecksumMismatch, DataNotFound, PayloadTooLarge, QuotaExceeded
from fsm.store.data import CHUNK_BYTES


class Broken(io.RawIOBase):
    """A stream that fails after ``after`` bytes, like a client cut off half-way."""

    def __init__(self, data: bytes, after: int):
        self.data, self.after, self.pos = data, after, 0

    def read(self, n=-1):
        if self.pos >= self.after:
            raise ConnectionResetError("client went away")
        piece = self.data[self.pos:self.pos + min(n, self.after - self.pos)]
        self.pos += len(piece)
        return piece


def test_upload_download_range(store):
    data = os.urandom(3 * CHUNK_BYTES + 123)
    meta = store.data.upload(io.BytesIO(data), name="blob.bin", owner="ann")
    assert meta["size"] == len(data) and meta["sha256"] == hashlib.sha256(data).hexdigest()
    assert meta["owner"] == "ann" and meta["name"] == "blob.bin"
    assert store.data.get(meta["id"]) == meta
    assert b"".join(store.data.read(meta["id"])) == data
    start, end = CHUNK_BYTES - 10, 2 * CHUNK_BYTES + 7
    assert b"".join(store.data.read(meta["id"], start, end)) == data[start:end]
    assert store.data.usage("ann") == len(data)


def test_mismatch_and_cut_off_leave_nothing(store):
    data = os.urandom(2 * CHUNK_BYTES + 5)
    with pytest.raises(ChecksumMismatch):
        store.data.upload(io.BytesIO(data), name="x", owner="ann", expected_sha256="0" * 64)
    with pytest.raises(ConnectionResetError):
        store.data.upload(Broken(data, CHUNK_BYTES + 3), name="x", owner="ann")
    with pytest.raises(PayloadTooLarge):
        store.data.upload(io.BytesIO(data), name="x", owner="ann", max_bytes=CHUNK_BYTES)
    with pytest.raises(QuotaExceeded):
        store.data.upload(io.BytesIO(data), name="x", owner="ann", quota_left=10)
    assert store.data.files.count_documents({}) == 0
    assert store.data.chunks.count_documents({}) == 0


def test_orphans_swept_and_unknown_ids(store):
    grid_in = store.data.bucket.open_upload_stream("killed")  # a process killed mid-upload: chunks only
    grid_in.write(os.urandom(CHUNK_BYTES * 2))
    grid_in._flush_buffer(force=True)
    assert store.data.chunks.count_documents({}) >= 1
    assert store.data.sweep_orphans(older_than_s=3600) == 0  # too young
    assert store.data.sweep_orphans(older_than_s=-5) >= 1
    assert store.data.chunks.count_documents({}) == 0
    for bad in ("nope", "0" * 24):
        with pytest.raises(DataNotFound):
            store.data.get(bad)
        with pytest.raises(DataNotFound):
            store.data.read(bad)


def test_retention_keeps_what_tasks_use(store):
    from datetime import datetime, timedelta, timezone

    from fsm.store.spec import validate
    from scheduler.service_data import retention

    used = store.data.put_bytes(b"input", name="used", owner="ann")
    result = store.data.put_bytes(b"result", name="result", owner="ann")
    stray = store.data.put_bytes(b"stray", name="stray", owner="ann")
    fresh = store.data.put_bytes(b"fresh", name="fresh", owner="ann")
    doc = store.tasks.document(validate({"function": "echo", "args": [{"__data__": used["id"]}]}), "ann")
    done = store.tasks.document(validate({"function": "echo"}), "ann")
    from fsm.store import Claimant

    store.tasks.insert([done])  # a task whose result is stored in GridFS, run for real
    claim = store.tasks.claim_next(Claimant("w"))
    store.tasks.finish_attempt(claim.task_id, claim.attempt_id, "succeeded", worker="w", result_ref={
        "id": result["id"], "size": 6, "sha256": result["sha256"], "content_type": "application/octet-stream"})
    store.tasks.insert([dict(doc, data_refs=[used["id"]])])
    old = datetime.now(timezone.utc) - timedelta(days=40)
    store.data.files.update_many({"_id": {"$ne": store.data.files.find_one({"filename": "fresh"})["_id"]}},
                                 {"$set": {"uploadDate": old}})
    done_now = retention(store, max_age_s=30 * 86400)
    assert done_now["expired"] == [stray["id"]]
    assert {m["name"] for m in store.data.page()[0]} == {"used", "result", "fresh"}
    assert fresh["id"] not in done_now["expired"]
