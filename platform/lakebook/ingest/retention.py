"""Consumer groups over the SQLite ingest log: committed offsets, and the batches kept for them.

Two tables in the log's database, written only inside its transactions (log.py):

- ``bus_offsets``: per source and group, the sequence number up to which the group has
  committed; every accepted batch of the source with a higher one is still to be read by it.
- ``retained``: accepted batches a flush moved to the lake while a registered group of their
  source had not committed them, with the flush range they were written in. ``batches`` still
  means "not flushed": the backlog, the flusher and its crash safety see none of these.

Invariants:
- A flush moves the batches of its range that a group has not committed into ``retained`` in
  the transaction that deletes them from ``batches`` (``retain_flushed`` inside commit_flush):
  a batch is in exactly one of the two tables, or gone because every group has committed it.
- A commit never moves a group back; what every group of a source has committed is deleted.
- Per source, at most ``bound`` retained events keep their payload. Beyond it, the oldest lose
  it (the row stays, with its event count, for the lag) and are read from the lake files of
  their flush range instead. A range's batches after a group's offset inside that range keep
  theirs: the lake cannot give them apart from the range's earlier events.
"""

from __future__ import annotations

import sqlite3
from typing import NamedTuple

SCHEMA = """
CREATE TABLE IF NOT EXISTS bus_offsets (
    source TEXT NOT NULL,
    grp TEXT NOT NULL,
    committed INTEGER NOT NULL,
    PRIMARY KEY (source, grp)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS retained (
    seq INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    kind TEXT NOT NULL,
    n INTEGER NOT NULL,
    received_at_us INTEGER NOT NULL,
    payload BLOB,
    range_lo INTEGER NOT NULL,
    range_hi INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS retained_by_source ON retained(source, seq);
"""

STARTS = ("earliest", "latest")
# A retained batch whose payload no group needs from the log: none has its offset inside the
# batch's flush range before it.
_PRUNABLE = ("NOT EXISTS (SELECT 1 FROM bus_offsets g WHERE g.source = retained.source "
             "AND g.committed >= retained.range_lo AND g.committed < retained.seq)")


class GroupBatch(NamedTuple):
    """An accepted batch after a group's offset. ``payload`` None: the log no longer holds it,
    the lake files of its flush range (range_lo..range_hi) do; range_lo is None for a batch
    not flushed yet."""

    seq: int
    kind: str
    n: int
    received_us: int
    payload: bytes | None
    range_lo: int | None
    range_hi: int | None


def oldest_offset(con: sqlite3.Connection, source: str) -> int | None:
    """The lowest offset committed by a group of ``source`` (None: no group reads it)."""
    return con.execute("SELECT min(committed) FROM bus_offsets WHERE source = ?", (source,)).fetchone()[0]


def retain_flushed(con: sqlite3.Connection, source: str, seq_lo: int, seq_hi: int, kinds: tuple[str, ...],
                   bound: int) -> int:
    """Keep the accepted batches of a flushed range that a group has not committed (before the
    flush deletes the range); the events that lost their payload to ``bound``."""
    oldest = oldest_offset(con, source)
    if oldest is None:
        return 0
    marks = ",".join("?" * len(kinds))
    con.execute(
        "INSERT OR IGNORE INTO retained(seq, source, kind, n, received_at_us, payload, range_lo, range_hi) "
        f"SELECT seq, source, kind, n, received_at_us, payload, ?, ? FROM batches "
        f"WHERE source = ? AND seq BETWEEN ? AND ? AND kind IN ({marks})",
        (seq_lo, seq_hi, source, max(seq_lo, oldest + 1), seq_hi, *kinds),
    )
    return prune_over_bound(con, source, bound)


def prune_over_bound(con: sqlite3.Connection, source: str, bound: int) -> int:
    """Drop the payload of the oldest retained batches of ``source`` that hold more than
    ``bound`` events together (the lake has them); the events dropped."""
    kept = con.execute("SELECT coalesce(sum(n), 0) FROM retained WHERE source = ? AND payload IS NOT NULL",
                       (source,)).fetchone()[0]
    if kept <= bound:
        return 0
    cut, dropped = None, 0
    cur = con.execute(f"SELECT seq, n FROM retained WHERE source = ? AND payload IS NOT NULL AND {_PRUNABLE} "
                      "ORDER BY seq", (source,))
    for seq, n in cur:
        cut, dropped = seq, dropped + n
        if kept - dropped <= bound:
            break
    cur.close()
    if cut is not None:
        con.execute(f"UPDATE retained SET payload = NULL WHERE source = ? AND seq <= ? AND payload IS NOT NULL "
                    f"AND {_PRUNABLE}", (source, cut))
    return dropped


def register(con: sqlite3.Connection, group: str, sources: list[str], start: str) -> None:
    """Add the group's offset for each source it does not read yet (others keep theirs)."""
    for source in sources:
        con.execute("INSERT OR IGNORE INTO bus_offsets(source, grp, committed) VALUES (?, ?, ?)",
                    (source, group, _start_offset(con, source, start)))


def _start_offset(con: sqlite3.Connection, source: str, start: str) -> int:
    """Before the oldest batch of ``source`` the log holds ("earliest"), or after the newest
    sequence number it ever gave ("latest", and "earliest" when it holds none)."""
    row = con.execute("SELECT seq FROM sqlite_sequence WHERE name = 'batches'").fetchone()
    newest = row[0] if row else 0
    if start == "latest":
        return newest
    first = con.execute("SELECT min(s) FROM (SELECT min(seq) AS s FROM retained WHERE source = ? "
                        "UNION ALL SELECT min(seq) FROM batches WHERE source = ?)", (source, source)).fetchone()[0]
    return newest if first is None else first - 1


def drop(con: sqlite3.Connection, group: str) -> None:
    """Forget the group, and whatever was kept for it alone."""
    sources = [r[0] for r in con.execute("SELECT source FROM bus_offsets WHERE grp = ?", (group,))]
    con.execute("DELETE FROM bus_offsets WHERE grp = ?", (group,))
    for source in sources:
        _delete_committed(con, source)


def committed(con: sqlite3.Connection, group: str, source: str) -> int | None:
    row = con.execute("SELECT committed FROM bus_offsets WHERE source = ? AND grp = ?", (source, group)).fetchone()
    return None if row is None else row[0]


def commit(con: sqlite3.Connection, group: str, source: str, offset: int) -> bool:
    """Move the group's offset up to ``offset`` and delete what every group has committed;
    False if the group does not read ``source``."""
    cur = con.execute("UPDATE bus_offsets SET committed = max(committed, ?) WHERE source = ? AND grp = ?",
                      (offset, source, group))
    if cur.rowcount == 0:
        return False
    _delete_committed(con, source)
    return True


def _delete_committed(con: sqlite3.Connection, source: str) -> None:
    """Delete the retained batches of ``source`` every group has committed (all, if none reads it)."""
    oldest = oldest_offset(con, source)
    if oldest is None:
        con.execute("DELETE FROM retained WHERE source = ?", (source,))
    else:
        con.execute("DELETE FROM retained WHERE source = ? AND seq <= ?", (source, oldest))


def batches_after(con: sqlite3.Connection, source: str, after: int, max_events: int,
                  kinds: tuple[str, ...]) -> list[GroupBatch]:
    """The accepted batches of ``source`` after ``after``, oldest first: the first whatever its
    size, then as many as hold at most ``max_events`` events together; a batch only the lake
    holds comes alone. The caller holds a read transaction (one snapshot of both tables)."""
    marks = ",".join("?" * len(kinds))
    heads = con.execute(
        "SELECT seq, n, payload IS NULL FROM retained WHERE source = ? AND seq > ? "
        f"UNION ALL SELECT seq, n, 0 FROM batches WHERE source = ? AND seq > ? AND kind IN ({marks}) ORDER BY seq",
        (source, after, source, after, *kinds))
    last, total = None, 0
    for seq, n, in_lake in heads:
        if last is not None and (in_lake or total + n > max_events):
            break
        last, total = seq, total + n
        if in_lake:
            break
    heads.close()
    if last is None:
        return []
    rows = con.execute(
        "SELECT seq, kind, n, received_at_us, payload, range_lo, range_hi FROM retained "
        "WHERE source = ? AND seq > ? AND seq <= ? UNION ALL SELECT seq, kind, n, received_at_us, payload, NULL, NULL "
        f"FROM batches WHERE source = ? AND seq > ? AND seq <= ? AND kind IN ({marks}) ORDER BY seq",
        (source, after, last, source, after, last, *kinds)).fetchall()
    return [GroupBatch(*row) for row in rows]


def lag(con: sqlite3.Connection, source: str, after: int, kinds: tuple[str, ...]) -> int:
    """Accepted events of ``source`` after offset ``after`` (in the log or, past the bound, the lake)."""
    marks = ",".join("?" * len(kinds))
    return con.execute(
        "SELECT (SELECT coalesce(sum(n), 0) FROM retained WHERE source = ? AND seq > ?) + "
        f"(SELECT coalesce(sum(n), 0) FROM batches WHERE source = ? AND seq > ? AND kind IN ({marks}))",
        (source, after, source, after, *kinds)).fetchone()[0]


def ranges_in_use(con: sqlite3.Connection, source: str) -> list[tuple[int, int]]:
    """The flush ranges of ``source`` whose lake files may still be read back by name: those
    holding batches kept for a group (a kept batch may lose its payload to the bound at any
    flush), and the range a flush is moving now (it keeps batches when it commits)."""
    return con.execute("SELECT DISTINCT range_lo, range_hi FROM retained WHERE source = ? "
                       "UNION SELECT seq_lo, seq_hi FROM flush_intents WHERE source = ?", (source, source)).fetchall()


def offsets(con: sqlite3.Connection) -> list[tuple[str, str, int]]:
    """(group, source, committed offset) of every group, by group and source."""
    return con.execute("SELECT grp, source, committed FROM bus_offsets ORDER BY grp, source").fetchall()
