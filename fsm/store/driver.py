"""The MongoDB driver's names that code above the store may use, under the store's names.

Only ``fsm.store`` imports ``pymongo`` and ``bson`` (an import-linter contract); callers that
must tell a database outage from a bad document, or print a stored id, take these instead.
"""
from __future__ import annotations

import pymongo
from bson import ObjectId as StoredId
from bson.errors import InvalidDocument as _BsonInvalidDocument
from pymongo.errors import ConnectionFailure, DuplicateKeyError, OperationFailure, PyMongoError, WriteConcernError
from pymongo.errors import InvalidDocument as _DriverInvalidDocument

#: Any error the database or the driver raised.
StoreError = PyMongoError
#: The database cannot be reached right now (try again).
StoreUnavailable = ConnectionFailure
#: A value cannot be stored as BSON (a result too deep, an int over 64 bits, a non-string key).
UNSTORABLE = (_BsonInvalidDocument, _DriverInvalidDocument, OverflowError)

__all__ = ["StoreError", "StoreUnavailable", "StoredId", "UNSTORABLE", "DuplicateKeyError", "OperationFailure",
           "is_transient", "stored_id_text", "timeout"]


def is_transient(exc: PyMongoError) -> bool:
    """An outage or a write a retry may still complete (connection, write concern, retryable label)."""
    return isinstance(exc, (ConnectionFailure, WriteConcernError)) or exc.has_error_label("RetryableWriteError")


def stored_id_text(value):
    """An ObjectId as its hex string (for JSON); any other value unchanged."""
    return str(value) if isinstance(value, StoredId) else value


def timeout(seconds: float):
    """A context in which every database operation gives up after ``seconds`` (``pymongo.timeout``)."""
    return pymongo.timeout(seconds)
