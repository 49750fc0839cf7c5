"""Atomic, idempotent Parquet writes into Hive-style date partitions.

A file is written under a temporary name, fsynced, renamed into place and its folder
fsynced: a reader sees a whole file or none. File names are chosen by the caller from what
the file holds (e.g. the ingest-log sequence range), so writing the same thing twice, as a
flush finishing after a crash does, finds the file already there and leaves it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

PARTITION_KEY = "date"


@dataclass(frozen=True)
class WrittenFile:
    path: Path
    partition: str
    rows: int
    bytes: int
    min_event_time: datetime | None
    max_event_time: datetime | None
    max_ingested_at: datetime | None


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_parquet_atomic(table: pa.Table, path: Path, compression: str = "zstd") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(
        table, tmp, compression=None if compression == "none" else compression,
        coerce_timestamps="us", allow_truncated_timestamps=False,
    )
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _bounds(column: pa.ChunkedArray | None) -> tuple[datetime | None, datetime | None]:
    if column is None or len(column) == 0:
        return None, None
    low, high = pc.min_max(column).values()
    return low.as_py(), high.as_py()


def write_date_partitions(
    table: pa.Table, table_dir: Path, time_column: str, file_stem: str,
    *, ingested_column: str | None = None, compression: str = "zstd",
) -> list[WrittenFile]:
    """Split ``table`` by the UTC date of ``time_column`` and write one file per date as
    ``table_dir/date=YYYY-MM-DD/<file_stem>.parquet``; files already present are kept."""
    if table.num_rows == 0:
        return []
    dates = pc.cast(table.column(time_column), pa.date32())
    written = []
    for day in pc.unique(dates).to_pylist():
        part = table.filter(pc.equal(dates, pa.scalar(day, pa.date32())))
        folder = table_dir / f"{PARTITION_KEY}={day.isoformat()}"
        path = folder / f"{file_stem}.parquet"
        if not path.exists():
            write_parquet_atomic(part, path, compression)
        low, high = _bounds(part.column(time_column))
        _, ingested = _bounds(part.column(ingested_column) if ingested_column else None)
        written.append(WrittenFile(path, f"{PARTITION_KEY}={day.isoformat()}", part.num_rows,
                                   path.stat().st_size, low, high, ingested))
    return written
