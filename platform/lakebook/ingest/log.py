"""The durable ingest log: where an event is when the HTTP 200 is sent.

Embedded default: SQLite in WAL mode with ``synchronous=FULL`` (the WAL is fsynced on every
commit). A single writer thread takes every append waiting in its queue and commits them in
one transaction (group commit), so many concurrent requests share one fsync.

Exactly-once to the lake rests on three tables in the same database:

- ``batches``: accepted events and rejected ones, by sequence number (AUTOINCREMENT, so a
  sequence number is never reused even after batches are deleted). An NDJSON body whose
  every line passed the contract's check is kept as it came (kind ``ndjson``: the flusher
  makes the columns and ids); other accepted events as Arrow IPC (``events``); rejected
  ones as JSON with their reasons (``rejected``).
- ``flush_intents``: the sequence range a flush of a source is working on, committed before
  any file is written, so a flush that crashed is finished with exactly the same range.
- ``seen_ids``: every event id already in the lake, for idempotent re-sends.

Consumer groups (the event bus over this log) add their offsets and the flushed batches kept
for them, in the same database and transactions (retention.py).
"""

from __future__ import annotations

import functools
import logging
import queue
import sqlite3
import threading
import time
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Protocol

import orjson

from ..errors import DamagedFile, InsufficientStorage, LakebookError
from . import retention
from .retention import GroupBatch

log = logging.getLogger("lakebook.ingest.log")

EVENTS = "events"  # accepted events, Arrow IPC
NDJSON = "ndjson"  # accepted events, the NDJSON body as received
REJECTED = "rejected"  # rejected input with reasons, JSON
ACCEPTED_KINDS = (EVENTS, NDJSON)
# One flush takes at most this many events (its batches are held in memory at once); the
# flusher takes the next range right after (flusher.py).
MAX_FLUSH_EVENTS = 250_000
# Per source, flushed events a consumer group has not committed that the log keeps (stream.retain_events).
RETAIN_EVENTS = 1_000_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    kind TEXT NOT NULL,
    n INTEGER NOT NULL,
    received_at_us INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS batches_by_source ON batches(source, seq);
CREATE TABLE IF NOT EXISTS flush_intents (
    source TEXT PRIMARY KEY,
    seq_lo INTEGER NOT NULL,
    seq_hi INTEGER NOT NULL,
    created_at_us INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS seen_ids (
    source TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (source, event_id)
) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class LogRecord:
    source: str
    kind: str  # EVENTS, NDJSON or REJECTED
    n: int
    received_at_us: int
    payload: bytes


@dataclass(frozen=True)
class FlushIntent:
    source: str
    seq_lo: int
    seq_hi: int
    recovered: bool = field(default=False, compare=False)  # left open by a flush that crashed


class IngestLog(Protocol):
    """What the ingest server and the flusher need of a log backend."""

    def append(self, records: list[LogRecord]) -> None: ...
    def backlog_events(self) -> int: ...
    def backlog_by_source(self) -> dict[str, int]: ...
    def sources_with_work(self) -> list[str]: ...
    def pending(self, source: str) -> tuple[int, int | None, bool]: ...
    def last_seq(self, source: str) -> int | None: ...
    def open_intent(self, source: str, max_events: int = ...) -> FlushIntent | None: ...
    def read(self, intent: FlushIntent) -> Iterator[tuple[int, str, int, bytes]]: ...
    def already_seen(self, source: str, event_ids: list[str]) -> set[str]: ...
    def commit_flush(self, intent: FlushIntent, event_ids: Iterable[str]) -> None: ...
    def close(self) -> None: ...


_SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_NOTADB = 11, 13, 26


def sqlite_log_error(path: Path, exc: sqlite3.Error) -> LakebookError | None:
    """The LakebookError for a SQLite error that is not a bug: a full disk (nothing was
    written: retry once there is space) or a damaged file (an operator must look); else None."""
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    if code == _SQLITE_FULL:
        return InsufficientStorage(
            f"the disk holding the ingest log ({path.parent}) is full: nothing was stored",
            hint="free space on that disk, then send again (no restart needed)")
    if code in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
        return DamagedFile(f"the ingest log {path} is damaged ({exc})",
                           hint="stop the ingest server, keep a copy of the file, and run `lakebook doctor`")
    return None


def _translated(method):
    """A SQLiteIngestLog method that raises SQLite's full-disk and damaged-file errors as what
    they mean (sqlite_log_error)."""

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        with self._translating():
            return method(self, *args, **kwargs)

    return call


def _rollback(con: sqlite3.Connection) -> None:
    """Roll back if a transaction is open: SQLite ends one itself on some errors (a full disk),
    and a ROLLBACK then would raise over the error that matters."""
    if con.in_transaction:
        con.execute("ROLLBACK")


class SQLiteIngestLog:
    """Ingest log in one SQLite file (WAL, fsync on commit), with consumer groups over it
    that keep up to ``retain_events`` flushed events per source they have not committed."""

    def __init__(self, path: Path, retain_events: int = RETAIN_EVENTS):
        self.path = path
        self.retain_events = retain_events
        self._pruning: set[str] = set()  # sources whose last flush dropped events kept for groups
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._translating(), self._connect() as con:
            con.executescript(_SCHEMA + retention.SCHEMA)

    @contextmanager
    def _translating(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            error = sqlite_log_error(self.path, exc)
            if error is None:
                raise
            raise error from exc

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL")
        # seen_ids is keyed by random hashes: a flush touches pages all over it. A larger page
        # cache (allocated only as pages are read) keeps it from reading them again per flush.
        con.execute("PRAGMA cache_size=-65536")
        return con

    @property
    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = self._local.con = self._connect()
        return con

    @_translated
    def append(self, records: list[LogRecord]) -> None:
        """Write records in one transaction; durable (fsynced) when this returns."""
        con = self._con
        con.execute("BEGIN IMMEDIATE")
        try:
            con.executemany(
                "INSERT INTO batches(source, kind, n, received_at_us, payload) VALUES (?,?,?,?,?)",
                [(r.source, r.kind, r.n, r.received_at_us, r.payload) for r in records],
            )
            con.execute("COMMIT")
        except BaseException:
            _rollback(con)
            raise

    @_translated
    def backlog_events(self) -> int:
        row = self._con.execute("SELECT coalesce(sum(n), 0) FROM batches WHERE kind IN (?, ?)",
                                ACCEPTED_KINDS).fetchone()
        return int(row[0])

    @_translated
    def backlog_by_source(self) -> dict[str, int]:
        """Accepted events not yet flushed, by source (sources with none left out)."""
        rows = self._con.execute("SELECT source, sum(n) FROM batches WHERE kind IN (?, ?) GROUP BY source",
                                 ACCEPTED_KINDS).fetchall()
        return {source: int(n) for source, n in rows}

    @_translated
    def sources_with_work(self) -> list[str]:
        rows = self._con.execute(
            "SELECT DISTINCT source FROM batches UNION SELECT source FROM flush_intents ORDER BY 1"
        ).fetchall()
        return [r[0] for r in rows]

    @_translated
    def pending(self, source: str) -> tuple[int, int | None, bool]:
        """(events logged and not flushed, when the oldest of them was received in µs, whether a
        flush of the source is open) of ``source``, in one read."""
        return self._con.execute(
            "SELECT (SELECT coalesce(sum(n), 0) FROM batches WHERE source = ?), "
            "(SELECT min(received_at_us) FROM batches WHERE source = ?), "
            "EXISTS (SELECT 1 FROM flush_intents WHERE source = ?)", (source, source, source)).fetchone()

    @_translated
    def last_seq(self, source: str) -> int | None:
        """The sequence number of the newest batch of ``source`` in the log (None if none)."""
        return self._con.execute("SELECT max(seq) FROM batches WHERE source = ?", (source,)).fetchone()[0]

    @_translated
    def open_intent(self, source: str, max_events: int = MAX_FLUSH_EVENTS) -> FlushIntent | None:
        """The unfinished flush of ``source`` if one crashed, else a new one over the oldest
        batches logged so far, up to ``max_events`` events (at least one batch), committed
        before the caller writes any file; None if idle."""
        con = self._con
        con.execute("BEGIN IMMEDIATE")
        try:
            row = con.execute("SELECT seq_lo, seq_hi FROM flush_intents WHERE source = ?", (source,)).fetchone()
            recovered = row is not None
            if row is None:
                row = self._oldest(source, max_events)
                if row is None:
                    con.execute("COMMIT")
                    return None
                con.execute(
                    "INSERT INTO flush_intents(source, seq_lo, seq_hi, created_at_us) VALUES (?,?,?,?)",
                    (source, row[0], row[1], time.time_ns() // 1000),
                )
            con.execute("COMMIT")
        except BaseException:
            _rollback(con)
            raise
        return FlushIntent(source, row[0], row[1], recovered)

    def _oldest(self, source: str, max_events: int) -> tuple[int, int] | None:
        """(first, last) sequence number of the oldest batches of ``source`` holding at most
        ``max_events`` events together (the first batch whatever its size)."""
        cur = self._con.execute("SELECT seq, n FROM batches WHERE source = ? ORDER BY seq", (source,))
        first = last = None
        total = 0
        for seq, n in cur:
            if first is not None and total + n > max_events:
                break
            first = seq if first is None else first
            last, total = seq, total + n
        cur.close()
        return None if first is None else (first, last)

    def read(self, intent: FlushIntent) -> Iterator[tuple[int, str, int, bytes]]:
        """(seq, kind, received_at_us, payload) of every batch in the intent's range, in order."""
        with self._translating():
            cur = self._con.execute(
                "SELECT seq, kind, received_at_us, payload FROM batches WHERE source = ? AND seq BETWEEN ? AND ? ORDER BY seq",
                (intent.source, intent.seq_lo, intent.seq_hi),
            )
            yield from cur

    @_translated
    def already_seen(self, source: str, event_ids: list[str]) -> set[str]:
        # One statement over a JSON array of the ids, in key order (neighbouring lookups share
        # pages). CROSS JOIN keeps SQLite from reordering the loop: each id is one primary-key probe.
        if not event_ids:
            return set()
        ids = _json_array(event_ids)
        con = self._con
        if ids is None:
            con.execute("CREATE TEMP TABLE IF NOT EXISTS probe(event_id TEXT PRIMARY KEY) WITHOUT ROWID")
            con.execute("DELETE FROM probe")
            con.executemany("INSERT OR IGNORE INTO probe VALUES (?)", ((i,) for i in event_ids))
            rows = con.execute(
                "SELECT p.event_id FROM probe p JOIN seen_ids s ON s.source = ? AND s.event_id = p.event_id",
                (source,),
            ).fetchall()
            con.execute("DELETE FROM probe")
        else:
            rows = con.execute(
                "SELECT j.value FROM json_each(?) AS j CROSS JOIN seen_ids AS s "
                "ON s.source = ? AND s.event_id = j.value",
                (ids, source),
            ).fetchall()
        return {r[0] for r in rows}

    @_translated
    def commit_flush(self, intent: FlushIntent, event_ids: Iterable[str]) -> None:
        """Mark a flush done: remember its ids, drop its batches, close the intent — atomically."""
        con = self._con
        event_ids = list(event_ids)
        con.execute("BEGIN IMMEDIATE")
        try:
            ids = _json_array(event_ids) if event_ids else ""
            if ids:  # in key order: the inserts walk the index from left to right
                con.execute(
                    "INSERT OR IGNORE INTO seen_ids(source, event_id) SELECT ?, value FROM json_each(?)",
                    (intent.source, ids),
                )
            elif ids is None:
                con.executemany(
                    "INSERT OR IGNORE INTO seen_ids(source, event_id) VALUES (?, ?)",
                    ((intent.source, i) for i in event_ids),
                )
            dropped = retention.retain_flushed(con, intent.source, intent.seq_lo, intent.seq_hi, ACCEPTED_KINDS,
                                               self.retain_events)
            con.execute(
                "DELETE FROM batches WHERE source = ? AND seq BETWEEN ? AND ?",
                (intent.source, intent.seq_lo, intent.seq_hi),
            )
            con.execute("DELETE FROM flush_intents WHERE source = ?", (intent.source,))
            con.execute("COMMIT")
        except BaseException:
            _rollback(con)
            raise
        self._told_pruned(intent.source, dropped)

    def _told_pruned(self, source: str, dropped: int) -> None:
        """Say once, until a flush of the source drops nothing, that its groups read the lake."""
        if not dropped:
            self._pruning.discard(source)
        elif source not in self._pruning:
            self._pruning.add(source)
            log.warning("a consumer group of %s is more than %d events behind (stream.retain_events): the log "
                        "lets go of the oldest it kept, and the group reads them from the lake", source,
                        self.retain_events)

    # -- consumer groups (retention.py) ------------------------------------------------------
    @contextmanager
    def _transaction(self, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
        con = self._con
        con.execute(f"BEGIN {mode}")
        try:
            yield con
            con.execute("COMMIT")
        except BaseException:
            _rollback(con)
            raise

    @_translated
    def register_group(self, group: str, sources: list[str], start: str = "earliest") -> None:
        """Let ``group`` read ``sources`` from ``start`` ("earliest" the log holds, or "latest");
        a source it reads already keeps its offset."""
        with self._transaction() as con:
            retention.register(con, group, sources, start)

    @_translated
    def group_batches(self, group: str, source: str, max_events: int) -> list[GroupBatch] | None:
        """The accepted batches after the group's offset (retention.batches_after); None if the
        group does not read ``source``."""
        with self._transaction("DEFERRED") as con:
            offset = retention.committed(con, group, source)
            return None if offset is None else retention.batches_after(con, source, offset, max_events,
                                                                       ACCEPTED_KINDS)

    @_translated
    def commit_group(self, group: str, source: str, offset: int) -> bool:
        """The group has processed everything of ``source`` up to ``offset``; False if it does
        not read ``source``."""
        with self._transaction() as con:
            return retention.commit(con, group, source, offset)

    @_translated
    def drop_group(self, group: str) -> None:
        """Forget the group and what the log kept for it alone (nothing if it is unknown)."""
        with self._transaction() as con:
            retention.drop(con, group)

    @_translated
    def group_lag(self, group: str, source: str) -> int | None:
        """Events of ``source`` accepted and not committed by the group; None if it does not read it."""
        with self._transaction("DEFERRED") as con:
            offset = retention.committed(con, group, source)
            return None if offset is None else retention.lag(con, source, offset, ACCEPTED_KINDS)

    @_translated
    def ranges_in_use(self, source: str) -> list[tuple[int, int]]:
        """The flush ranges of ``source`` a consumer group may read back from the lake by file
        name (retention.ranges_in_use), in one read."""
        with self._transaction("DEFERRED") as con:
            return retention.ranges_in_use(con, source)

    @_translated
    def group_offsets(self) -> list[tuple[str, str, int, int]]:
        """(group, source, committed offset, lag in events) of every group and source it reads."""
        with self._transaction("DEFERRED") as con:
            return [(group, source, offset, retention.lag(con, source, offset, ACCEPTED_KINDS))
                    for group, source, offset in retention.offsets(con)]

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None


def _json_array(ids: list[str]) -> str | None:
    """Ids as a sorted JSON array (text: SQLite's JSON functions take no BLOB); None if an id
    holds a NUL character, which json_each would cut off there: those go one by one."""
    text = orjson.dumps(sorted(ids)).decode()
    return None if "\\u0000" in text else text


def open_ingest_log(workspace) -> IngestLog:
    """The ingest log backend ``ingest.log`` selects, at the workspace's ingest log path."""
    from ..backends import ingest_logs

    return ingest_logs.load(workspace.settings.ingest.log.type)(workspace.ingest_log_path,
                                                                retain_events=workspace.settings.stream.retain_events)


_RECOUNT = object()


class GroupCommitWriter:
    """One thread that appends to the log; all appends waiting at once share a commit.

    It also keeps ``failure``, the error of the last commit if it failed (the server's health
    reads it), and ``by_source``, the events of each source in the log not yet flushed: raised
    by every commit before its requests are answered, and set from the log itself by
    ``recount()`` (after a flush, which may run in another process). The recount runs on this
    thread between two commits, so it never misses or double-counts an append of this writer.
    ``by_source`` is replaced, never changed in place: other threads read it without a lock."""

    def __init__(self, ingest_log: IngestLog, max_group: int = 512):
        self._log = ingest_log
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._max_group = max_group
        self.commits = 0
        self.failure: Exception | None = None  # why the last commit failed; None once one succeeds
        self.by_source: dict[str, int] = ingest_log.backlog_by_source()
        self._thread = threading.Thread(target=self._run, name="lakebook-ingest-writer", daemon=True)
        self._thread.start()

    @property
    def backlog(self) -> int:
        """Events in the log not yet flushed, all sources together."""
        return sum(self.by_source.values())

    def recount(self) -> None:
        """Ask for ``backlog`` to be read from the log again (returns at once)."""
        self._queue.put(_RECOUNT)

    def submit(self, records: list[LogRecord]) -> Future:
        future: Future = Future()
        self._queue.put((records, future))
        return future

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            recount = item is _RECOUNT
            group = [] if recount else [item]
            while len(group) < self._max_group:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                if nxt is _RECOUNT:
                    recount = True
                else:
                    group.append(nxt)
            if group:
                self._commit(group)
            if recount:
                self._recount()

    def _recount(self) -> None:
        try:
            self.by_source = self._log.backlog_by_source()
        except Exception:  # the count stays as it was until the next recount
            log.exception("could not count the ingest log's backlog")

    def _commit(self, group: list) -> None:
        try:
            records = [r for records, _ in group for r in records]
            self._log.append(records)
            self.commits += 1
            backlog = dict(self.by_source)
            for r in records:
                if r.kind in ACCEPTED_KINDS:
                    backlog[r.source] = backlog.get(r.source, 0) + r.n
            self.by_source = backlog
        except Exception as exc:  # every waiting request learns it was not acknowledged
            self._failed(exc)
            for _, future in group:
                future.set_exception(exc)
            return
        self.failure = None
        for _, future in group:
            future.set_result(None)

    def _failed(self, exc: Exception) -> None:
        if not isinstance(exc, LakebookError):
            log.exception("ingest log append failed")
        elif type(self.failure) is not type(exc):  # a full disk is told once, not per request
            log.error("ingest log append failed: %s", exc.message)
        self.failure = exc
