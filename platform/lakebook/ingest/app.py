"""The ingest HTTP routes (ASGI, Starlette); their shared state is the IngestService.

``POST /v1/events/{source}`` takes one JSON object, a JSON array (``application/json``) or
NDJSON (``application/x-ndjson`` and its aliases); any other content type is 415. Events are
checked against the source's contract; valid ones are accepted even when others in the
batch are not; rejected ones go to quarantine with their reasons. The answer is sent only
after both are fsynced in the ingest log. An NDJSON body of events that all pass is logged
as it came; the flusher turns it into columns later (records.checked_ndjson).

Memory per request is bounded: at most ``ingest.max_events_per_request`` events (counted
before they are decoded: 413 above), at most contracts.validate.MAX_REASONS reasons kept per
event, and at most ``ingest.max_validating_bodies`` bodies waiting for or in validation off
the event loop (429 + Retry-After above).

Web pages: a request from a page of another origin is refused (asgi.OriginGuard) unless
``ingest.allowed_origins`` lists it (then it gets CORS headers); a full disk is 507 with
Retry-After, and /health is 503 "degraded" until the service can work again.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..asgi import ErrorsAndStatuses, Json, OriginGuard, routing_error_handler
from ..errors import BadRequest
from .blobs import validate_blob_name
from .log import IngestLog
from .metrics import CONTENT_TYPE
from .records import body_to_records, checked_ndjson, is_ndjson, rejected_records
from .service import IngestService

INLINE_BODY_BYTES = 32 * 1024  # smaller bodies are validated on the event loop: a thread hop costs more
INLINE_CHECK_BYTES = 1 << 20  # NDJSON bodies up to this size are checked on the event loop (a few ms)
ROUTES = "POST /v1/events/{source}, PUT|GET /v1/blobs/{source}/{name}, GET /health, GET /metrics"
# A blob is served as stored, whatever its content type: never sniffed into another type, and
# a document (text/html) runs sandboxed, in an origin of its own, not the server's.
BLOB_HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"}


async def post_events(request: Request) -> Response:
    service: IngestService = request.app.state.service
    source = request.path_params["source"]
    contract = service.contract(request, source)
    service.authorize(request, source)
    if contract.contract.is_blob:
        raise BadRequest(f"source {source!r} takes files (kind: blob), not events",
                         hint=f"PUT /v1/blobs/{source}/<name>, or a drop folder (ingest.drops)")
    content_type = service.media_type(request)
    service.check_backlog(source)
    body = await service.read_body(request)
    request_id = uuid.uuid4().hex
    received_us = time.time_ns() // 1000
    # the check runs on the event loop (it costs about what parsing the JSON does); a body it
    # does not pass is validated event by event
    checked = is_ndjson(content_type) and len(body) <= INLINE_CHECK_BYTES
    limit = service.settings.max_events_per_request
    outcome = checked_ndjson(contract, source, body, received_us, limit) if checked else None
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
    return Json(answer, status_code=status)


async def _validated(service: IngestService, contract, source: str, body: bytes, content_type: str,
                     request_id: str, received_us: int, check: bool):
    """body_to_records: on the event loop for a small body, else in a validator process (or
    thread), in parallel with other requests, as long as there is room (validation_slot)."""
    args = (source, body, content_type, request_id, received_us, check)
    limit = service.settings.max_events_per_request
    if len(body) < INLINE_BODY_BYTES:
        return body_to_records(contract, *args, limit)
    with service.validation_slot():
        if service.validator_processes is not None:
            return await asyncio.wrap_future(service.validator_processes.submit(*args))
        return await asyncio.get_running_loop().run_in_executor(service.validators, body_to_records, contract,
                                                                *args, limit)


async def _quarantine(service: IngestService, source: str, request_id: str, received_us: int, rejected: list) -> None:
    await asyncio.wrap_future(service.writer.submit(rejected_records(source, request_id, received_us, rejected)))
    service.metrics.count(service.metrics.rejected, source, len(rejected))


def _blob_request(request: Request) -> tuple[IngestService, str, str]:
    """The service, source and blob name of a blob route, checked and authorized."""
    service: IngestService = request.app.state.service
    source, name = request.path_params["source"], request.path_params["name"]
    service.contract(request, source)
    validate_blob_name(name)
    service.authorize(request, source)
    return service, source, name


async def put_blob(request: Request) -> Response:
    service, source, name = _blob_request(request)
    body = await service.read_body(request)
    content_type = request.headers.get("content-type", "application/octet-stream")
    meta, created = await asyncio.to_thread(service.blobs.put, source, name, body, content_type)
    service.metrics.blobs += int(created)
    return Json(meta, status_code=201 if created else 200)


async def get_blob(request: Request) -> Response:
    service, source, name = _blob_request(request)
    data, meta = await asyncio.to_thread(service.blobs.get, source, name)
    return Response(data, media_type=meta["content_type"], headers={"x-sha256": meta["sha256"], **BLOB_HEADERS})


async def health(request: Request) -> Response:
    """``status`` "ok", or "degraded" with ``problems`` (one line each). 503 when the service is
    blocked (no event can be stored or flushed now: a full disk, a damaged ingest log), so a
    probe that reads only the code sees it; 200 when only some sources are held up (a contract
    that does not compile, a source whose flush fails, a full backlog). Source names and the
    problems' details are shown only to requests that may see the sources."""
    return health_answer(request.app.state.service, request)


def health_answer(service: IngestService, request: Request, problems: list[str] = (), blocked: bool = False,
                  **facts) -> Response:
    """The /health answer of a service that writes to the ingest log: ``problems`` (and
    ``blocked``) of the caller's own, then the IngestService's; ``facts`` added to the document."""
    own, own_blocked = service.problems()
    problems, blocked = [*problems, *own], blocked or own_blocked
    doc = {"status": "degraded" if problems else "ok", "problems": problems, "backlog_events": service.backlog,
           "dev_mode": service.dev_mode, "uptime_s": round(time.time() - service.started_at, 1),
           "last_flush_unix": service.metrics.last_flush_unix, **facts}
    if service.shows_sources(request):
        doc["sources"] = sorted(service.workspace.contracts())
    elif problems:
        doc["problems"] = [f"{len(problems)} problem(s); a request with a valid token sees them"]
    return Json(doc, status_code=503 if blocked else 200)


async def metrics(request: Request) -> Response:
    service: IngestService = request.app.state.service
    # off the event loop: the consumer groups' lag is read from the log (and Redis)
    return Response(await asyncio.to_thread(service.metrics_text), media_type=CONTENT_TYPE)


def create_app(workspace, *, ingest_log: IngestLog | None = None, flush_interval_s: float | None = None,
               fork: bool = True) -> Starlette:
    """The ingest ASGI app for a workspace (the flusher runs inside it; ``fork=False`` keeps
    the flusher and validators in threads of this process)."""
    service = IngestService(workspace, ingest_log, flush_interval_s=flush_interval_s, fork=fork)

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
        exception_handlers={HTTPException: routing_error_handler(f"routes: {ROUTES}")},
    )
    app.state.service = service
    settings = workspace.settings.ingest
    app.add_middleware(OriginGuard, allowed=settings.allowed_origins, loopback_host=service.dev_mode,
                       setting="ingest.allowed_origins")
    app.add_middleware(ErrorsAndStatuses,
                       count_status=lambda status: service.metrics.count(service.metrics.responses, status))
    if settings.allowed_origins:  # outermost: error answers carry the CORS headers too
        app.add_middleware(CORSMiddleware, allow_origins=settings.allowed_origins, allow_methods=["GET", "POST", "PUT"],
                           allow_headers=["authorization", "content-type"], expose_headers=["x-sha256", "retry-after"])
    return app
