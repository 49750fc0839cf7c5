"""The LakebookError hierarchy.

Every error a user can cause is a ``LakebookError``: its message says what went wrong and
what to do about it, and it knows the HTTP status a server should answer with.
"""

from __future__ import annotations


class LakebookError(Exception):
    """Base class of every error lakebook raises on purpose."""

    http_status = 500

    def __init__(self, message: str, *, hint: str | None = None):
        self.message = message
        self.hint = hint
        super().__init__(f"{message} ({hint})" if hint else message)


class ConfigError(LakebookError):
    """lakebook.yaml (or an environment override) is invalid."""

    http_status = 500


class WorkspaceNotFound(LakebookError):
    http_status = 500


class ContractError(LakebookError):
    """A data contract file is invalid."""

    http_status = 500


class UnknownSource(LakebookError):
    """An event names a source that has no contract."""

    http_status = 404


class BadRequest(LakebookError):
    http_status = 400


class Unauthorized(LakebookError):
    http_status = 401


class Forbidden(LakebookError):
    http_status = 403


class PayloadTooLarge(LakebookError):
    http_status = 413


class Conflict(LakebookError):
    http_status = 409


class Backpressure(LakebookError):
    """The ingest log holds more unflushed events than allowed; retry later."""

    http_status = 503

    def __init__(self, message: str, *, retry_after_s: int = 1, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.retry_after_s = retry_after_s


class UnknownTable(LakebookError):
    http_status = 404


class QueryError(LakebookError):
    """A query failed because of the SQL or its parameters (a user mistake)."""

    http_status = 400


class ReadOnlyViolation(QueryError):
    """A statement tried to write to the lake or attach outside state."""


class MissingDependency(LakebookError):
    """An optional dependency is needed for this feature."""

    def __init__(self, package: str, extra: str):
        super().__init__(
            f"this feature needs the '{package}' package",
            hint=f"pip install 'lakebook[{extra}]'",
        )


class CatalogUnavailable(LakebookError):
    """The catalog database cannot be reached or opened."""

    http_status = 503
