"""The ingest HTTP app (ASGI, Starlette).

``POST /v1/events/{source}`` takes one JSON object, a JSON array or NDJSON. Events are
checked against the source's contract; valid ones are accepted even when others in the
batch are not; rejected ones go to quarantine with their reasons. The answer is sent only
after both are fsynced in the ingest log. An NDJSON body of events that all pass is logged
as it came; the flusher turns it into columns later (records.checked_ndjson).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ..errors import Backpressure, BadRequest, Forbidden, LakebookError, PayloadTooLarge, Unauthorized
from .background import FlusherProcess, ValidatorProcesses
from .blobs import BlobStore, validate_blob_name
from .flusher import flush_ingest_log_to_raw
from .log import GroupCommitWriter, IngestLog, open_ingest_log
from .records import checked_ndjson, decode_events, is_ndjson, rejected_record, validate_to_records

log = logging.getLogger("lakebook.ingest.app")
INLINE_BODY_BYTES = 32 * 1024  # smaller bodies are validated on the event loop: a thread hop costs more
INLINE_CHECK_BYTES = 1 << 20  # NDJSON bodies up to this size are checked on the event loop (a few ms)


class _Json(JSONResponse):
    def render(self, content) -> bytes:
        return orjson.dumps(content)


@dataclass
class Metrics:
    accepted: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    responses: dict[int, int] = field(default_factory=dict)
    blobs: int = 0
    flushes: int = 0
    flush_errors: int = 0
    flushed_events: int = 0
    last_flush_unix: float = 0.0

    def count(self, table: dict, key, n: int = 1) -> None:
        table[key] = table.get(key, 0) + n


class IngestService:
    """State shared by the handlers: contracts, log writer, flusher, validators, metrics.

    The periodic flusher and the validators of big bodies are child processes (background.py),
    forked here before the log is opened or any thread started, so that neither competes with
    the event loop for the GIL. Where that cannot be done (no fork, other threads running;
    for the flusher also a log object handed in) they are threads of this process."""

    def __init__(self, workspace, ingest_log: IngestLog | None = None, *, flush_interval_s: float | None = None):
        self.workspace = workspace
        self.settings = workspace.settings.ingest
        workspace.ensure_state()
        self.flush_interval_s = flush_interval_s or self.settings.flush_interval_s
        # contracts compiled before the fork, so the helper processes start warm; a broken
        # contract stops the server here, not per request
        workspace.contracts()
        # helper processes first: forked before this process opens the log or starts a thread
        workers = min(4, os.cpu_count() or 1)
        self.validator_processes = ValidatorProcesses.fork(workspace, workers)
        self._flusher_process = None if ingest_log is not None else FlusherProcess.fork(
            workspace, self.flush_interval_s, close=self.validator_processes.fds if self.validator_processes else [])
        self.log = ingest_log or open_ingest_log(workspace)
        self.writer = GroupCommitWriter(self.log)
        self.blobs = BlobStore(workspace.blobs_dir)
        self.metrics = Metrics()
        self.tokens = {s: [t.get_secret_value().encode() for t in ts] for s, ts in self.settings.tokens.items()}
        # big bodies are decoded and validated by the validator processes, else by these threads
        self.validators = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lakebook-validate")
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        self.started_at = time.time()

    @property
    def dev_mode(self) -> bool:
        return not self.tokens

    @property
    def backlog(self) -> int:
        """Events in the ingest log not yet flushed (kept by the writer; see GroupCommitWriter)."""
        return self.writer.backlog

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        self.workspace.contracts()  # a broken contract stops the server at start, not per request
        if self.validator_processes is not None:
            self.validator_processes.start()
        if self._flusher_process is not None:
            self._flusher_process.start(self._flush_reported, self._flusher_process_gone)
        else:
            self._start_flush_thread()

    def stop(self) -> None:
        self._stop.set()
        if self._flusher_process is not None:
            self._flusher_process.stop(timeout_s=60)
        if self._flusher:
            self._flusher.join(timeout=60)
        self.writer.close()
        self.flush_now()
        if self.validator_processes is not None:
            self.validator_processes.stop()
        self.validators.shutdown(wait=False)
        self.log.close()

    def _start_flush_thread(self) -> None:
        self._flusher = threading.Thread(target=self._flush_loop, name="lakebook-flusher", daemon=True)
        self._flusher.start()

    def _flush_loop(self) -> None:
        while not self._stop.wait(self.flush_interval_s):
            self.flush_now()

    def _flush_reported(self, report: dict) -> None:
        """A flush of the flusher process ended."""
        if report.get("ok"):
            self.metrics.flushes += 1
            self.metrics.flushed_events += report.get("events", 0)
            self.metrics.last_flush_unix = report.get("at") or time.time()
        else:
            self.metrics.flush_errors += 1
        self.writer.recount()

    def _flusher_process_gone(self) -> None:
        if not self._stop.is_set():
            log.warning("the flusher process exited; flushing from a thread of the server from now on")
            self._start_flush_thread()

    def flush_now(self):
        try:
            report = flush_ingest_log_to_raw(self.workspace, self.log)
            self.metrics.flushes += 1
            self.metrics.flushed_events += report.events
            self.metrics.last_flush_unix = time.time()
            return report
        except Exception:  # the server keeps taking events; the next round tries again
            self.metrics.flush_errors += 1
            log.exception("flush failed; events stay in the ingest log")
            return None
        finally:
            self.writer.recount()

    # -- requests ------------------------------------------------------------------------
    def authorize(self, request: Request, source: str) -> None:
        if self.dev_mode:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("missing bearer token", hint="send 'Authorization: Bearer <token>'")
        allowed = self.tokens.get(source, []) + self.tokens.get("*", [])
        if not allowed:
            raise Forbidden(f"no token is configured for source {source!r}")
        given = token.encode()
        if not any(hmac.compare_digest(given, t) for t in allowed):
            raise Unauthorized(f"the token is not valid for source {source!r}")

    async def read_body(self, request: Request) -> bytes:
        limit = self.settings.max_request_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"request body of {declared} bytes is over the limit of {limit}")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"request body is over the limit of {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def check_backlog(self) -> None:
        if self.backlog >= self.settings.max_backlog_events:
            raise Backpressure(
                f"ingest log holds {self.backlog} unflushed events (limit {self.settings.max_backlog_events})",
                retry_after_s=max(1, int(self.flush_interval_s)), hint="retry after the flusher catches up",
            )


def body_to_records(contract, source: str, body: bytes, content_type: str, request_id: str, received_us: int,
                    check: bool = True):
    """A request body -> its log records and answer (raises BadRequest if it is not JSON at all).
    An NDJSON body whose every line passes the contract's check is logged as it came
    (checked_ndjson; skipped with ``check=False`` when that was tried already); any other
    body, or one with anything to reject, is decoded and validated event by event."""
    if check and is_ndjson(content_type):
        outcome = checked_ndjson(contract, source, body, received_us)
        if outcome is not None:
            return outcome
    events, undecodable = decode_events(body, content_type)
    return validate_to_records(contract, source, events, request_id, received_us, undecodable)


async def post_events(request: Request) -> Response:
    service: IngestService = request.app.state.service
    source = request.path_params["source"]
    contract = service.workspace.contract(source)
    service.authorize(request, source)
    service.check_backlog()
    body = await service.read_body(request)
    request_id = uuid.uuid4().hex
    received_us = time.time_ns() // 1000
    content_type = request.headers.get("content-type", "")
    # the check runs on the event loop (it costs about what parsing the JSON does); a body it
    # does not pass is validated event by event
    checked = is_ndjson(content_type) and len(body) <= INLINE_CHECK_BYTES
    outcome = checked_ndjson(contract, source, body, received_us) if checked else None
    try:
        if outcome is None:
            outcome = await _validated(service, contract, source, body, content_type, request_id, received_us,
                                       check=not checked)
    except BadRequest as exc:
        if body.strip():  # an unparseable body is data: keep it; an empty one is not
            await _quarantine(service, source, request_id, received_us,
                              [(None, body.decode("utf-8", "backslashreplace"), exc.message)])
        raise
    if outcome.records:
        await asyncio.wrap_future(service.writer.submit(outcome.records))
    service.metrics.count(service.metrics.accepted, source, outcome.accepted)
    service.metrics.count(service.metrics.rejected, source, len(outcome.rejected))
    shown = service.settings.max_rejections_reported
    answer = {"request_id": request_id, "accepted": outcome.accepted, "rejected_count": len(outcome.rejected),
              "rejected": outcome.rejected[:shown]}
    status = 422 if outcome.rejected and not outcome.accepted else 200
    return _Json(answer, status_code=status)


async def _validated(service: IngestService, contract, source: str, body: bytes, content_type: str,
                     request_id: str, received_us: int, check: bool):
    """body_to_records: on the event loop for a small body, else in a validator process (or
    thread), in parallel with other requests."""
    args = (source, body, content_type, request_id, received_us, check)
    if len(body) < INLINE_BODY_BYTES:
        return body_to_records(contract, *args)
    if service.validator_processes is not None:
        return await asyncio.wrap_future(service.validator_processes.submit(*args))
    return await asyncio.get_running_loop().run_in_executor(service.validators, body_to_records, contract, *args)


async def _quarantine(service: IngestService, source: str, request_id: str, received_us: int, rejected: list) -> None:
    await asyncio.wrap_future(service.writer.submit([rejected_record(source, request_id, received_us, rejected)]))
    service.metrics.count(service.metrics.rejected, source, len(rejected))


async def put_blob(request: Request) -> Response:
    service: IngestService = request.app.state.service
    source, name = request.path_params["source"], request.path_params["name"]
    service.workspace.contract(source)
    validate_blob_name(name)
    service.authorize(request, source)
    body = await service.read_body(request)
    content_type = request.headers.get("content-type", "application/octet-stream")
    meta, created = await asyncio.to_thread(service.blobs.put, source, name, body, content_type)
    service.metrics.blobs += int(created)
    return _Json(meta, status_code=201 if created else 200)


async def get_blob(request: Request) -> Response:
    service: IngestService = request.app.state.service
    source, name = request.path_params["source"], request.path_params["name"]
    service.workspace.contract(source)
    validate_blob_name(name)
    service.authorize(request, source)
    data, meta = await asyncio.to_thread(service.blobs.get, source, name)
    return Response(data, media_type=meta["content_type"], headers={"x-sha256": meta["sha256"]})


async def health(request: Request) -> Response:
    service: IngestService = request.app.state.service
    return _Json({
        "status": "ok", "sources": sorted(service.workspace.contracts()), "backlog_events": service.backlog,
        "dev_mode": service.dev_mode, "uptime_s": round(time.time() - service.started_at, 1),
        "last_flush_unix": service.metrics.last_flush_unix,
    })


async def metrics(request: Request) -> Response:
    service: IngestService = request.app.state.service
    m = service.metrics
    lines = [
        "# HELP lakebook_ingest_events_accepted_total Events accepted (durable in the ingest log).",
        "# TYPE lakebook_ingest_events_accepted_total counter",
        *[f'lakebook_ingest_events_accepted_total{{source="{s}"}} {n}' for s, n in sorted(m.accepted.items())],
        "# HELP lakebook_ingest_events_rejected_total Events rejected and quarantined.",
        "# TYPE lakebook_ingest_events_rejected_total counter",
        *[f'lakebook_ingest_events_rejected_total{{source="{s}"}} {n}' for s, n in sorted(m.rejected.items())],
        "# HELP lakebook_ingest_responses_total HTTP responses by status code.",
        "# TYPE lakebook_ingest_responses_total counter",
        *[f'lakebook_ingest_responses_total{{code="{c}"}} {n}' for c, n in sorted(m.responses.items())],
        "# HELP lakebook_ingest_backlog_events Events in the ingest log not yet flushed to the lake.",
        "# TYPE lakebook_ingest_backlog_events gauge",
        f"lakebook_ingest_backlog_events {service.backlog}",
        "# HELP lakebook_ingest_log_commits_total Group commits (fsyncs) of the ingest log.",
        "# TYPE lakebook_ingest_log_commits_total counter",
        f"lakebook_ingest_log_commits_total {service.writer.commits}",
        "# TYPE lakebook_ingest_blobs_stored_total counter",
        f"lakebook_ingest_blobs_stored_total {m.blobs}",
        "# TYPE lakebook_ingest_flushes_total counter",
        f"lakebook_ingest_flushes_total {m.flushes}",
        "# TYPE lakebook_ingest_flush_errors_total counter",
        f"lakebook_ingest_flush_errors_total {m.flush_errors}",
        "# HELP lakebook_ingest_events_flushed_total Events written to the lake (duplicates of events already there not counted).",
        "# TYPE lakebook_ingest_events_flushed_total counter",
        f"lakebook_ingest_events_flushed_total {m.flushed_events}",
    ]
    return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")


async def _http_error(request: Request, exc: HTTPException) -> Response:
    """Routing errors (unknown path, wrong method) answer in JSON like every other error."""
    body = {"error": exc.detail, "hint": "routes: POST /v1/events/{source}, PUT|GET /v1/blobs/{source}/{name}, "
                                        "GET /health, GET /metrics"}
    return _Json(body, status_code=exc.status_code, headers=exc.headers)


def _error_response(request: Request, exc: Exception) -> Response:
    """Every error answer is made here: LakebookErrors carry their status; anything else is
    a 500 that is logged with its traceback and never leaks it."""
    if isinstance(exc, LakebookError):
        status, body = exc.http_status, {"error": exc.message}
        if exc.hint:
            body["hint"] = exc.hint
    else:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        status, body = 500, {"error": "internal error; see the server log"}
    headers = {}
    if isinstance(exc, Backpressure):
        headers["Retry-After"] = str(exc.retry_after_s)
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return _Json(body, status_code=status, headers=headers)


class _CountStatus:
    """ASGI middleware counting responses by status, and mapping handler errors in one place."""

    def __init__(self, app, service_getter):
        self.app = app
        self.service_getter = service_getter

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def counting_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                self.service_getter().metrics.count(self.service_getter().metrics.responses, message["status"])
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        except ClientDisconnect:  # the client hung up mid-request: no one to answer, no server error
            return
        except Exception as exc:
            if started:
                raise
            response = _error_response(Request(scope), exc)
            await response(scope, receive, counting_send)


def create_app(workspace, *, ingest_log: IngestLog | None = None, flush_interval_s: float | None = None) -> Starlette:
    """The ingest ASGI app for a workspace (the flusher runs inside it)."""
    service = IngestService(workspace, ingest_log, flush_interval_s=flush_interval_s)

    @asynccontextmanager
    async def lifespan(app):
        service.start()
        try:
            yield
        finally:
            await asyncio.to_thread(service.stop)

    app = Starlette(
        routes=[
            Route("/v1/events/{source}", post_events, methods=["POST"]),
            Route("/v1/blobs/{source}/{name}", put_blob, methods=["PUT"]),
            Route("/v1/blobs/{source}/{name}", get_blob, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error},
    )
    app.state.service = service
    app.add_middleware(_CountStatus, service_getter=lambda: service)
    return app
