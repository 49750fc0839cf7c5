"""The ingest service: what the HTTP routes and the MQTT inlet share (contracts, the log
writer, the flusher, the validators, auth, limits, counters), and its lifecycle.

Every ``lake.compaction.interval_s`` a thread compacts the lake's small files, and every
``lake.retention.interval_s`` another vacuums what the retention policy does not keep
(maintenance.py).
The periodic flusher, the validators of big bodies and, with ``stream.bus: redis``, the
forwarder to the bus are child processes (workers.py), forked here before the log is opened
or any thread started, so that none competes with the event loop for the GIL. Where that
cannot be done (no fork, other threads running; for the flusher and the forwarder also a log
object handed in) they are threads of this process.

With ``ingest.drops``, a thread of this process looks into the drop folders every
``drops_interval_s`` and stores their finished files as blobs (drops.py); the flusher lands
them in the catalog and the lake.

Sources are kept apart: each has its own backlog limit, a source whose flush fails is
retried with backoff while the others flush, and a contract file that does not compile
leaves the others served. What is wrong is on /health (``problems``) and in /metrics.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict
from typing import Iterator

from starlette.requests import Request

from ..asgi import bearer_token, token_matches
from ..errors import (
    Backpressure, Forbidden, InsufficientStorage, LakebookError, PayloadTooLarge, TooManyRequests, Unauthorized,
    UnknownSource, UnsupportedMediaType,
)
from .blobs import BlobStore
from .drops import DropInlet
from .flusher import FlushBackoff, flush_failed, flush_ingest_log_to_raw
from .forwarder import FORWARDER_GROUP, RedisGroups, forwards_to_redis, run_forwarder
from .groups import log_groups
from .log import GroupCommitWriter, IngestLog, open_ingest_log
from .maintenance import run_compactions, run_vacuums
from .metrics import IngestMetrics
from .records import EVENT_TYPES
from .workers import FlusherProcess, ForwarderProcess, ValidatorProcesses

log = logging.getLogger("lakebook.ingest.service")
# After a full disk, appending is taken as possible again once this much is free there.
FREE_SPACE_MARGIN = 1 << 20


class IngestService:
    """State shared by the handlers, started and stopped with the app (its lifespan)."""

    def __init__(self, workspace, ingest_log: IngestLog | None = None, *, flush_interval_s: float | None = None,
                 fork: bool = True, validator_processes: bool = True):
        self.workspace = workspace
        self.settings = workspace.settings.ingest
        workspace.ensure_state()
        self.flush_interval_s = flush_interval_s or self.settings.flush_interval_s
        # contracts compiled before the fork, so the helper processes start warm (a file that
        # does not compile is logged, and only its own source is not served)
        workspace.contracts()
        # helper processes first: forked before this process opens the log or starts a thread
        workers = min(4, os.cpu_count() or 1)
        self.validator_processes = ValidatorProcesses.fork(workspace, workers) if fork and validator_processes else None
        forked = self.validator_processes.fds if self.validator_processes else []
        self.forwarding = forwards_to_redis(workspace)
        self._forwarder_process = ForwarderProcess.fork(workspace, close=forked) if (
            self.forwarding and fork and ingest_log is None) else None
        forked = forked + (self._forwarder_process.fds if self._forwarder_process else [])
        self._flusher_process = None if ingest_log is not None or not fork else FlusherProcess.fork(
            workspace, self.flush_interval_s, close=forked)
        self.log = ingest_log or open_ingest_log(workspace)
        if not self.forwarding and hasattr(self.log, "drop_group"):
            self.log.drop_group(FORWARDER_GROUP)  # the log keeps nothing for a forwarder that will not come
        self._redis_groups = RedisGroups(workspace) if self.forwarding else None
        self.writer = GroupCommitWriter(self.log)
        self.blobs = BlobStore.of(workspace)
        self.metrics = IngestMetrics()
        self.tokens = {s: [t.get_secret_value().encode() for t in ts] for s, ts in self.settings.tokens.items()}
        self.flush_failure: str | None = None  # why the last flush failed; None once one succeeds
        # big bodies are decoded and validated by the validator processes, else by these threads
        self.validators = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lakebook-validate")
        self.validating = 0  # bodies handed to the validators and not answered yet (event loop only)
        self._backoff = FlushBackoff()  # the flush thread's; the flusher process keeps its own
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        self._forwarder: threading.Thread | None = None
        self._drops: threading.Thread | None = None
        self._compactor: threading.Thread | None = None
        self._vacuum: threading.Thread | None = None
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
        if self.validator_processes is not None:
            self.validator_processes.start()
        if self._flusher_process is not None:
            self._flusher_process.start(self._flush_reported, self._flusher_process_gone)
        else:
            self._start_flush_thread()
        if self._forwarder_process is not None:
            self._forwarder_process.start(self._forwarder_process_gone)
        elif self.forwarding:
            self._start_forward_thread()
        if self.settings.drops:
            self._drops = threading.Thread(target=self._drops_loop, name="lakebook-drops", daemon=True)
            self._drops.start()
        if self.workspace.settings.lake.compaction.enabled:
            self._compactor = threading.Thread(target=run_compactions, args=(self.workspace, self.log, self._stop),
                                               name="lakebook-compactor", daemon=True)
            self._compactor.start()
        self._vacuum = threading.Thread(target=run_vacuums, args=(self.workspace, self._stop),
                                        name="lakebook-vacuum", daemon=True)
        self._vacuum.start()

    def stop(self) -> None:
        self._stop.set()
        if self._forwarder_process is not None:
            self._forwarder_process.stop()
        if self._forwarder:
            self._forwarder.join(timeout=30)
        if self._drops:
            self._drops.join(timeout=30)
        if self._flusher_process is not None:
            self._flusher_process.stop(timeout_s=60)
        if self._flusher:
            self._flusher.join(timeout=60)
        if self._compactor:
            self._compactor.join(timeout=60)
        if self._vacuum:
            self._vacuum.join(timeout=60)
        self.writer.close()
        self.flush_now(FlushBackoff())  # the last flush tries every source
        if self.validator_processes is not None:
            self.validator_processes.stop()
        self.validators.shutdown(wait=False)
        self.log.close()

    def _start_flush_thread(self) -> None:
        self._flusher = threading.Thread(target=self._flush_loop, name="lakebook-flusher", daemon=True)
        self._flusher.start()

    def _flush_loop(self) -> None:
        while not self._stop.wait(self.flush_interval_s):
            self.flush_now(batching=True)

    def _drops_loop(self) -> None:
        inlet = DropInlet(self.workspace, self.blobs)
        while not self._stop.wait(self.settings.drops_interval_s):
            try:
                self.metrics.blobs += inlet.scan().created
            except Exception:  # noqa: BLE001 - a full disk, say: the files stay and the next scan tries again
                log.exception("the drop folders could not be read; tried again in %.0f s", self.settings.drops_interval_s)

    def _start_forward_thread(self) -> None:
        self._forwarder = threading.Thread(target=run_forwarder, args=(self.workspace, self._stop, self.log),
                                           name="lakebook-forwarder", daemon=True)
        self._forwarder.start()

    def _forwarder_process_gone(self) -> None:
        log.warning("the forwarder process exited; forwarding from a thread of the server from now on")
        self._start_forward_thread()

    def _flush_reported(self, report: dict) -> None:
        """A flush of the flusher process ended."""
        if report.get("ok"):
            self.metrics.flushed(report.get("events", 0), report.get("at") or time.time())
            self.metrics.flush_failed(report.get("failed", []), report.get("failing", {}))
            self.flush_failure = None
        else:
            self.metrics.flush_errors += 1
            self.flush_failure = report.get("error") or "the last flush failed; the server log has the details"
        self.writer.recount()

    def _flusher_process_gone(self) -> None:
        if not self._stop.is_set():
            log.warning("the flusher process exited; flushing from a thread of the server from now on")
            self._start_flush_thread()

    def flush_now(self, backoff: FlushBackoff | None = None, *, batching: bool = False):
        """Flush the log (``batching``: as the periodic flush, flush_ingest_log_to_raw)."""
        backoff = backoff or self._backoff
        try:
            report = flush_ingest_log_to_raw(self.workspace, self.log, backoff=backoff, batching=batching)
            self.metrics.flushed(report.events, time.time())
            self.metrics.flush_failed([asdict(f) for f in report.failed],
                                      {s: asdict(f) for s, f in backoff.failing.items()})
            self.flush_failure = None
            return report
        except Exception as exc:  # the server keeps taking events; the next round tries again
            self.metrics.flush_errors += 1
            self.flush_failure = flush_failed(exc)
            return None
        finally:
            self.writer.recount()

    def _space_is_back(self) -> bool:
        return shutil.disk_usage(self.workspace.ingest_log_path.parent).free >= FREE_SPACE_MARGIN

    # -- requests ------------------------------------------------------------------------
    def contract(self, request: Request, source: str):
        """The source's contract. An unknown source is a 404 that names the known sources
        only to a request that may see them (shows_sources)."""
        try:
            return self.workspace.contract(source)
        except UnknownSource as exc:
            if self.shows_sources(request):
                raise
            raise UnknownSource(exc.message, hint="check the source name (the known sources are named to "
                                                  "requests with a valid token)") from None

    def shows_sources(self, request: Request) -> bool:
        """Whether an answer may name the sources: in dev mode (no tokens: only local callers
        reach the server, and they can read the contracts), or to a request with a valid token."""
        if self.dev_mode:
            return True
        try:
            given = bearer_token(request)
        except Unauthorized:
            return False
        return token_matches(given, [t for ts in self.tokens.values() for t in ts])

    def authorize(self, request: Request, source: str) -> None:
        if self.dev_mode:
            return
        given = bearer_token(request)
        allowed = self.tokens.get(source, []) + self.tokens.get("*", [])
        if not allowed:
            raise Forbidden(f"no token is configured for source {source!r}")
        if not token_matches(given, allowed):
            raise Unauthorized(f"the token is not valid for source {source!r}")

    @staticmethod
    def media_type(request: Request) -> str:
        """The request's media type, if it is one events are read from (else UnsupportedMediaType:
        a browser form or a text/plain POST from a web page never reaches the parser)."""
        header = request.headers.get("content-type", "")
        media = header.partition(";")[0].strip().lower()
        if media not in EVENT_TYPES:
            shown = f"content type {header[:100]!r}" if header else "a body without a content type"
            raise UnsupportedMediaType(f"{shown} is not accepted", hint="send application/json (an event or an array "
                                       "of events) or application/x-ndjson (one event per line)")
        return media

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

    def check_backlog(self, source: str) -> None:
        """Backpressure if ``source`` has ``max_backlog_events`` unflushed events (other sources
        are not held back by it)."""
        backlog, limit = self.writer.by_source.get(source, 0), self.settings.max_backlog_events
        if backlog >= limit:
            raise Backpressure(
                f"ingest log holds {backlog} unflushed events of source {source!r} (limit {limit} per source)",
                retry_after_s=max(1, int(self.flush_interval_s)), hint=self._backlog_hint(source),
            )

    def _backlog_hint(self, source: str) -> str:
        failure = self.metrics.failing.get(source)
        if failure is None:
            return "retry after the flusher catches up"
        return f"flushing {source!r} fails ({failure['error']}); see /health"

    @contextmanager
    def validation_slot(self) -> Iterator[None]:
        """Room for one more body in the validators (TooManyRequests if ``max_validating_bodies``
        are waiting or being validated), held while the body is validated."""
        if self.validating >= self.settings.max_validating_bodies:
            raise TooManyRequests(f"{self.validating} request bodies are being validated (limit "
                                  f"{self.settings.max_validating_bodies})", retry_after_s=1,
                                  hint="retry shortly")
        self.validating += 1
        try:
            yield
        finally:
            self.validating -= 1

    def problems(self) -> tuple[list[str], bool]:
        """What keeps the service from working fully, one line each (empty when all is well),
        and whether it is blocked: no event can be stored or flushed now (a full disk, a
        damaged ingest log, a flush that fails as a whole) rather than some sources held up."""
        storage = self._storage_problems()
        return storage + self._contract_problems() + self._flush_problems() + self._backlog_problems(), bool(
            storage or any(f.get("storage") for f in self.metrics.failing.values()))

    def _storage_problems(self) -> list[str]:
        """The last append to the ingest log failed (a full disk: while less than
        FREE_SPACE_MARGIN is free there), or the last flush failed as a whole."""
        problems = []
        failure = self.writer.failure
        if failure is not None and not (isinstance(failure, InsufficientStorage) and self._space_is_back()):
            problems.append(failure.message if isinstance(failure, LakebookError)
                            else f"the last append to the ingest log failed ({type(failure).__name__})")
        if self.flush_failure:
            problems.append(self.flush_failure)
        return problems

    def _contract_problems(self) -> list[str]:
        served = self.workspace.contracts()
        return [f"contract of {source!r} does not compile "
                f"({'its last good version is served' if source in served else 'not served'}): {why}"
                for source, why in sorted(self.workspace.contract_problems().items())]

    def _flush_problems(self) -> list[str]:
        now = time.time()
        return [f"flush of {source!r} failing ({f['failures']} in a row; next try in "
                f"{max(0, f['retry_at'] - now):.0f} s): {f['error']}"
                for source, f in sorted(self.metrics.failing.items())]

    def _backlog_problems(self) -> list[str]:
        limit = self.settings.max_backlog_events
        return [f"backlog of {source!r} is at its limit ({n} events): new events of it get 503"
                for source, n in sorted(self.writer.by_source.items()) if n >= limit]

    def bus_groups(self) -> list[dict]:
        """{group, source, offset, lag} of every consumer group: of the ingest log (the forwarder's
        included), and of Redis with ``stream.bus: redis``."""
        return log_groups(self.log) + (self._redis_groups() if self._redis_groups else [])

    def metrics_text(self) -> bytes:
        return self.metrics.exposition(self.writer.by_source, self.writer.commits, self.bus_groups())
