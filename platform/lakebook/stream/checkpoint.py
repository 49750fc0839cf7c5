"""A definition's speed-layer state on disk: SQLite under ``<state dir>/stream/state/``.

It holds what rebuilds the operator (windows: every event applied, with its bucket and
partials, and each entity's last online stamp; latest: each entity's latest row), the bus
offset each source was applied up to, and the ``speed.*`` rows not yet written to the lake.

Invariants: a micro-batch's applied rows, stamps, speed rows and offset are committed in one
transaction, fsynced (a killed process resumes from the last micro-batch it finished, and the
events it reads again are already known by id); events of forgotten buckets are deleted in
that transaction too. Speed rows leave for the lake as the ingest log's events do: an intent
names the offset range first, the file is named after the range, and the rows are deleted
only once it is catalogued, so a write repeated after a crash writes the same file.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..errors import FeatureStoreError
from ..features.windows import FeatureDefinition
from .inputs import EVENT_ID
from .operators import Change, LatestOperator, WindowOperator

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS progress (source TEXT PRIMARY KEY, offset INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS stamps (key TEXT PRIMARY KEY, stamp_us INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS latest (key TEXT PRIMARY KEY, t_us INTEGER NOT NULL, row BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS speed (lo INTEGER PRIMARY KEY, hi INTEGER NOT NULL, rows BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS speed_flush (id INTEGER PRIMARY KEY CHECK (id = 1), lo INTEGER NOT NULL, hi INTEGER NOT NULL);
"""


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _table(blob: bytes) -> pa.Table:
    return pa.ipc.open_stream(blob).read_all()


def _key_text(key: tuple) -> str:
    return json.dumps(list(key))


def fingerprint(definition: FeatureDefinition) -> str:
    """What the stored state depends on: the definition without its prose."""
    shape = definition.model_dump(mode="json", exclude={"description", "owner"})
    return hashlib.sha256(json.dumps(shape, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Checkpoint:
    def __init__(self, path: Path, definition: FeatureDefinition):
        self.path, self.definition = path, definition
        path.parent.mkdir(parents=True, exist_ok=True)
        self.con = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.con.execute("PRAGMA journal_mode=WAL")
        self.con.execute("PRAGMA synchronous=FULL")
        self.con.executescript(_SCHEMA)
        values = "".join(f", v{i} REAL" for i in range(len(definition.partials)))
        self.con.execute("CREATE TABLE IF NOT EXISTS events (id TEXT PRIMARY KEY, key TEXT NOT NULL, "
                         f"bucket INTEGER NOT NULL, t_us INTEGER NOT NULL{values})")
        self._check_fingerprint()

    def _check_fingerprint(self) -> None:
        wanted = fingerprint(self.definition)
        found = self.con.execute("SELECT value FROM meta WHERE name = 'definition'").fetchone()
        if found is None:
            self.con.execute("INSERT INTO meta VALUES ('definition', ?)", (wanted,))
        elif found[0] != wanted:
            raise FeatureStoreError(
                f"the definition of {self.definition.name} changed since the stream saved its state in {self.path}",
                hint="stop the stream and delete that file: the view is then rebuilt from the events the bus still holds")

    def offset(self, source: str) -> int | None:
        """The last bus offset of ``source`` applied, or None."""
        found = self.con.execute("SELECT offset FROM progress WHERE source = ?", (source,)).fetchone()
        return found[0] if found else None

    # -- rebuilding the operator ------------------------------------------------------------------
    def restore(self, operator) -> None:
        if isinstance(operator, LatestOperator):
            for key, t_us, row in self.con.execute("SELECT key, t_us, row FROM latest"):
                values = _table(row).select(self.definition.feature_names).to_pylist()[0]
                operator.restore(tuple(json.loads(key)), t_us, list(values.values()))
            return
        self._restore_windows(operator)

    def _restore_windows(self, operator: WindowOperator) -> None:
        n = len(self.definition.partials)
        sums = "".join(f", coalesce(sum(v{i}), 0), count(v{i})" for i in range(n))
        ids: dict[tuple, list[str]] = {}
        for key, bucket, event_id in self.con.execute("SELECT key, bucket, id FROM events"):
            ids.setdefault((key, bucket), []).append(event_id)
        for row in self.con.execute(f"SELECT key, bucket, max(t_us), count(*){sums} FROM events GROUP BY key, bucket"):
            key, bucket, newest = row[:3]
            operator.restore(tuple(json.loads(key)), bucket, np.array(row[3:], dtype=float), newest, ids[(key, bucket)])
        for key, stamp in self.con.execute("SELECT key, stamp_us FROM stamps"):
            operator.stamps[tuple(json.loads(key))] = stamp

    # -- one micro-batch ------------------------------------------------------------------------
    def save(self, change: Change, source: str, first: int, last: int) -> None:
        """Record a micro-batch (bus offsets ``first``..``last``) and what it changed, at once."""
        speed = change.speed.append_column("_offset", pa.array([last] * change.speed.num_rows, pa.int64()))
        with self._transaction():
            if self.definition.kind == "windows":
                self._save_windows(change)
            else:
                self._save_latest(change)
            if speed.num_rows:
                self.con.execute("INSERT OR REPLACE INTO speed VALUES (?, ?, ?)", (first, last, _ipc(speed)))
            self.con.execute("INSERT OR REPLACE INTO progress VALUES (?, ?)", (source, last))

    def _save_windows(self, change: Change) -> None:
        applied, n = change.applied, len(self.definition.partials)
        keys = [_key_text(k) for k in zip(*(applied.column(k).to_pylist() for k in self.definition.keys))]
        columns = [applied.column(EVENT_ID).to_pylist(), keys, applied.column("__bucket").to_pylist(),
                   applied.column("__t_us").to_pylist(), *(applied.column(f"__v{i}").to_pylist() for i in range(n))]
        marks = ", ".join("?" * (4 + n))
        self.con.executemany(f"INSERT OR IGNORE INTO events VALUES ({marks})", zip(*columns))
        self.con.executemany("INSERT OR REPLACE INTO stamps VALUES (?, ?)",
                             [(_key_text(k), s) for k, s in change.stamps.items()])
        if change.horizon is not None:
            self.con.execute("DELETE FROM events WHERE bucket < ?", (change.horizon,))

    def _save_latest(self, change: Change) -> None:
        online = change.online
        keys = zip(*(online.column(k).to_pylist() for k in self.definition.keys))
        self.con.executemany("INSERT OR REPLACE INTO latest VALUES (?, ?, ?)",
                             [(_key_text(k), change.stamps[k], _ipc(online.slice(i, 1))) for i, k in enumerate(keys)])

    def _transaction(self):
        return _Transaction(self.con)

    # -- speed rows to the lake -----------------------------------------------------------------
    def speed_intent(self) -> tuple[int, int, pa.Table] | None:
        """The rows of the pending flush, or of a new one covering every row waiting; None
        when none wait."""
        with self._transaction():
            found = self.con.execute("SELECT lo, hi FROM speed_flush").fetchone()
            if found is None:
                found = self.con.execute("SELECT min(lo), max(hi) FROM speed").fetchone()
                if found[0] is None:
                    return None
                self.con.execute("INSERT INTO speed_flush VALUES (1, ?, ?)", found)
        lo, hi = found
        blobs = self.con.execute("SELECT rows FROM speed WHERE lo >= ? AND hi <= ? ORDER BY lo", (lo, hi)).fetchall()
        tables = [_table(b[0]) for b in blobs]
        return lo, hi, pa.concat_tables(tables) if tables else None

    def speed_written(self, lo: int, hi: int) -> None:
        with self._transaction():
            self.con.execute("DELETE FROM speed WHERE lo >= ? AND hi <= ?", (lo, hi))
            self.con.execute("DELETE FROM speed_flush")

    def close(self) -> None:
        self.con.close()


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on an error."""

    def __init__(self, con: sqlite3.Connection):
        self.con = con

    def __enter__(self):
        self.con.execute("BEGIN IMMEDIATE")
        return self.con

    def __exit__(self, kind, value, traceback):
        self.con.execute("COMMIT" if kind is None else "ROLLBACK")
        return False
