"""Atomic, idempotent Parquet writes, and publishing a table version.

A file is written under a temporary name, fsynced, renamed into place and its folder
fsynced: a reader sees a whole file or none. File names are chosen by the caller from what
the file holds (e.g. the ingest-log sequence range), so writing the same thing twice, as a
flush finishing after a crash does, finds the file already there and leaves it. A version
folder is published by moving its table's ``current`` link in one rename.
"""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import store
from .layout import CURRENT, partition_name


@dataclass(frozen=True)
class WrittenFile:
    path: Path
    partition: str
    rows: int
    bytes: int
    min_event_time: datetime | None
    max_event_time: datetime | None
    max_ingested_at: datetime | None


def fsync_dir(folder: Path) -> None:
    """Make a folder's entries (a rename, a new or deleted file) durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes_atomic(data: bytes, path: Path) -> None:
    """``data`` as ``path``: under a temporary name, fsynced, renamed, the folder fsynced. A
    write that fails (a full disk) leaves no half-written file holding on to the space."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    fsync_dir(path.parent)


def write_parquet_atomic(table: pa.Table, path: Path, compression: str = "zstd") -> None:
    if store.is_s3(path):  # one PUT: S3 shows an object whole or not at all
        store.write_parquet(table, path, compression)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        pq.write_table(
            table, tmp, compression=None if compression == "none" else compression,
            coerce_timestamps="us", allow_truncated_timestamps=False,
        )
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
    except BaseException:  # a half-written file (a full disk) must not hold on to its space
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _bounds(column: pa.ChunkedArray | None) -> tuple[datetime | None, datetime | None]:
    if column is None or len(column) == 0:
        return None, None
    low, high = pc.min_max(column).values()
    return low.as_py(), high.as_py()


_WRITERS = 4  # files written at once: Parquet encoding and fsync release the GIL


def write_date_partitions(
    table: pa.Table, table_dir: Path, time_column: str, file_stem: str,
    *, ingested_column: str | None = None, compression: str = "zstd",
) -> list[WrittenFile]:
    """Split ``table`` by the UTC date of ``time_column`` and write one file per date as
    ``table_dir/date=YYYY-MM-DD/<file_stem>.parquet``; files already present are kept.
    A date's rows keep their order; files are listed in the order their dates first appear.
    Several dates are written at once (their writes and fsyncs overlap)."""
    if table.num_rows == 0:
        return []

    def write(day_part) -> WrittenFile:
        day, part = day_part
        path = table_dir / partition_name(day) / f"{file_stem}.parquet"
        low, high = _bounds(part.column(time_column))
        _, ingested = _bounds(part.column(ingested_column) if ingested_column else None)
        return WrittenFile(path, partition_name(day), part.num_rows, _write_once(part, path, compression),
                           low, high, ingested)

    parts = _split_by_date(table, time_column)
    if len(parts) == 1:
        return [write(parts[0])]
    with ThreadPoolExecutor(max_workers=min(_WRITERS, len(parts)), thread_name_prefix="lakebook-lake-write") as pool:
        return list(pool.map(write, parts))


def _write_once(part: pa.Table, path: Path, compression: str) -> int:
    """Write ``part`` as ``path`` unless a file is there already (an earlier try of the same
    write); its size. On S3 the object is written under its final key in one PUT, which S3
    shows whole or not at all."""
    if store.is_s3(path):
        size = store.size_or_none(path)
        if size is None:
            store.write_parquet(part, path, compression)
            size = store.size_or_none(path)
        return size
    if not path.exists():
        write_parquet_atomic(part, path, compression)
    return path.stat().st_size


def _split_by_date(table: pa.Table, time_column: str) -> list[tuple[date, pa.Table]]:
    """(date, its rows in table order) for each date, in order of first appearance: one stable
    sort and slices, instead of one filter of the whole table per date."""
    days = pc.cast(table.column(time_column), pa.date32()).combine_chunks()
    if days.null_count:  # (not for a valid table) a filter per distinct value, nulls included
        return [(day, table.filter(pc.equal(days, pa.scalar(day, pa.date32()))))
                for day in pc.unique(days).to_pylist()]
    numbers = days.view(pa.int32()).to_numpy()
    if len(numbers) > 1 and (np.diff(numbers) < 0).any():
        order = pc.sort_indices(days)  # stable: a date's rows keep their order
        table, numbers = table.take(order), numbers[order.to_numpy()]
    starts = np.concatenate([[0], np.flatnonzero(np.diff(numbers)) + 1])
    ends = np.append(starts[1:], len(numbers))
    bounds = dict(zip(numbers[starts].tolist(), zip(starts.tolist(), ends.tolist())))
    first_seen = pc.unique(days)
    return [(day, table.slice(lo, hi - lo))
            for day, (lo, hi) in zip(first_seen.to_pylist(), (bounds[n] for n in first_seen.view(pa.int32()).to_pylist()))]


def write_partitioned(table: pa.Table, folder: Path, partition_by: str | None, stem: str,
                      compression: str = "zstd") -> list[Path]:
    """Write an Arrow table as ``folder/[col=value/]<stem>.parquet`` (Hive style, the
    partition column dropped from the files)."""
    if partition_by is None:
        path = folder / f"{stem}.parquet"
        write_parquet_atomic(table, path, compression)
        return [path]
    paths = []
    column = table.column(partition_by)
    rest = table.drop_columns([partition_by])
    for value in pc.unique(column).to_pylist():
        mask = pc.is_null(column) if value is None else pc.equal(column, pa.scalar(value, column.type))
        shown = "__null__" if value is None else (value.isoformat() if hasattr(value, "isoformat") else str(value))
        path = folder / f"{partition_by}={shown}" / f"{stem}.parquet"
        write_parquet_atomic(rest.filter(mask), path, compression)
        paths.append(path)
    return paths


def describe_files(paths: list[Path], time_column: str | None, written_at=None) -> list[WrittenFile]:
    """Row counts, sizes and event-time bounds of written Parquet files (from their footers)."""
    described = []
    for path in sorted(paths):
        meta = store.read_metadata(path) if store.is_s3(path) else pq.read_metadata(path)
        low = high = None
        if time_column and time_column in meta.schema.names:
            col = meta.schema.names.index(time_column)
            for rg in range(meta.num_row_groups):
                stats = meta.row_group(rg).column(col).statistics
                if stats is not None and stats.has_min_max:
                    low = stats.min if low is None else min(low, stats.min)
                    high = stats.max if high is None else max(high, stats.max)
        partition = path.parent.name if "=" in path.parent.name else ""
        size = store.size_or_none(path) if store.is_s3(path) else path.stat().st_size
        described.append(WrittenFile(path, partition, meta.num_rows, size, low, high, written_at))
    return described


def publish_version(folder: Path) -> None:
    """Point the table's ``current`` link at ``folder`` (one atomic rename). The versions it
    replaced stay (a query may still read one, a rollback may return to one) until vacuum
    removes those the retention policy does not keep. An S3 lake has no link: the catalog's
    commit of the version's files published it, and its readers follow the catalog."""
    if store.is_s3(folder):
        return
    table_dir = folder.parent
    tmp = table_dir / f".{CURRENT}.tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(folder.name, target_is_directory=True)
    tmp.replace(table_dir / CURRENT)


def move_files(paths: list[Path], source: Path, target: Path) -> list[Path]:
    """Move files written under ``source`` to the same places under ``target`` (a rename each:
    both are in one table's folder); the renames are on disk when this returns."""
    moved = []
    for path in paths:
        destination = target / path.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        path.replace(destination)
        moved.append(destination)
    for folder in {p.parent for p in moved}:
        fsync_dir(folder)
    return moved


def remove_unlisted(folder: Path, pattern: str, listed: list[str]) -> list[Path]:
    """Remove the files under ``folder`` named like ``pattern`` that ``listed`` does not hold
    (the output of runs that never committed); the paths removed."""
    if store.is_s3(folder):
        keep = {str(p) for p in listed}
        removed = [p for p in store.list_files(folder) if str(p) not in keep and p.match(pattern)
                   and not p.name.startswith(".")]
        for path in removed:
            store.delete_file(path)
        return removed
    keep = {Path(p) for p in listed}
    removed = [p for p in folder.rglob(pattern) if p not in keep and not p.name.startswith(".")]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def discard(folder: Path) -> None:
    """Remove a version folder that was never published (a failed run)."""
    if store.is_s3(folder):
        store.delete_dir(folder)
        return
    shutil.rmtree(folder, ignore_errors=True)
