"""One root exception; each subclass is named for what happened.

``code`` and ``http_status`` let the HTTP layer answer ``{"error": {"code", "message"}}``
without a mapping table of its own.
"""
from __future__ import annotations


class SuanwangError(Exception):
    """Base of every error Suanwang raises on purpose."""

    code = "error"
    http_status = 500

    def __init__(self, message: str, **details):
        super().__init__(message)
        self.message = message
        self.details = details


class ValidationError(SuanwangError):
    """A request or document is malformed: wrong type, unknown field, bad value."""

    code, http_status = "invalid", 422


class PayloadTooLarge(SuanwangError):
    """A request body or task payload is larger than allowed."""

    code, http_status = "too_large", 413


class InvalidTransition(SuanwangError):
    """A status change that the transition table does not allow."""

    code, http_status = "invalid_transition", 409


class Conflict(SuanwangError):
    """The document changed under us, or already exists."""

    code, http_status = "conflict", 409


class LeaseLost(Conflict):
    """A worker wrote for an attempt it no longer owns; the write was refused."""

    code = "lease_lost"


class TaskNotFound(SuanwangError):
    """No task has that id."""

    code, http_status = "task_not_found", 404


class NotFound(SuanwangError):
    """The named thing does not exist."""

    code, http_status = "not_found", 404


class FunctionNotFound(NotFound):
    """No registered function (or version) has that name."""

    code = "function_not_found"


class Unauthorized(SuanwangError):
    """No credentials, or credentials that do not match any user."""

    code, http_status = "unauthorized", 401


class Forbidden(SuanwangError):
    """The caller's role does not allow this action."""

    code, http_status = "forbidden", 403


class ConfigError(SuanwangError):
    """A setting is missing or invalid."""

    code, http_status = "config", 500


class EmbeddedMongoError(SuanwangError):
    """The embedded mongod is missing, cannot run here, or did not start."""

    code, http_status = "embedded_mongo", 500


class RegistryError(SuanwangError):
    """A function version cannot be registered, fetched or imported."""

    code, http_status = "registry", 422


class DataNotFound(NotFound):
    """No data object has that id."""

    code = "data_not_found"


class ChecksumMismatch(ValidationError):
    """Uploaded or downloaded bytes do not have the sha256 they should."""

    code = "checksum_mismatch"


class QuotaExceeded(SuanwangError):
    """Storing this would take the user past their storage quota."""

    code, http_status = "insufficient_storage", 507


class Permanent(SuanwangError):
    """Raised by a task function (``from suanwang import Permanent``): fail now, never retry.

    The executor also classifies as permanent what no retry can fix: a result that is not
    JSON, arguments that do not fit the function's signature, an unknown data id.
    """

    code, http_status = "permanent", 422

    def __init__(self, message: str = "permanent failure", **details):
        super().__init__(message, **details)
