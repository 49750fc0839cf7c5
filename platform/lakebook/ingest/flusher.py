"""Move the ingest log into the lake: ``raw/<source>/date=YYYY-MM-DD/*.parquet`` for valid
events and ``quarantine/<source>/date=…/*.parquet`` for rejected ones.

Crash safety, step by step (a kill at any point loses and duplicates nothing):
1. open an intent for the source's logged sequence range (committed to the log first);
2. drop events whose id is already in the lake (re-sends) or repeats within the range;
3. write one file per date, named by the range: a file already there is from an earlier try;
4. record the files in the catalog (by path, so a second record changes nothing);
5. in one log transaction remember the ids, keep the range's batches a consumer group has not
   committed (retention.py: out of the backlog, still readable by the group), delete the range
   and close the intent.
A crash before 5 leaves the intent open; the next flush redoes exactly that range. A full
disk is the same: the source's flush stops, and the next one redoes the range.

Sources are flushed one by one and apart: an error in one source's flush (its data, its
contract gone, the disk) leaves that source's range in the log, is logged and reported
(FlushReport.failed), and the source is tried again after a growing pause (FlushBackoff);
the other sources are flushed as usual. Events a contract refuses by the time they are
flushed are quarantined (records.py), not an error.

Stored blobs not yet in the catalog are landed by the same flush, after the ingest log,
source by source and with the same backoff (landing.py).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from .._proc import file_lock
from ..catalog import Catalog, open_catalog, register_sources
from ..contracts import EVENT_ID, INGESTED_AT
from ..errors import DamagedFile, InsufficientStorage, LakebookError, UnknownSource, out_of_space
from ..lake import range_stem, write_date_partitions
from .landing import BlobLanding, blob_sources, land_source
from .log import ACCEPTED_KINDS, FlushIntent, IngestLog, open_ingest_log
from .records import QUARANTINE_SCHEMA, concat_events, logged_to_table

log = logging.getLogger("lakebook.ingest.flusher")

@dataclass
class SourceFlush:
    source: str
    events: int = 0
    duplicates: int = 0
    rejected: int = 0
    files: list[Path] = field(default_factory=list)


@dataclass
class SourceFailure:
    source: str
    error: str  # the exception, one line
    failures: int  # failed flushes of the source in a row
    retry_at: float  # Unix time of the next try
    storage: bool = False  # a full disk or a damaged file, not the source's own trouble


class FlushBackoff:
    """When each source whose flush failed is tried again: ``first_s`` after its first failure,
    twice as long after each further failure in a row, at most ``max_s``. A flusher keeps one
    from flush to flush (a fresh one tries every source)."""

    def __init__(self, first_s: float = 2.0, max_s: float = 300.0):
        self.first_s, self.max_s = first_s, max_s
        self.failing: dict[str, SourceFailure] = {}

    def due(self, source: str, now: float) -> bool:
        failure = self.failing.get(source)
        return failure is None or now >= failure.retry_at

    def failed(self, source: str, exc: BaseException, now: float) -> SourceFailure:
        """Record a failure; a full disk or a damaged file is tried again after ``first_s``
        (it is not the source's doing, and space can come back any moment)."""
        failures = self.failing[source].failures + 1 if source in self.failing else 1
        storage = isinstance(exc, (InsufficientStorage, DamagedFile))
        pause = self.first_s if storage else min(self.max_s, self.first_s * 2 ** (failures - 1))
        error = (exc.message if isinstance(exc, LakebookError) else f"{type(exc).__name__}: {exc}").splitlines()[0][:500]
        self.failing[source] = SourceFailure(source, error, failures, now + pause, storage)
        return self.failing[source]

    def succeeded(self, source: str) -> None:
        self.failing.pop(source, None)


@dataclass
class FlushReport:
    sources: list[SourceFlush] = field(default_factory=list)
    failed: list[SourceFailure] = field(default_factory=list)  # sources whose flush failed this time
    waiting: list[SourceFailure] = field(default_factory=list)  # failing sources not due for a try yet
    blobs: list[BlobLanding] = field(default_factory=list)  # blobs landed in the catalog and the lake

    @property
    def events(self) -> int:
        return sum(s.events for s in self.sources)

    @property
    def rejected(self) -> int:
        return sum(s.rejected for s in self.sources)

    @property
    def duplicates(self) -> int:
        return sum(s.duplicates for s in self.sources)


def flush_lock(workspace):
    """One flusher at a time per workspace."""
    return file_lock(workspace.flush_lock_path)


def flush_ingest_log_to_raw(workspace, ingest_log: IngestLog | None = None, catalog: Catalog | None = None,
                            backoff: FlushBackoff | None = None, *, batching: bool = False) -> FlushReport:
    """Flush everything logged so far for every source due for it (``backoff``); safe to call
    at any time, from any process. A source whose flush fails is in the report, not raised;
    what fails for every source (the lock, the catalog) is raised. ``batching`` (the periodic
    flush): a source is left in the log while it holds fewer than ``ingest.flush_min_events``
    events, all younger than ``ingest.flush_max_age_s`` (a crashed flush is always finished)."""
    own_log = ingest_log is None
    ingest_log = ingest_log or open_ingest_log(workspace)
    catalog = catalog or open_catalog(workspace, register=False)
    backoff = backoff or FlushBackoff()
    report = FlushReport()
    try:
        with flush_lock(workspace):
            contracts = workspace.contracts()
            register_sources(workspace, catalog)
            for source in ingest_log.sources_with_work():
                if not backoff.due(source, time.time()):
                    report.waiting.append(backoff.failing[source])
                    continue
                if batching and not _worth_a_file(workspace.settings.ingest, ingest_log, source):
                    continue
                try:
                    _flush_source_log(workspace, ingest_log, catalog, source, contracts.get(source), report)
                except Exception as exc:  # noqa: BLE001 - the other sources go on; this one is retried
                    report.failed.append(_failed(backoff, source, _disk_full(workspace, exc)))
                else:
                    backoff.succeeded(source)
            _land_blobs(workspace, catalog, backoff, report)
    except Exception as exc:
        translated = _disk_full(workspace, exc)
        if translated is not exc:
            raise translated from exc
        raise
    finally:
        if own_log:
            ingest_log.close()
    return report


def _worth_a_file(settings, ingest_log: IngestLog, source: str) -> bool:
    """Whether the periodic flush writes ``source`` now: a crashed flush to finish, at least
    ``flush_min_events`` events, or one as old as ``flush_max_age_s``."""
    if settings.flush_min_events <= 1:
        return True
    events, oldest_us, open_flush = ingest_log.pending(source)
    if open_flush or events >= settings.flush_min_events or oldest_us is None:
        return True
    return time.time() - oldest_us / 1e6 >= settings.flush_max_age_s


def _land_blobs(workspace, catalog: Catalog, backoff: FlushBackoff, report: FlushReport) -> None:
    """Land the stored blobs of every source that has new ones (a source's failure is
    reported and retried with backoff, as a source's flush is)."""
    for source in blob_sources(workspace):
        key = f"{source} (blobs)"
        if not backoff.due(key, time.time()):
            report.waiting.append(backoff.failing[key])
            continue
        try:
            report.blobs += land_source(workspace, catalog, source)
        except Exception as exc:  # noqa: BLE001 - the other sources go on; this one is retried
            report.failed.append(_failed(backoff, key, _disk_full(workspace, exc)))
        else:
            backoff.succeeded(key)


def _disk_full(workspace, exc: Exception) -> Exception:
    """A full disk said in lakebook's words (InsufficientStorage); any other error as it is."""
    if out_of_space(exc) and not isinstance(exc, InsufficientStorage):
        return InsufficientStorage(
            f"the disk is full: the flush into the lake ({workspace.lake.root}) failed",
            hint="free space on that disk: the events stay in the ingest log and the next flush writes them")
    return exc


def flush_failed(exc: Exception) -> str:
    """Log a flush that failed as a whole (a full disk or a damaged file in one line, anything
    else with its traceback) and say why it failed, for the server's health."""
    if isinstance(exc, LakebookError):
        log.error("flush failed; events stay in the ingest log: %s", exc.message)
        return exc.message
    log.exception("flush failed; events stay in the ingest log")
    return f"the last flush failed ({type(exc).__name__}); the server log has the details"


def _failed(backoff: FlushBackoff, source: str, exc: Exception) -> SourceFailure:
    failure = backoff.failed(source, exc, time.time())
    log.error("flush of %s failed (%d in a row; its events stay in the ingest log, tried again in %.0f s): %s",
              source, failure.failures, failure.retry_at - time.time(), failure.error,
              exc_info=not isinstance(exc, LakebookError))  # lakebook's own errors say it in one line
    return failure


def _flush_source_log(workspace, ingest_log: IngestLog, catalog: Catalog, source: str, contract,
                      report: FlushReport) -> None:
    """A crashed flush's range of ``source`` first, exactly as it was; then what was logged when
    this flush began, oldest first, a bounded range at a time (MAX_FLUSH_EVENTS)."""
    if contract is None:
        raise UnknownSource(f"the ingest log holds events of {source!r}, whose contract is missing or never compiled",
                            hint=f"they stay in the log until contracts/{source}.yaml is there and compiles")
    end = ingest_log.last_seq(source)
    while (intent := ingest_log.open_intent(source)) is not None:
        report.sources.append(_flush_source(workspace, ingest_log, catalog, intent, contract))
        if end is None or intent.seq_hi >= end:
            break


def _flush_source(workspace, ingest_log: IngestLog, catalog: Catalog, intent: FlushIntent, contract) -> SourceFlush:
    result = SourceFlush(intent.source)
    events, rejected = _read_range(ingest_log, intent, contract)
    stem = range_stem(intent.seq_lo, intent.seq_hi)
    compression = workspace.settings.lake.compression
    new_ids: list[str] = []
    if events is not None:
        fresh, new_ids = _drop_duplicates(events, ingest_log, intent.source)
        result.duplicates = events.num_rows - fresh.num_rows
        result.events = fresh.num_rows
        files = write_date_partitions(
            fresh, workspace.lake.table_dir("raw", intent.source), contract.contract.event_time, stem,
            ingested_column=INGESTED_AT, compression=compression,
        )
        catalog.record_files("raw", intent.source, files)
        result.files += [f.path for f in files]
    if rejected is not None:
        result.rejected = rejected.num_rows
        files = write_date_partitions(
            rejected, workspace.lake.table_dir("quarantine", intent.source), "_received_at", stem,
            ingested_column="_received_at", compression=compression,
        )
        catalog.record_files("quarantine", intent.source, files)
        result.files += [f.path for f in files]
    ingest_log.commit_flush(intent, new_ids)
    log.info("flushed %s: %d events (%d duplicates dropped), %d rejected, %d files",
             intent.source, result.events, result.duplicates, result.rejected, len(result.files))
    return result


def _read_range(ingest_log: IngestLog, intent: FlushIntent, contract) -> tuple[pa.Table | None, pa.Table | None]:
    event_tables, rejected_rows = [], []
    for seq, kind, received_us, payload in ingest_log.read(intent):
        if kind in ACCEPTED_KINDS:  # validated again if the contract changed since (records.py)
            table, refused = logged_to_table(contract, kind, payload, received_us, seq)
            event_tables.append(table)
            rejected_rows.extend(refused)
        else:
            rejected_rows.extend(orjson.loads(payload))
    events = concat_events(event_tables)
    rejected = None
    if rejected_rows:
        for row in rejected_rows:
            row["_received_at"] = datetime.fromtimestamp(row["_received_at"] / 1e6, tz=timezone.utc)
        rejected = pa.Table.from_pylist(rejected_rows, schema=QUARANTINE_SCHEMA)
    return events, rejected


def _drop_duplicates(events: pa.Table, ingest_log: IngestLog, source: str) -> tuple[pa.Table, list[str]]:
    """Keep the first occurrence of each event id that is not already in the lake; also
    returns the kept ids in sorted order (the order the log looks them up and stores them)."""
    ids = events.column(EVENT_ID).combine_chunks()
    sorted_ids, repeats = _sorted(ids)
    if repeats:
        positions = pa.array(np.arange(events.num_rows))
        firsts = (pa.table({"id": ids, "pos": positions})
                  .group_by("id", use_threads=False).aggregate([("pos", "min")]))
        keep = pc.sort_indices(firsts.column("pos_min"))
        events = events.take(pc.take(firsts.column("pos_min"), keep))
        sorted_ids = list(dict.fromkeys(sorted_ids))
    seen = ingest_log.already_seen(source, sorted_ids)
    if seen:
        events = events.filter(pc.invert(pc.is_in(events.column(EVENT_ID), value_set=pa.array(sorted(seen)))))
        sorted_ids = [i for i in sorted_ids if i not in seen]
    return events, sorted_ids


def _sorted(ids: pa.Array) -> tuple[list[str], bool]:
    """The ids sorted, and whether any repeats. Ids of one width (the hex digests of composite
    and content ids) are sorted as fixed-width bytes by numpy, several times faster."""
    n = len(ids)
    if n and ids.null_count == 0 and pa.types.is_string(ids.type):
        offsets = np.frombuffer(ids.buffers()[1], dtype=np.int32, count=n + 1, offset=4 * ids.offset)
        width = int(offsets[1] - offsets[0])
        if 0 < width and int(offsets[-1] - offsets[0]) == width * n and (np.diff(offsets) == width).all():
            data = np.frombuffer(ids.buffers()[2], dtype=np.uint8, count=width * n, offset=int(offsets[0]))
            if ((data > 32) & (data < 127)).all():  # printable ASCII: no NUL for numpy to drop, and
                ordered = np.sort(data.view(f"S{width}"))  # byte order is the order of the text
                return ordered.astype(f"U{width}").tolist(), bool((ordered[1:] == ordered[:-1]).any())
    ordered = pc.take(ids, pc.sort_indices(ids))
    values = ordered.to_pylist()
    return values, any(a == b for a, b in zip(values, values[1:]))
