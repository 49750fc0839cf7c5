"""Compaction of the append-only tables (raw, quarantine, speed): the small files of a date
partition rewritten into files near a target size, sorted by event time, with the same rows.

Every flush adds a file per source and date, so a day of live ingest leaves thousands of
small files, and a query pays per file. Compaction rewrites them; what readers and
consumers see stays exact:

- readers follow the catalog's manifest (views.listed_select), never the folder: a query
  lists either the originals or the file that replaced them, never both nor neither;
- commit, step by step (a kill at any step loses and duplicates nothing): the new file is
  written under a name of its own (atomic write), then ONE catalog transaction adds it and
  marks the originals replaced (Catalog.replace_compacted); the originals stay on disk for
  ``grace_s`` (a query that listed them just before still reads them) and are deleted by a
  later pass (``remove_replaced``), as is a compacted file no commit lists (an orphan). The
  originals' rows stay in the manifest as tombstones, so a flush replayed after a crash
  never adds them again;
- incremental consumers (transforms) keep a watermark: the newest file id they read.
  A compacted file records the id range of the files it replaced, and no file range holds a
  watermark of any transform (read under the transforms' lock, so none moves meanwhile):
  each compacted file was read whole or not at all by each of them;
- files a caller pins (``pinned``: the ingest log's flush ranges a consumer group will read
  back from the lake by file name, ingest/log.py) are left as they are.

On an S3 lake the same steps hold, through the bucket's filesystem (lake/store.py): the new
file is one PUT under its unique key (S3 shows an object whole or not at all), the originals
and orphans are deleted as keys. Which files exist is one listing per partition; an orphan
(a compacted key no catalog commit lists) is deleted only once it is older than ``grace_s``,
since the compaction lock is a file in the local state dir and another host compacting the
same bucket would not hold it.
"""

from __future__ import annotations

import bisect
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterable, Protocol

from .._proc import file_lock
from ..errors import BadRequest, DamagedFile
from . import store
from .store import as_lake_path, is_s3

log = logging.getLogger("lakebook.lake.compaction")

COMPACTED_PREFIX = "compact-"
# The append-only zones compacted. Not ``blobs``: its manifest holds a file per landed blob,
# named after it, and landing (ingest/landing.py) tells a landed blob by that file's name.
COMPACTED_ZONES = ("raw", "quarantine", "speed")
STEPS = ("written", "committed", "removing")  # where on_step is called, in order


class ManifestFile(Protocol):
    """What planning needs of a live file (catalog.store.FileEntry)."""

    id: int
    first_id: int
    last_id: int
    path: str
    partition: str
    rows: int
    bytes: int


@dataclass
class PartitionResult:
    table: str
    partition: str
    files_before: int  # live files of the partition before
    replaced: int  # files replaced
    written: list[str] = field(default_factory=list)  # compacted files committed
    rows: int = 0  # rows rewritten
    bytes_before: int = 0  # of the replaced files
    bytes_after: int = 0  # of the compacted files
    seconds: float = 0.0
    note: str = ""


@dataclass
class CompactionReport:
    partitions: list[PartitionResult] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # replaced files and orphans deleted

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.partitions)


def is_small(f: ManifestFile, target_rows: int, target_bytes: int) -> bool:
    """A file under half of the target in both rows and bytes: worth rewriting."""
    return f.rows < target_rows / 2 and f.bytes < target_bytes / 2


def plan_groups(files: Iterable[ManifestFile], *, target_rows: int, target_bytes: int, watermarks: Iterable[int],
                schema_of: Callable[[ManifestFile], object] = lambda f: None) -> list[list[ManifestFile]]:
    """Groups of at least two files to rewrite as one each, in id order: filled up to the
    target rows and bytes (the originals' bytes: a compacted file is smaller), of one schema
    each, and never holding files on both sides of a watermark (no watermark ``w`` with
    first_id <= w < last_id over the group)."""
    marks = sorted(set(watermarks))
    groups: list[list[ManifestFile]] = []
    current: list[ManifestFile] = []
    rows = size = 0
    low = high = 0
    schema = None
    for f in sorted(files, key=lambda f: (f.first_id, f.id)):
        if current:
            new_low, new_high = min(low, f.first_id), max(high, f.last_id)
            fits = rows + f.rows <= target_rows and size + f.bytes <= target_bytes
            if fits and schema_of(f) == schema and not _holds_watermark(marks, new_low, new_high):
                current.append(f)
                rows, size, low, high = rows + f.rows, size + f.bytes, new_low, new_high
                continue
            groups.append(current)
        current, rows, size, low, high, schema = [f], f.rows, f.bytes, f.first_id, f.last_id, schema_of(f)
    if current:
        groups.append(current)
    return [g for g in groups if len(g) > 1]


def _holds_watermark(marks: list[int], low: int, high: int) -> bool:
    """A watermark w with low <= w < high: files up to it read by a consumer, files after it not."""
    i = bisect.bisect_left(marks, low)
    return i < len(marks) and marks[i] < high


def compact(workspace, catalog, table: str | None = None, partition: str | None = None, *,
            pinned: Callable[[str, str], set[str]] | None = None,
            on_progress: Callable[[int, int, str], None] | None = None,
            on_step: Callable[[str], None] | None = None) -> CompactionReport:
    """Compact the partitions of the append-only tables (``table``: one of them, ``zone.name``
    or a raw source's name; ``partition``: one ``date=YYYY-MM-DD``) holding at least
    ``lake.compaction.min_files`` small files, then delete the files replaced more than
    ``grace_s`` ago and orphans. ``pinned(zone, name)``: file stems to leave alone, asked
    after the table's files are listed. ``on_progress(done, total, what)`` after each
    partition; ``on_step(step)`` at each of STEPS (crash tests stop the process there)."""
    settings = workspace.settings.lake.compaction
    report = CompactionReport()
    with file_lock(workspace.compaction_lock_path):
        report.removed += _remove_replaced(workspace, catalog, settings.grace_s, on_step)
        work = _candidates(catalog, settings, table, partition)
        for done, (info, part) in enumerate(work, 1):
            with file_lock(workspace.transform_lock_path):  # no transform moves its watermark meanwhile
                result = _compact_partition(workspace, catalog, info, part, pinned, on_step)
            if result is not None:
                report.partitions.append(result)
            if on_progress:
                on_progress(done, len(work), f"{info.qualified_name} {part}")
    return report


def _candidates(catalog, settings, table: str | None, partition: str | None) -> list[tuple[object, str]]:
    """(table info, partition) of each partition with at least ``min_files`` small files."""
    tables = [catalog.table(table if "." in table else f"raw.{table}")] if table else [
        t for t in catalog.tables() if t.zone in COMPACTED_ZONES]
    work = []
    for info in tables:
        if info.zone not in COMPACTED_ZONES:
            raise BadRequest(f"{info.qualified_name} is not an append-only table: only raw, quarantine and speed "
                             "tables are compacted", hint="transform outputs are rewritten by their runs")
        counts: dict[str, int] = {}
        for f in catalog.file_rows(info.zone, info.name, partition):
            if is_small(f, settings.target_rows, settings.target_bytes):
                counts[f.partition] = counts.get(f.partition, 0) + 1
        work += [(info, part) for part, n in sorted(counts.items()) if n >= settings.min_files]
    return work


def _compact_partition(workspace, catalog, info, partition: str, pinned, on_step) -> PartitionResult | None:
    settings = workspace.settings.lake.compaction
    started = time.perf_counter()
    files = catalog.file_rows(info.zone, info.name, partition)
    held = pinned(info.zone, info.name) if pinned else set()
    present = _present(files)
    small = [f for f in files if is_small(f, settings.target_rows, settings.target_bytes)
             and Path(f.path).stem not in held and present(f.path)]
    groups = plan_groups(small, target_rows=settings.target_rows, target_bytes=settings.target_bytes,
                         watermarks=catalog.consumer_watermarks(info.qualified_name), schema_of=_schema_of)
    result = PartitionResult(info.qualified_name, partition, len(files), 0)
    for group in groups:
        written = _rewrite(workspace, info, partition, group)
        _step(on_step, "written")
        if catalog.replace_compacted(info.zone, info.name, [f.id for f in group], written) is None:
            _delete(written.path)  # the originals changed meanwhile: nothing replaced
            continue
        _step(on_step, "committed")
        result.replaced += len(group)
        result.written.append(str(written.path))
        result.rows += written.rows
        result.bytes_before += sum(f.bytes for f in group)
        result.bytes_after += written.bytes
    result.seconds = round(time.perf_counter() - started, 3)
    if not result.replaced:
        return None
    log.info("compacted %s %s: %d files (%d rows, %d bytes) into %d (%d bytes) in %.2f s", info.qualified_name,
             partition, result.replaced, result.rows, result.bytes_before, len(result.written), result.bytes_after,
             result.seconds)
    return result


def _present(files: list[ManifestFile]) -> Callable[[str], bool]:
    """Whether a file exists: on S3 from one listing of each folder the files are in (a
    partition's), not a request per file."""
    s3_files = [as_lake_path(f.path) for f in files if is_s3(f.path)]
    if not s3_files:
        return lambda path: Path(path).exists()
    keys = {str(p) for folder in {f.parent for f in s3_files} for p in store.list_files(folder)}
    return lambda path: str(path) in keys


def _delete(path) -> None:
    """Delete a lake file (nothing if it is gone already)."""
    if is_s3(path):
        store.delete_file(as_lake_path(str(path)))
    else:
        Path(path).unlink(missing_ok=True)


def _step(on_step, name: str) -> None:
    if on_step is not None:
        on_step(name)


def _schema_of(f: ManifestFile):
    import pyarrow.parquet as pq

    schema = store.read_schema(as_lake_path(f.path)) if is_s3(f.path) else pq.read_schema(f.path)
    return schema.remove_metadata()


def _rewrite(workspace, info, partition: str, group: list[ManifestFile]):
    """The group's rows as one file, sorted by event time (stable: ties keep their order), under
    a name no other file has; its WrittenFile."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    from .writer import WrittenFile, _bounds, write_parquet_atomic

    # one scan over the group's files (read in parallel, in file order); no partition column
    # from the folder names: the files hold exactly their own columns
    if is_s3(group[0].path):
        table = store.read_tables([as_lake_path(f.path) for f in group])
    else:
        table = ds.dataset([f.path for f in group], format="parquet", partitioning=None).to_table()
    if table.num_rows != sum(f.rows for f in group):
        raise DamagedFile(f"{info.qualified_name} {partition}: its files hold {table.num_rows} rows, the catalog "
                            f"says {sum(f.rows for f in group)}", hint="`lakebook doctor` checks the lake's files")
    time_column = info.event_time_column if info.event_time_column in table.column_names else None
    if time_column:
        table = table.take(pc.sort_indices(table, sort_keys=[(time_column, "ascending")]))
    first, last = min(f.first_id for f in group), max(f.last_id for f in group)
    name = f"{COMPACTED_PREFIX}{first:012d}-{last:012d}-{uuid.uuid4().hex[:8]}.parquet"
    path = as_lake_path(group[0].path).parent / name
    write_parquet_atomic(table, path, workspace.settings.lake.compression)  # on S3: one PUT under this unique key
    low, high = _bounds(table.column(time_column) if time_column else None)
    size = store.size_or_none(path) if is_s3(path) else path.stat().st_size
    return WrittenFile(path, partition, table.num_rows, size, low, high, None)


def expired_replacements(catalog, grace_s: float, now: datetime | None = None) -> list[tuple[str, str, str, int]]:
    """(zone, table, path, bytes) of the files compaction replaced more than ``grace_s`` ago
    that are still on disk (in the bucket): no query planned since can be reading them."""
    before = (now or datetime.now(timezone.utc)) - timedelta(seconds=grace_s)
    found = []
    sizes: dict[str, dict[str, int]] = {}  # on S3: a partition's keys and sizes, one listing each
    for zone, name, path in catalog.replaced_files(removed_before=before):
        if is_s3(path):
            folder = str(as_lake_path(path).parent)
            if folder not in sizes:
                sizes[folder] = {str(p): n for p, n in store.list_sizes(as_lake_path(folder)).items()}
            if path in sizes[folder]:
                found.append((zone, name, path, sizes[folder][path]))
            continue
        try:
            found.append((zone, name, path, Path(path).stat().st_size))
        except FileNotFoundError:  # deleted by an earlier pass
            continue
    return found


def remove_replaced(workspace, catalog, grace_s: float) -> list[str]:
    """Delete the files compaction replaced more than ``grace_s`` ago, and compacted files
    no catalog commit lists (a compaction killed before its commit); the paths deleted."""
    with file_lock(workspace.compaction_lock_path):
        return _remove_replaced(workspace, catalog, grace_s, None)


def _remove_replaced(workspace, catalog, grace_s: float, on_step) -> list[str]:
    """``remove_replaced`` with the compaction lock held (no compaction is writing a file)."""
    removed = []
    for _, _, path, _ in expired_replacements(catalog, grace_s):
        _delete(path)
        removed.append(path)
        _step(on_step, "removing")
    for info in catalog.tables():
        if info.zone not in COMPACTED_ZONES:
            continue
        if is_s3(info.location):
            removed += _remove_s3_orphans(catalog, info, grace_s)
            continue
        if "://" in info.location:
            continue
        folder = Path(info.location)
        if not folder.is_dir():
            continue
        known = catalog.known_paths(info.zone, info.name)
        for path in [*folder.glob(f"*/{COMPACTED_PREFIX}*.parquet"), *folder.glob(f"*/.{COMPACTED_PREFIX}*.tmp")]:
            if str(path) not in known:
                path.unlink(missing_ok=True)
                removed.append(str(path))
    if removed:
        log.info("removed %d files compaction replaced or left behind", len(removed))
    return removed


def _remove_s3_orphans(catalog, info, grace_s: float) -> list[str]:
    """The compacted keys of an S3 table that no catalog commit lists and that were written more
    than ``grace_s`` ago (a compaction killed before its commit, or one whose commit found the
    originals changed); deleted, their paths returned."""
    folder = as_lake_path(info.location)
    found = store.list_modified(folder)
    if not found:
        return []
    known = catalog.known_paths(info.zone, info.name)
    before = datetime.now(timezone.utc) - timedelta(seconds=grace_s)
    removed = []
    for path, written in sorted(found.items()):
        if path.name.startswith(COMPACTED_PREFIX) and str(path) not in known and written < before:
            store.delete_file(path)
            removed.append(str(path))
    return removed
