"""Reading the ingest log as a consumer group: the accepted batches after the group's offset,
from the log while it holds them, else (past ``stream.retain_events``, retention.py) from the
lake files their flush wrote, as the catalog lists them (a local lake and an S3 lake alike).
The event bus over the log (stream/bus.py) and the forwarder to Redis (forwarder.py) read it
this way.

A flush range read back from the lake is delivered whole, as the flusher wrote it (its
duplicates dropped, its refused events in quarantine): its offsets are its first and last
sequence numbers. The log gives a group such a range only when its offset is before the
range, so nothing it committed comes again; only a group that commits part of a range
after the log has let go of that range gets that part twice (the events keep their
``_event_id``).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from ..errors import NotFound, UnknownTable
from ..lake import range_stem
from .retention import GroupBatch


@dataclass(frozen=True)
class LakeRange:
    """A flush range the log no longer holds for the group: what its flush wrote to the lake."""

    seq_lo: int
    seq_hi: int
    table: pa.Table | None  # None: the flush wrote no event (all duplicates, or refused)


class LakeRanges:
    """Reads flush ranges back from the lake: the files the catalog's manifest lists for a
    range (named after it, ``range_stem``), from a local lake or an S3 lake alike. The flusher
    records a range's files in the catalog before the log lets go of the range, so a range
    the log no longer holds is listed there."""

    def __init__(self, workspace):
        self.workspace = workspace
        self._catalog = None

    def files(self, source: str, seq_lo: int, seq_hi: int) -> list[str]:
        """The raw files one flush of ``source`` wrote (one per event date), in path order."""
        if self._catalog is None:
            from ..catalog import open_catalog

            self._catalog = open_catalog(self.workspace, register=False)
        try:
            return self._catalog.files_named("raw", source, f"{range_stem(seq_lo, seq_hi)}.parquet")
        except UnknownTable:  # no flush has registered the source's table: it wrote nothing
            return []

    def read(self, source: str, seq_lo: int, seq_hi: int) -> pa.Table | None:
        """The raw events one flush of ``source`` wrote (the rows of each date file in their order)."""
        from ..lake.store import read_table

        tables = [read_table(path) for path in self.files(source, seq_lo, seq_hi)]
        if not tables:
            return None
        return pa.concat_tables(tables, promote_options="permissive").replace_schema_metadata(None)

    def close(self) -> None:
        if self._catalog is not None:
            self._catalog.close()
            self._catalog = None


def read_group(ingest_log, ranges: LakeRanges, group: str, source: str,
               max_events: int) -> list[GroupBatch] | LakeRange | None:
    """What ``group`` reads next of ``source``: logged batches (oldest first, at most
    ``max_events`` events unless the first alone holds more), a flush range from the lake, or
    None if it has read everything. NotFound if the group does not read ``source``."""
    batches = ingest_log.group_batches(group, source, max_events)
    if batches is None:
        raise not_registered(group, source)
    if not batches:
        return None
    first = batches[0]
    if first.payload is None:
        return LakeRange(first.range_lo, first.range_hi, ranges.read(source, first.range_lo, first.range_hi))
    return batches


def pinned_files(ingest_log):
    """For compaction (lake/compaction.py): ``pinned(zone, name)``, the stems of the raw files
    consumer groups may still read back by name (a log without groups pins none)."""
    ranges = getattr(ingest_log, "ranges_in_use", None)

    def pinned(zone: str, name: str) -> set[str]:
        if zone != "raw" or ranges is None:
            return set()
        return {range_stem(lo, hi) for lo, hi in ranges(name)}

    return pinned


def log_groups(ingest_log) -> list[dict]:
    """{group, source, offset, lag} of every consumer group of the log (``lag``: events accepted
    and not committed by it); none for a log without groups."""
    offsets = getattr(ingest_log, "group_offsets", None)
    if offsets is None:
        return []
    return [{"group": group, "source": source, "offset": offset, "lag": lag}
            for group, source, offset, lag in offsets()]


def not_registered(group: str, source: str) -> NotFound:
    return NotFound(f"consumer group {group!r} does not read source {source!r}",
                    hint=f"register it first: bus.register({group!r}, [{source!r}])")
