"""Where everything is under the lake root.

    <zone>/<table>/date=YYYY-MM-DD/<file>.parquet     raw, quarantine, speed: append-only, by event date
        (a flush names its files after the ingest-log sequence range it moved: range_stem)
    <zone>/<table>/version-<id>/[<col>=<v>/]<file>.parquet   transform outputs and seeds
    <zone>/<table>/current -> version-<id>            the published version (a stable path)
    blobs/<source>/<name>                             blobs, as they came
    blobs/<source>/_catalog/date=YYYY-MM-DD/<name>.parquet   the blobs.<source> table: one row per blob
    _damaged/<zone>/<table>/...                       files `lakebook doctor --fix` set aside (unreadable)
    _vacuum/<zone>/<table>/...                        folders vacuum is deleting (what a crash left, removed next time)
    _mlflow/artifacts/<experiment>/...                MLflow's artifacts, when the lake is on S3 (else in the state dir)

Zones are the schemas queries name (``raw.flights``). No other module builds a lake path.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from .store import as_lake_path, is_s3, require_local

ZONES = ("raw", "quarantine", "ref", "warehouse", "features", "speed", "blobs")
APPEND_ONLY_ZONES = ("raw", "quarantine", "speed", "blobs")  # files are only ever added; the other zones are replaced by version
PARTITION_KEY = "date"
CURRENT = "current"
VERSION_PREFIX = "version-"
DAMAGED = "_damaged"
TRASH = "_vacuum"


class LakeLayout:
    """The paths of one lake."""

    def __init__(self, root: Path):
        self.root = root

    def zone_dir(self, zone: str) -> Path:
        return self.root / zone

    def table_dir(self, zone: str, name: str) -> Path:
        return self.zone_dir(zone) / name

    def date_dir(self, table_dir: Path, day: date) -> Path:
        return table_dir / partition_name(day)

    def version_dir(self, zone: str, name: str, version: int | str) -> Path:
        """A new version folder of a table: by run number (zero-padded), or by a content digest."""
        label = f"{version:06d}" if isinstance(version, int) else version
        return self.table_dir(zone, name) / f"{VERSION_PREFIX}{label}"

    def current(self, zone: str, name: str) -> Path:
        """The stable path of a table's published version (Feast sources, ad-hoc Spark). An S3
        lake has no such link: its readers resolve the published version through the catalog."""
        require_local(self.root, f"the `current` link of {zone}.{name}")
        return self.table_dir(zone, name) / CURRENT

    def staging(self, target: Path, label: str) -> Path:
        """A hidden folder beside ``target`` for output that is not published yet."""
        return target.parent / f".{target.name}.{label}.tmp"

    def stagings(self, zone: str, name: str) -> list[Path]:
        """The staging folders in a table's folder: output of runs that are not published."""
        if is_s3(self.root):  # nothing is staged on S3: a run writes under its version's unique key
            return []
        folder = self.table_dir(zone, name)
        return [p for p in folder.glob(".*.tmp") if p.is_dir() and not p.is_symlink()] if folder.is_dir() else []

    @property
    def blobs_dir(self) -> Path:
        return self.root / "blobs"

    def blob_catalog_dir(self, source: str) -> Path:
        """The files of the ``blobs.<source>`` table (no blob can be named ``_catalog``)."""
        return self.blobs_dir / source / "_catalog"

    def damaged(self, path: Path) -> Path:
        """Where a damaged lake file is set aside: its path under the lake root, below
        ``_damaged/`` (outside every table's folder, so no query reads it; in the lake's own
        filesystem, so moving it there is one rename)."""
        return self.root / DAMAGED / Path(path).relative_to(self.root)

    @property
    def mlflow_artifacts(self) -> Path:
        """Where MLflow keeps artifacts beside an S3 lake (outside every table's folder)."""
        return self.root / "_mlflow" / "artifacts"

    @property
    def trash_dir(self) -> Path:
        return self.root / TRASH

    def trash(self, path: Path) -> Path:
        """Where vacuum moves a folder before deleting it: under ``_vacuum/``, outside every
        table's folder (no query globs it) and in the lake's filesystem (one rename)."""
        return self.trash_dir / as_lake_path(path).relative_to(self.root)

    def table_of(self, path: str | Path) -> tuple[str, str] | None:
        """The (zone, table) a path under the lake belongs to, or None."""
        try:
            parts = as_lake_path(path).relative_to(self.root).parts
        except (ValueError, TypeError):
            return None
        return (parts[0], parts[1]) if len(parts) >= 2 and parts[0] in ZONES else None


def partition_name(day: date) -> str:
    return f"{PARTITION_KEY}={day.isoformat()}"


def range_stem(seq_lo: int, seq_hi: int) -> str:
    """The file name (without suffix) of what a flush of the ingest-log range seq_lo..seq_hi
    wrote: the same range gives the same name, so a flush finished after a crash finds its files."""
    return f"part-{seq_lo:012d}-{seq_hi:012d}"
