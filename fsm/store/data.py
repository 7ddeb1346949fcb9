"""Data objects (inputs, data sets, large results) on MongoDB's GridFS, streamed both ways.

Bucket ``data``: ``data.files`` holds one document per complete object, ``data.chunks`` its
bytes in ``CHUNK_BYTES`` pieces. GridFS writes the files document only when an upload is
closed, so an object is visible only once all its bytes are stored and its sha256 checked;
an aborted or refused upload deletes its chunks, and chunks left by a process killed
mid-upload (no files document) are swept by ``sweep_orphans``.

``data.files`` fields: ``_id`` (ObjectId; its string is the data id), ``filename`` (the
name), ``length``, ``chunkSize``, ``uploadDate`` and ``metadata`` {owner, sha256,
content_type, task_id (set for a task's result), attempt_id}.
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from typing import IO, Any, Iterator

import gridfs.synchronous.grid_file as _grid_file
from bson import ObjectId
from bson.errors import InvalidId
from gridfs import GridFSBucket
from gridfs.errors import CorruptGridFile, NoFile
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.errors import AutoReconnect, ConnectionFailure, CursorNotFound
from pymongo.database import Database

from fsm.errors import ChecksumMismatch, DataNotFound, PayloadTooLarge, QuotaExceeded

BUCKET = "data"
#: Bytes per GridFS chunk (and per piece read from an upload stream).
CHUNK_BYTES = 1 << 20
#: Chunks fetched per round trip by a download (memory per download: this many chunks).
READ_BATCH = 4
OCTET = "application/octet-stream"
#: Task fields that refer to data objects (indexed): what retention and delete look at.
REFERRING_FIELDS = ("data_refs", "result_ref.id", "attempts.result_ref.id")
#: Bytes of chunks an upload sends per insert. pymongo batches up to 48 MB (twice that in
#: memory while it encodes the batch); 8 MB keeps an upload's memory small and is as fast.
UPLOAD_BATCH_BYTES = 8 << 20
if getattr(_grid_file, "_UPLOAD_BUFFER_SIZE", 0) > UPLOAD_BATCH_BYTES:
    _grid_file._UPLOAD_BUFFER_SIZE = UPLOAD_BATCH_BYTES
#: Errors after which a whole upload or download is worth trying again (mongod restarting).
TRANSIENT_ERRORS = (AutoReconnect, ConnectionFailure, CorruptGridFile)


def object_id(data_id: Any) -> ObjectId:
    """The ObjectId of a data id, or ``DataNotFound`` for anything that cannot be one."""
    if isinstance(data_id, ObjectId):
        return data_id
    try:
        return ObjectId(str(data_id))
    except (InvalidId, TypeError):
        raise DataNotFound(f"no data object with id {data_id!r}", id=str(data_id)) from None


def view(doc: dict) -> dict:
    """A files document as callers see it."""
    meta = doc.get("metadata") or {}
    out = {"id": str(doc["_id"]), "name": doc.get("filename"), "size": doc["length"], "sha256": meta.get("sha256"),
           "owner": meta.get("owner"), "content_type": meta.get("content_type", OCTET),
           "created_at": doc["uploadDate"].replace(tzinfo=doc["uploadDate"].tzinfo or timezone.utc)}
    if meta.get("task_id"):
        out["task_id"] = meta["task_id"]
    return out


class DataStore:
    """Verbs over the ``data`` GridFS bucket."""

    def __init__(self, db: Database):
        self.db = db
        self.bucket = GridFSBucket(db, bucket_name=BUCKET, chunk_size_bytes=CHUNK_BYTES)
        self.files = db[f"{BUCKET}.files"]
        self.chunks = db[f"{BUCKET}.chunks"]

    def ensure_indexes(self) -> None:
        self.files.create_indexes([
            IndexModel([("metadata.owner", ASCENDING), ("uploadDate", DESCENDING)], name="owner_uploaded"),
            IndexModel([("uploadDate", DESCENDING)], name="uploaded"),
            IndexModel([("filename", ASCENDING), ("uploadDate", ASCENDING)], name="filename_1_uploadDate_1")])
        self.chunks.create_indexes([IndexModel([("files_id", ASCENDING), ("n", ASCENDING)], unique=True,
                                               name="files_id_1_n_1")])
        self.db.tasks.create_indexes([IndexModel([(f, ASCENDING)], name=f"ref_{f}", sparse=True)
                                      for f in REFERRING_FIELDS])

    # ---------------------------------------------------------------- upload
    def upload(self, source: IO[bytes], *, name: str, owner: str, content_type: str = OCTET,
               expected_sha256: str | None = None, max_bytes: int | None = None, quota_left: int | None = None,
               task_id: str | None = None, attempt_id: str | None = None) -> dict:
        """Stream ``source`` (anything with ``read(n)``) into a new object; returns its view.

        The sha256 is computed as the bytes go by. Past ``max_bytes`` (``PayloadTooLarge``) or
        ``quota_left`` (``QuotaExceeded``), on a sha256 other than ``expected_sha256``
        (``ChecksumMismatch``) or on any error while reading or writing, the chunks written so
        far are deleted and nothing becomes visible.
        """
        grid_in = self.bucket.open_upload_stream(name, chunk_size_bytes=CHUNK_BYTES)
        digest, size = hashlib.sha256(), 0
        try:
            while True:
                piece = source.read(CHUNK_BYTES)
                if not piece:
                    break
                size += len(piece)
                if max_bytes is not None and size > max_bytes:
                    raise PayloadTooLarge(f"the data is larger than the limit of {max_bytes} bytes", limit=max_bytes)
                if quota_left is not None and size > quota_left:
                    raise QuotaExceeded(f"storing this would exceed {owner}'s storage quota "
                                        f"({max(quota_left, 0)} bytes left)", owner=owner)
                digest.update(piece)
                grid_in.write(piece)
            sha256 = digest.hexdigest()
            if expected_sha256 is not None and expected_sha256.lower() != sha256:
                raise ChecksumMismatch(f"the body's sha256 is {sha256}, not {expected_sha256} as "
                                       "X-Content-SHA256 says; nothing was stored", sha256=sha256)
            meta = {"owner": owner, "sha256": sha256, "content_type": content_type or OCTET}
            if task_id:
                meta.update(task_id=task_id, attempt_id=attempt_id)
            grid_in.metadata = meta
            grid_in.close()
        except BaseException:
            try:
                grid_in.abort()
            except Exception:  # noqa: BLE001 - MongoDB away: the orphan chunks are swept later
                pass
            raise
        return self.get(grid_in._id)

    def put_bytes(self, data: bytes, **kwargs) -> dict:
        import io

        return self.upload(io.BytesIO(data), **kwargs)

    # --------------------------------------------------------------- reads
    def get(self, data_id: Any) -> dict:
        """The view of one object (``DataNotFound`` when there is none)."""
        doc = self.files.find_one({"_id": object_id(data_id)})
        if doc is None:
            raise DataNotFound(f"no data object with id {str(data_id)!r}", id=str(data_id))
        return view(doc)

    def find(self, ids: list[str]) -> dict[str, dict]:
        """Views of those objects that exist, by id (one round trip)."""
        oids = [object_id(i) for i in ids]
        return {str(d["_id"]): view(d) for d in self.files.find({"_id": {"$in": oids}})}

    def page(self, owner: str | None = None, *, skip: int = 0, limit: int = 50, name: str | None = None
             ) -> tuple[list[dict], int]:
        query: dict[str, Any] = {}
        if owner is not None:
            query["metadata.owner"] = owner
        if name is not None:
            query["filename"] = name
        docs = self.files.find(query).sort([("uploadDate", -1), ("_id", -1)]).skip(skip).limit(limit)
        return [view(d) for d in docs], self.files.count_documents(query)

    def usage(self, owner: str) -> int:
        """Bytes stored by ``owner``."""
        rows = list(self.files.aggregate([{"$match": {"metadata.owner": owner}},
                                          {"$group": {"_id": None, "bytes": {"$sum": "$length"}}}]))
        return int(rows[0]["bytes"]) if rows else 0

    def read(self, data_id: Any, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The bytes ``[start, end)`` of an object, as pieces of at most one chunk.

        The object is looked up (and ``DataNotFound`` raised) before the first piece is asked
        for. The chunks are read straight from ``data.chunks`` (``READ_BATCH`` per round trip)
        and handed on as the very ``bytes`` the driver decoded: no copy between MongoDB and the
        caller, a quarter less CPU per byte than ``GridOut.read``. A missing or short chunk raises
        ``CorruptGridFile`` as GridFS does; a cursor that timed out between two pieces (a slow
        reader) is reopened where it stopped.
        """
        doc = self.files.find_one({"_id": object_id(data_id)}, {"length": 1, "chunkSize": 1})
        if doc is None:
            raise DataNotFound(f"no data object with id {str(data_id)!r}", id=str(data_id))
        length, chunk_size = int(doc["length"]), int(doc["chunkSize"])
        end = length if end is None else min(end, length)
        return self._pieces(doc["_id"], length, chunk_size, max(start, 0), end)

    def _pieces(self, files_id: ObjectId, length: int, chunk_size: int, start: int, end: int) -> Iterator[bytes]:
        if start >= end:
            return
        n, last = start // chunk_size, (end - 1) // chunk_size
        cursor = None
        try:
            while n <= last:
                if cursor is None:
                    cursor = self.chunks.find({"files_id": files_id, "n": {"$gte": n, "$lte": last}},
                                              {"_id": 0, "n": 1, "data": 1}, sort=[("n", ASCENDING)],
                                              batch_size=READ_BATCH)
                try:
                    chunk = next(cursor)
                except StopIteration:
                    raise CorruptGridFile(f"data {files_id}: no chunk #{n}") from None
                except CursorNotFound:
                    cursor.close()
                    cursor = None
                    continue
                data = chunk["data"]
                expected = min(chunk_size, length - n * chunk_size)
                if chunk["n"] != n or len(data) != expected:
                    raise CorruptGridFile(f"data {files_id}: expected chunk #{n} of {expected} bytes, found "
                                          f"#{chunk['n']} of {len(data)}")
                offset = n * chunk_size
                if start > offset or end < offset + expected:  # the edges of a range
                    data = data[max(start - offset, 0):end - offset]
                n += 1
                yield data
        finally:
            if cursor is not None:
                cursor.close()

    # ------------------------------------------------------------- removal
    def referenced(self, data_id: str, statuses: list[str] | None = None) -> list[str]:
        """Ids of tasks (in ``statuses``, or any) that refer to this object (at most 10)."""
        query: dict[str, Any] = {"$or": [{f: data_id} for f in REFERRING_FIELDS]}
        if statuses is not None:
            query["status"] = {"$in": statuses}
        return [d["_id"] for d in self.db.tasks.find(query, {"_id": 1}).limit(10)]

    def delete(self, data_id: Any) -> None:
        try:
            self.bucket.delete(object_id(data_id))
        except NoFile:
            raise DataNotFound(f"no data object with id {str(data_id)!r}", id=str(data_id)) from None

    def sweep_orphans(self, older_than_s: float = 3600.0) -> int:
        """Delete chunks without a files document (an upload cut off by a kill) older than that."""
        cutoff = ObjectId.from_datetime(datetime.now(timezone.utc) - timedelta(seconds=older_than_s))
        removed = 0
        for files_id in self.chunks.distinct("files_id", {"_id": {"$lt": cutoff}, "n": 0}):
            if self.files.count_documents({"_id": files_id}, limit=1) == 0:
                removed += self.chunks.delete_many({"files_id": files_id}).deleted_count
        return removed

    def expire_unreferenced(self, older_than_s: float) -> list[str]:
        """Delete objects older than that which no task refers to; returns their ids."""
        cutoff = datetime.now(timezone.utc) - timedelta(seconds=older_than_s)
        removed = []
        for doc in self.files.find({"uploadDate": {"$lt": cutoff}}, {"_id": 1}):
            data_id = str(doc["_id"])
            if not self.referenced(data_id):
                try:
                    self.bucket.delete(doc["_id"])
                except NoFile:
                    continue
                removed.append(data_id)
        return removed
