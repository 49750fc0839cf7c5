"""The LakebookError hierarchy and its one JSON shape.

Every error a user can cause is a ``LakebookError``: its message says what went wrong, its
hint what to do, and its class the HTTP status a service answers with. Every lakebook HTTP
service answers errors as ``to_json(exc)``; errors cross process boundaries as
``to_wire(exc)`` / ``from_wire(...)`` (class name and fields, no constructor guessed).
"""

from __future__ import annotations

import difflib
import errno
from typing import Any, Iterable

from .redact import mask


class LakebookError(Exception):
    """Base class of every error lakebook raises on purpose."""

    http_status = 500

    def __init_subclass__(cls, status: int | None = None, **kwargs):
        super().__init_subclass__(**kwargs)
        if status is not None:
            cls.http_status = status

    def __init__(self, message: str, *, hint: str | None = None):
        self.message = mask(message)  # a secret this process holds is never part of an error
        self.hint = mask(hint) if hint else hint
        super().__init__(f"{self.message} ({self.hint})" if hint else self.message)


class ConfigError(LakebookError):
    """lakebook.yaml (or an environment override) is invalid."""


class WorkspaceNotFound(LakebookError):
    """No lakebook.yaml where one was looked for."""


class ContractError(LakebookError):
    """A data contract file is invalid."""


class UnknownSource(LakebookError, status=404):
    """An event names a source that has no contract."""


class BadRequest(LakebookError, status=400):
    """The request itself is malformed."""


class Unauthorized(LakebookError, status=401):
    """No credentials, or credentials that are not valid."""


class Forbidden(LakebookError, status=403):
    """Valid credentials that do not reach this resource."""


class NotFound(LakebookError, status=404):
    """The thing asked for does not exist (a blob, a run...)."""


class Conflict(LakebookError, status=409):
    """The request contradicts what is stored."""


class BlobUnreadable(LakebookError, status=422):
    """A blob's content cannot be read in its source's format (not CSV, JSON, NDJSON, Parquet)."""


class PayloadTooLarge(LakebookError, status=413):
    """The request is bigger than the service takes."""


class UnsupportedMediaType(LakebookError, status=415):
    """The request's content type is not one the service reads."""


class Backpressure(LakebookError, status=503):
    """The service is behind (e.g. the ingest log's backlog is full); retry later."""

    def __init__(self, message: str, *, retry_after_s: int = 1, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.retry_after_s = retry_after_s


class TooManyRequests(Backpressure, status=429):
    """Too many requests of this kind are being worked on at once; retry later."""


class ContractUnavailable(Backpressure):
    """A source's contract file does not compile and no version of it has been served yet."""


class InsufficientStorage(Backpressure, status=507):
    """A disk lakebook writes to is full: nothing was stored, and the same request succeeds
    once space is freed (the answer carries Retry-After)."""

    def __init__(self, message: str, *, retry_after_s: int = 10, hint: str | None = None):
        super().__init__(message, retry_after_s=retry_after_s, hint=hint)


class DamagedFile(LakebookError, status=503):
    """A file lakebook keeps (the ingest log, a lake file) cannot be read; the message names
    it and the hint says what to do (``lakebook doctor``)."""


class BusUnavailable(LakebookError, status=503):
    """The event bus's server (Redis) cannot be reached or refused a command."""


class UnknownTable(LakebookError, status=404):
    """A table name the catalog does not know."""


class QueryError(LakebookError, status=400):
    """A query failed because of the SQL or its parameters (a user mistake)."""


class ReadOnlyViolation(QueryError):
    """A statement tried to write to the lake or reach outside state."""


class TransformError(LakebookError, status=400):
    """A transform is invalid or failed; the message names the file and line."""


class FeatureStoreError(LakebookError, status=400):
    """The Feast repository or a feature request is not usable as asked."""


class ModelRegistryError(LakebookError, status=400):
    """A model or version the registry does not have."""


class RequestInvalid(LakebookError, status=422):
    """A prediction request that does not match the model's inputs; ``details`` lists each
    problem as ``{"loc": [index, field], "msg": ...}``."""

    def __init__(self, details: list[dict]):
        self.details = details
        shown = "; ".join(f"{'.'.join(map(str, d['loc'])) or 'body'}: {d['msg']}" for d in details[:5])
        more = f" (and {len(details) - 5} more)" if len(details) > 5 else ""
        super().__init__(f"the request does not match the model's inputs: {shown}{more}",
                         hint="see the endpoint's request schema at /<endpoint>/docs")


class AlertError(LakebookError, status=400):
    """An alert that cannot be sent as asked: a channel alerts.channels does not declare, a
    severity or status that is not one of the allowed."""


class JobDefinitionError(LakebookError, status=400):
    """A job definition (jobs/*.yaml) or a run's parameters are invalid; the message names the
    file and the key."""


class UnknownJob(LakebookError, status=404):
    """A job or run that does not exist."""


class ImportDefinitionError(LakebookError, status=400):
    """An import definition (imports/*.yaml) is invalid; the message names the file and the key."""


class UnknownImport(LakebookError, status=404):
    """An import that does not exist."""


class ImportFailed(LakebookError, status=502):
    """An import's API did not give what the import needs (a refused request, retries used up,
    a response without its records)."""


class DashboardError(LakebookError, status=400):
    """A dashboard that cannot be published, shared or rendered as asked (a notebook outside
    the workspace, a name taken by another notebook, a bad expiry)."""


class UnknownDashboard(LakebookError, status=404):
    """A dashboard, snapshot or share token that does not exist."""


class MonitorDefinitionError(LakebookError, status=400):
    """A check definition (monitors/*.yaml) is invalid; the message names the file, the check
    and the key."""


class UnknownCheck(LakebookError, status=404):
    """A check that no monitors/*.yaml file declares and no contract derives."""


class ServiceError(LakebookError):
    """A lakebook service could not be started, reached or stopped."""


class EndpointUnavailable(LakebookError, status=503):
    """A model endpoint that is not running or does not answer."""


class LakeUnavailable(LakebookError, status=503):
    """The lake's bucket cannot be used (missing, unreachable, access denied)."""


class NotOnS3Lake(LakebookError, status=501):
    """An operation that needs a local lake folder, asked of a lake on S3."""


class CatalogUnavailable(LakebookError, status=503):
    """The catalog database cannot be reached or opened."""


class MissingDependency(LakebookError):
    """An optional dependency is needed for this feature."""

    def __init__(self, package: str, extra: str):
        super().__init__(f"this feature needs the '{package}' package", hint=f"pip install 'lakebook[{extra}]'")


_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}
_SQLITE_FULL = 13


def out_of_space(exc: BaseException | None) -> bool:
    """Whether ``exc``, or an error it was raised from, says a disk is full: an OSError with
    ENOSPC or EDQUOT (pyarrow's included), SQLite's SQLITE_FULL (also inside SQLAlchemy's
    errors), or an InsufficientStorage."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, InsufficientStorage) or (isinstance(exc, OSError) and exc.errno in _NO_SPACE):
            return True
        if (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF == _SQLITE_FULL:
            return True
        wrapped = getattr(exc, "orig", None)  # SQLAlchemy keeps the driver's error here
        exc = wrapped if isinstance(wrapped, BaseException) else exc.__cause__ or exc.__context__
    return False


def error_json(status: int, message: str, hint: str | None = None) -> dict[str, Any]:
    """The body every lakebook HTTP service answers an error with."""
    return {"error": {"status": status, "message": message, "hint": hint}}


def to_json(exc: LakebookError) -> dict[str, Any]:
    return error_json(exc.http_status, exc.message, exc.hint)


def to_wire(exc: LakebookError) -> tuple[str, dict[str, Any]]:
    """An error as (class name, fields), to pass to another process."""
    return type(exc).__name__, dict(vars(exc))


def from_wire(name: str, fields: dict[str, Any]) -> LakebookError:
    """The error ``to_wire`` described, as its own class (LakebookError if the name is unknown)."""
    cls = globals().get(name)
    if not (isinstance(cls, type) and issubclass(cls, LakebookError)):
        cls = LakebookError
    exc = cls.__new__(cls)
    LakebookError.__init__(exc, fields.get("message", ""), hint=fields.get("hint"))
    exc.__dict__.update(fields)
    return exc


def closest(name: str, known: Iterable[str], *, cutoff: float = 0.6) -> str | None:
    """The known name closest to ``name`` (a typo's likely meaning), or None."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=cutoff)
    return close[0] if close else None


def did_you_mean(name: str, known: Iterable[str], *, quote: bool = True, cutoff: float = 0.6) -> str | None:
    """``did you mean 'x'?`` for the known name closest to ``name`` (table names go unquoted:
    ``did you mean raw.flights?``), or None."""
    guess = closest(name, known, cutoff=cutoff)
    if guess is None:
        return None
    return f"did you mean {guess!r}?" if quote else f"did you mean {guess}?"
