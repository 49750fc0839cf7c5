"""Vacuum: remove what the retention policy (``lake.retention``) no longer keeps.

- Versions of transform outputs and seeds beyond the newest ``versions`` (and older than
  ``version_days`` when set); never the published one (the ``current`` link's target and the
  catalog's location, so never the version a rollback pointed to), and never while a transform
  runs: the transform lock is held throughout, so a version folder or staging folder of a run
  that is not ``ok`` is output of a run that died, and goes too.
- Date partitions of quarantine (``quarantine_days``) and raw (``raw_days``) older than the
  policy, under the flush and compaction locks (no flush adds a file, no compaction replaces
  one meanwhile): their catalog rows first, in one transaction per table, then the folders.
- Files compaction replaced more than ``lake.compaction.grace_s`` ago (their catalog rows stay
  as tombstones), under the compaction lock.

A folder is first moved out of its table (to ``_vacuum/``, one rename) and then deleted, so a
crash mid-way never leaves half a version a rollback could point to, nor half a partition a
query reads; the next vacuum empties ``_vacuum/``. Running it again removes nothing more.
One vacuum runs at a time (a lock of its own).

On an S3 lake the same policy holds, through the bucket's filesystem (lake/store.py). S3 has
no rename and no staging folders, and a version is a key prefix the catalog's runs name: a
prefix cannot be moved aside in one step, so a marker key is written under ``_vacuum/`` first
(``_vacuum/<zone>/<table>/<version>``), then the prefix's keys are deleted, then the marker.
A version with a marker is no longer listed (lake/versions.py), so a rollback never points to
one half deleted, and the next vacuum finishes a deletion a crash cut short. A partition's
catalog rows go first, then its keys: a crash leaves keys no reader lists, and the next vacuum
finds the old partition again.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from .._proc import file_lock
from .compaction import expired_replacements
from . import store
from .layout import APPEND_ONLY_ZONES, PARTITION_KEY, ZONES
from .store import as_lake_path, is_s3
from .versions import Version, list_versions

log = logging.getLogger("lakebook.lake.vacuum")


@dataclass(frozen=True)
class Removed:
    kind: str  # version | staging | partition | replaced (by compaction) | leftover (of a vacuum that crashed)
    table: str
    path: str
    files: int
    bytes: int
    catalog_files: int = 0  # the catalog's file rows dropped with it


@dataclass
class VacuumReport:
    dry_run: bool
    removed: list[Removed] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)  # parts left for next time: their lock was held

    @property
    def bytes_freed(self) -> int:
        return sum(r.bytes for r in self.removed)

    def as_dict(self) -> dict:
        return {"dry_run": self.dry_run, "bytes_freed": self.bytes_freed, "busy": self.busy,
                "removed": [asdict(r) for r in self.removed]}


def expired_versions(versions: list[Version], keep: int, keep_days: float | None, now: datetime) -> list[Version]:
    """The versions the policy removes (``versions`` oldest first): published ones beyond the
    newest ``keep`` and, with ``keep_days``, older than that; folders of runs that never
    published. Never a current one."""
    published = [v for v in versions if v.published]
    newest = {v.name for v in published[-keep:]}
    young = {v.name for v in published if keep_days is not None and now - v.created < timedelta(days=keep_days)}
    return [v for v in versions if not v.current and v.name not in newest | young]


def expired_partitions(table_dir: Path, days: int, today: date) -> list[Path]:
    """A table's date partitions older than ``days`` days, oldest first."""
    cutoff = today - timedelta(days=days)
    expired = []
    for folder in _partition_folders(table_dir):
        try:
            day = date.fromisoformat(folder.name.partition("=")[2])
        except ValueError:
            continue
        if day < cutoff:
            expired.append(folder)
    return expired


def _partition_folders(table_dir: Path) -> list[Path]:
    if is_s3(table_dir):
        return [f for f in store.list_dirs(table_dir) if f.name.startswith(f"{PARTITION_KEY}=")]
    return [f for f in sorted(table_dir.glob(f"{PARTITION_KEY}=*")) if f.is_dir()] if table_dir.is_dir() else []


def vacuum(workspace, catalog, *, dry_run: bool = False, wait: bool = True, now: datetime | None = None) -> VacuumReport:
    """Remove what ``lake.retention`` does not keep (with ``dry_run``, only say what). Without
    ``wait``, a part whose lock is held (a transform running, a flush) is left for next time."""
    report = VacuumReport(dry_run)
    with file_lock(workspace.vacuum_lock_path, wait=wait) as locked:
        if locked:
            _vacuum(workspace, catalog, report, wait, now or datetime.now(timezone.utc))
        else:
            report.busy.append("everything (another vacuum is running)")
    return report


def _vacuum(workspace, catalog, report: VacuumReport, wait: bool, now: datetime) -> None:
    _empty_trash(workspace, report)
    with file_lock(workspace.compaction_lock_path, wait=wait) as locked:
        if locked:
            _vacuum_replaced(workspace, catalog, report, now)
        else:
            report.busy.append("replaced files (a compaction is running)")
    with file_lock(workspace.transform_lock_path, wait=wait) as locked:
        if locked:
            _vacuum_versions(workspace, catalog, report, now)
        else:
            report.busy.append("versions (a transform is running)")
    retention = workspace.settings.lake.retention
    days = {zone: d for zone, d in (("quarantine", retention.quarantine_days), ("raw", retention.raw_days)) if d}
    if days:  # no flush adds a file to a partition, and no compaction replaces one, while it goes
        with file_lock(workspace.compaction_lock_path, wait=wait) as compacting_not, \
                file_lock(workspace.flush_lock_path, wait=wait) as flushing_not:
            if compacting_not and flushing_not:
                for zone, kept_days in days.items():
                    _vacuum_partitions(workspace, catalog, zone, kept_days, report, now.date())
            else:
                report.busy.append("partitions (a flush or a compaction is running)")


def maintenance(workspace, catalog) -> VacuumReport | None:
    """One periodic round of lake maintenance (every ``lake.retention.interval_s``): a vacuum
    that waits for no lock; what it removed is logged, and so is a round that failed (None:
    the next round tries again)."""
    try:
        report = vacuum(workspace, catalog, wait=False)
    except Exception:  # noqa: BLE001 - a background round; the next one tries again
        log.exception("vacuum failed; the next round tries again")
        return None
    if report.removed:
        log.info("vacuum removed %d folders, %d bytes freed", len(report.removed), report.bytes_freed)
    return report


def _vacuum_replaced(workspace, catalog, report: VacuumReport, now: datetime) -> None:
    """The files compaction replaced before its grace period (compaction.expired_replacements)."""
    for zone, name, path, size in expired_replacements(catalog, workspace.settings.lake.compaction.grace_s, now):
        if not report.dry_run:
            _delete_file(path)
        report.removed.append(Removed("replaced", f"{zone}.{name}", path, 1, size))


def _delete_file(path: str) -> None:
    if is_s3(path):
        store.delete_file(as_lake_path(path))
    else:
        Path(path).unlink(missing_ok=True)


def _tables(workspace, zones) -> list[tuple[str, str, Path]]:
    found = []
    for zone in zones:
        folder = workspace.lake.zone_dir(zone)
        if is_s3(folder):
            found += [(zone, d.name, d) for d in store.list_dirs(folder)]
            continue
        found += [(zone, d.name, d) for d in sorted(folder.iterdir()) if d.is_dir()] if folder.is_dir() else []
    return found


def _vacuum_versions(workspace, catalog, report: VacuumReport, now: datetime) -> None:
    retention = workspace.settings.lake.retention
    known = {(t.zone, t.name): t for t in catalog.tables()}
    for zone, name, table_dir in _tables(workspace, [z for z in ZONES if z not in APPEND_ONLY_ZONES]):
        info = known.get((zone, name))
        table = f"{zone}.{name}"
        for folder in workspace.lake.stagings(zone, name):  # no run is live: the lock is held
            _remove(workspace, folder, Removed("staging", table, str(folder), *_usage(folder)), report)
        versions = list_versions(table_dir, catalog.runs(table), info.location if info else None, stats=False)
        for v in expired_versions(versions, retention.versions, retention.version_days, now):
            _remove(workspace, v.path, Removed("version", table, str(v.path), *_usage(v.path)), report)


def _vacuum_partitions(workspace, catalog, zone: str, days: int, report: VacuumReport, today: date) -> None:
    known = {t.name for t in catalog.tables(zone)}
    for _, name, table_dir in _tables(workspace, [zone]):
        table = f"{zone}.{name}"
        expired = expired_partitions(table_dir, days, today)
        if not expired:
            continue
        listed = [as_lake_path(p) for p in catalog.files(zone, name)] if name in known else []
        listed = [p for p in listed if p.parent in set(expired)]
        if listed and not report.dry_run:  # the catalog first: a crash then leaves files nobody reads
            catalog.forget_files(zone, name, listed)
        for folder in expired:
            entry = Removed("partition", table, str(folder), *_usage(folder),
                            catalog_files=sum(p.parent == folder for p in listed))
            _remove(workspace, folder, entry, report)
        (log.warning if zone == "raw" else log.info)(
            "%s%s: %s %d partitions older than %d days (%s .. %s) and their %d catalog file rows",
            "dry run: " if report.dry_run else "", table, "would remove" if report.dry_run else "removed",
            len(expired), days, expired[0].name, expired[-1].name, len(listed))


def _empty_trash(workspace, report: VacuumReport) -> None:
    """Delete what a vacuum that crashed had moved out of its table but not deleted."""
    trash = workspace.lake.trash_dir
    if is_s3(trash):
        _empty_s3_trash(workspace, report)
        return
    for folder in sorted(p for p in trash.glob("*/*/*") if p.is_dir()) if trash.is_dir() else []:
        zone, name = folder.relative_to(trash).parts[:2]
        report.removed.append(Removed("leftover", f"{zone}.{name}", str(folder), *_usage(folder)))
        if not report.dry_run:
            shutil.rmtree(folder)


def _remove(workspace, folder: Path, entry: Removed, report: VacuumReport) -> None:
    """Move ``folder`` out of its table (one atomic rename), then delete it."""
    report.removed.append(entry)
    if report.dry_run:
        return
    if is_s3(folder):
        _remove_s3(workspace, folder)
        return
    aside = workspace.lake.trash(folder)
    aside.parent.mkdir(parents=True, exist_ok=True)
    if aside.exists():  # the same folder, set aside by a vacuum that crashed before deleting it
        shutil.rmtree(aside)
    folder.rename(aside)
    shutil.rmtree(aside)


def _usage(folder: Path) -> tuple[int, int]:
    """(files, bytes) under ``folder``."""
    if is_s3(folder):
        sizes = store.list_sizes(folder)
        return len(sizes), sum(sizes.values())
    files = [p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()]
    return len(files), sum(p.stat().st_size for p in files)


def _remove_s3(workspace, folder) -> None:
    """Delete an S3 prefix: its marker under ``_vacuum/`` first (the version is no longer
    listed from then on), then its keys, then the marker."""
    marker = workspace.lake.trash(folder)
    store.write_bytes(b"", marker)  # an empty marker: its key is what it says
    store.remove_dir(folder)
    store.delete_file(marker)


def _empty_s3_trash(workspace, report: VacuumReport) -> None:
    """Finish the deletions a vacuum that crashed had marked under ``_vacuum/`` on S3."""
    trash = workspace.lake.trash_dir
    for marker in sorted(store.list_sizes(trash)):
        parts = marker.relative_to(trash).parts
        if len(parts) < 3:
            continue
        folder = workspace.lake.root.joinpath(*parts)
        report.removed.append(Removed("leftover", f"{parts[0]}.{parts[1]}", str(folder), *_usage(folder)))
        if not report.dry_run:
            store.remove_dir(folder)
            store.delete_file(marker)
