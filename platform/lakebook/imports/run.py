"""One run of an import: page after page, the records through the source's contract into the
ingest log, as the ingest server logs a request's events (records.validate_to_records, then
the log's fsynced append): accepted ones land in ``raw.<source>`` at the next flush, refused
ones in ``quarantine.<source>`` with their reasons, and event ids drop what is in the lake
already. After each page is logged the import's state moves on (state.py), so a run killed
at any point resumes where its last logged page left it and a rerun duplicates nothing."""

from __future__ import annotations

import io
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import orjson
import pyarrow as pa

from ..contracts import EVENT_ID
from ..errors import ImportFailed, LakebookError
from ..ingest import open_ingest_log
from ..ingest.log import EVENTS
from ..ingest.records import validate_to_records
from ..redact import mask
from .client import Fetcher, read_credential
from .definitions import ImportDefinition, load_import
from .jsonpath import find
from .pages import PageRequest, first_request, highest, next_request
from .state import ImportStore


@dataclass
class ImportSummary:
    name: str
    source: str
    pages: int = 0
    records: int = 0
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0  # accepted records whose event id is in the lake already (dropped at flush)
    retries: int = 0
    cursor: Any = None  # the incremental cursor after the run
    resumed: bool = False  # continued an unfinished run
    full: bool = False
    seconds: float = 0.0
    examples: list[dict] = field(default_factory=list)  # a few rejected records' reasons

    def as_json(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        return (f"import {self.name}: {self.pages} pages, {self.records:,} records: {self.accepted:,} accepted, "
                f"{self.rejected:,} rejected to quarantine.{self.source}, {self.duplicates:,} duplicates; "
                f"cursor {self.cursor if self.cursor is not None else '-'} ({self.seconds:.1f} s)")


def run_import(workspace, name: str, *, full: bool = False, progress: Callable[[str], None] | None = None,
               environ=None, definition: ImportDefinition | None = None) -> ImportSummary:
    """Pull every page of import ``name`` (from where an unfinished run stopped, else from the
    stored cursor; ``full``: from the start, cursor ignored) into the ingest log. ``environ``
    is where ``auth.env`` is read (default: this process's environment); ``definition`` runs
    in place of the file's (`lakebook demo` points it at its own server)."""
    definition = definition or load_import(workspace, name)
    credential = read_credential(workspace, name, definition.auth, environ)
    contract = workspace.contract(definition.source)
    with ImportStore(workspace) as store:
        state = store.state(name)
        resume = None if full else state.resume
        summary = ImportSummary(name, definition.source, resumed=resume is not None, full=full)
        if resume:
            request, top = PageRequest.from_json(resume["request"]), resume.get("cursor")
            _say(progress, f"import {name}: resuming an unfinished run at page {request.page}")
        else:
            request, top = first_request(definition, None if full else state.cursor), None
        store.started(name)
        try:
            _pull(workspace, store, definition, contract, request, top, credential, summary, progress)
        except Exception as exc:
            store.failed(name, exc.message if isinstance(exc, LakebookError) else mask(f"{type(exc).__name__}: {exc}"))
            raise
    return summary


def _pull(workspace, store: ImportStore, definition: ImportDefinition, contract, request: PageRequest | None,
          top: Any, credential: str | None, summary: ImportSummary, progress) -> None:
    """Page after page until the last: each page logged, then the state moved past it; the
    last one moves the cursor and ends the run in the same transaction."""
    ingest_log = open_ingest_log(workspace)
    seen: set[str] = set()
    previous, started = store.state(definition.name).cursor, time.perf_counter()
    try:
        with Fetcher(definition, credential) as fetcher:
            while request is not None:
                response = fetcher.get(request)
                document = _json(response, fetcher.shown(request), definition.name)
                records = page_records(definition, document, request, fetcher.shown(request))
                accepted, rejected = _log_page(ingest_log, definition, contract, records, request, summary, seen)
                if definition.incremental is not None:
                    top = highest(top, [r.get(definition.incremental.cursor_field) for r in records
                                        if isinstance(r, dict)])
                _say(progress, f"  page {request.page}: {len(records):,} records, {accepted:,} accepted, "
                               f"{rejected:,} rejected")
                request = _after(definition, request, next_request(definition, request, document, response.links,
                                                                   len(records)), fetcher)
                summary.retries = fetcher.retried
                if request is not None:
                    store.page_logged(definition.name, {"request": request.as_json(), "cursor": top}, accepted)
                else:
                    summary.cursor = highest(None if summary.full else previous, [top])
                    summary.seconds = round(time.perf_counter() - started, 2)
                    store.finished(definition.name, summary.cursor, summary.as_json(), accepted)
    finally:
        ingest_log.close()


def _after(definition: ImportDefinition, request: PageRequest, following: PageRequest | None,
           fetcher: Fetcher) -> PageRequest | None:
    """The next request, unless it asks for the page just read again (a run would never end)."""
    if following is not None and (following.url, following.params) == (request.url, request.params):
        raise ImportFailed(f"import {definition.name}: the page after {fetcher.shown(request)} is the same page",
                           hint="check pagination: in the import's file (the path of the next link or cursor)")
    return following


def page_records(definition: ImportDefinition, document: Any, request: PageRequest, shown_url: str) -> list:
    """The records of a response (at ``records``), their fields renamed by ``map``."""
    records = find(document, definition.records)
    if not isinstance(records, list):
        got = "nothing" if records is None else type(records).__name__
        raise ImportFailed(f"import {definition.name}: page {request.page} ({shown_url}): records "
                           f"{definition.records!r} is not a list in the response (found {got})",
                           hint="set records: to the JSON path of the list of records in the response")
    if not definition.map:
        return records
    return [{definition.map.get(k, k): v for k, v in r.items()} if isinstance(r, dict) else r for r in records]


def _json(response, shown_url: str, name: str) -> Any:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise ImportFailed(f"import {name}: {shown_url} did not answer JSON "
                           f"({response.headers.get('content-type', 'no content type')})",
                           hint="an import reads JSON APIs: check the url") from None


def _log_page(ingest_log, definition: ImportDefinition, contract, records: list, request: PageRequest,
              summary: ImportSummary, seen: set[str]) -> tuple[int, int]:
    """Validate the page's records and append them to the ingest log (fsynced when it returns);
    the page's (accepted, rejected) counts, added to ``summary``."""
    outcome = validate_to_records(contract, definition.source, records, f"import:{definition.name}:{request.page}",
                                  time.time_ns() // 1000)
    if outcome.records:
        ingest_log.append(outcome.records)
    ids = [i for r in outcome.records if r.kind == EVENTS for i in _event_ids(r.payload)]
    again = {i for i in ids if i in seen} | ingest_log.already_seen(definition.source, sorted(set(ids) - seen))
    seen.update(ids)
    summary.pages += 1
    summary.records += len(records)
    summary.accepted += outcome.accepted
    summary.rejected += len(outcome.rejected)
    summary.duplicates += sum(1 for i in ids if i in again)
    room = max(3 - len(summary.examples), 0)
    summary.examples += [{"page": request.page, **r} for r in outcome.rejected[:room]]
    return outcome.accepted, len(outcome.rejected)


def _event_ids(payload: bytes) -> list[str]:
    """The event ids of a logged batch of accepted events (Arrow IPC)."""
    with pa.ipc.open_stream(io.BytesIO(payload)) as reader:
        return reader.read_all().column(EVENT_ID).to_pylist()


def _say(progress, text: str) -> None:
    if progress is not None:
        progress(text)
