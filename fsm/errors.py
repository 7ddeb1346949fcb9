"""One root exception; each subclass is named for what happened.

``code`` and ``http_status`` let the HTTP layer answer without a mapping table of its own,
and every detail an error is raised with (``field``, ``index``, ``ids``, ``limit``, ...)
reaches the client: ``body()`` is ``{"error": {"code", "message", **details}}``.
"""
from __future__ import annotations


#: The details errors carry into the JSON body, documented in the OpenAPI ``Error`` schema:
#: name -> (JSON Schema of the value, what it says). Raise with these names.
DETAILS: dict[str, tuple[dict, str]] = {
    "field": ({"type": "string"}, "the request field at fault, as a dotted path (e.g. requires.tags)"),
    "index": ({"type": "integer", "minimum": 0}, "the item of a bulk request at fault (the whole request "
                                                 "was refused)"),
    "ids": ({"type": "array", "items": {"type": "string"}}, "the ids concerned (e.g. task ids that exist)"),
    "right": ({"type": "string"}, "the right the caller lacks (fsm.rights)"),
    "role": ({"type": "string"}, "the lowest role that holds that right"),
    "grammar": ({"type": "string"}, "the identifier grammar a value broke (fsm.identifiers)"),
    "limit": ({"type": "number"}, "the limit a value went past"),
    "account": ({"type": "string"}, "the credit account concerned (user:<name> or group:<name>)"),
    "balance": ({"type": "number"}, "the account's balance in credits when the request was refused"),
    "needed": ({"type": "number"}, "the credits the request needed"),
}


class SuanwangError(Exception):
    """Base of every error Suanwang raises on purpose."""

    code = "error"
    http_status = 500

    def __init__(self, message: str, **details):
        super().__init__(message)
        self.message = message
        self.details = details

    def body(self) -> dict:
        """The JSON error body: code and message, then the details (never overriding those two)."""
        extra = {k: _plain(v) for k, v in self.details.items() if k not in ("code", "message")}
        return {"error": {"code": self.code, "message": self.message, **extra}}


def _plain(value):
    """A detail as JSON can carry it (tuples and sets become lists; other objects their text)."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_plain(v) for v in value]
        return sorted(items, key=str) if isinstance(value, (set, frozenset)) else items
    return str(value)


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


class TokenExpired(Unauthorized):
    """An API token past its ``expires_at``."""

    code = "token_expired"


class TokenRevoked(Unauthorized):
    """An API token that was revoked."""

    code = "token_revoked"


class Forbidden(SuanwangError):
    """The caller's role does not allow this action."""

    code, http_status = "forbidden", 403


class CsrfFailed(Forbidden):
    """A browser session sent a state-changing request without the page's CSRF token."""

    code = "csrf_failed"


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


class InsufficientCredits(SuanwangError):
    """The paying account's balance cannot cover a task's price (nothing was written)."""

    code, http_status = "insufficient_credits", 402


class QuotaLimit(SuanwangError):
    """A user (or their group) is at a quota of waiting tasks: try again later (429, ``Retry-After``)."""

    code, http_status = "quota_exceeded", 429


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
