"""The versions of a transform output or seed: its ``version-<id>`` folders beside ``current``.

A version is named by the run that made it (a full run; incremental runs add their files to
the published version) or, for a seed, by its content digest. The catalog's run history says
which runs finished: a folder of a run that never did is output nobody published.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from . import store
from .layout import CURRENT, TRASH, VERSION_PREFIX
from .store import as_lake_path, is_s3

_RUN_FILE = re.compile(r"^run-(\d+)")  # the runner names every output file after its run


@dataclass(frozen=True)
class Version:
    name: str  # version-000012, or version-<digest> for a seed
    path: Path
    run_id: int | None  # the run that made it (None: a seed's digest-named version)
    created: datetime  # when its run finished (the folder's time where the catalog has no run)
    published: bool  # False: its run failed or died before it published
    current: bool  # what the catalog and the ``current`` link point at
    files: int
    rows: int
    bytes: int

    def as_dict(self) -> dict:
        return {**asdict(self), "path": str(self.path)}


def version_run_id(name: str) -> int | None:
    label = name[len(VERSION_PREFIX):]
    return int(label) if label.isdigit() else None


def file_run_ids(folder: Path) -> set[int]:
    """The runs whose output files a version folder holds."""
    return {int(m.group(1)) for p in _files(folder) if (m := _RUN_FILE.match(p.name))}


def published_paths(table_dir: Path, location: str | Path | None) -> set[Path]:
    """The version folders a table publishes: the ``current`` link's target and the catalog's
    location (the same folder but in the moment between the catalog's commit and the link's move)."""
    if is_s3(table_dir):  # no link on S3: the catalog's location is the published version
        return {as_lake_path(str(location))} if location else set()
    link = table_dir / CURRENT
    paths = {Path(location).resolve()} if location else set()
    if link.is_symlink():
        paths.add(link.resolve())
    return paths


def list_versions(table_dir: Path, runs: list[dict], location: str | Path | None = None,
                  *, stats: bool = True) -> list[Version]:
    """The version folders of a table, oldest first. ``runs``: the table's runs (Catalog.runs);
    ``location``: the catalog's location of the table; without ``stats``, files, rows and bytes
    are not counted (left 0)."""
    by_id = {r["id"]: r for r in runs}
    current = published_paths(table_dir, location)
    found = []
    for folder in _version_folders(table_dir):
        run_id = version_run_id(folder.name)
        run = by_id.get(run_id)
        files = _files(folder) if stats else []
        created = (run["finished_at"] or run["started_at"]) if run else _folder_time(folder)
        found.append(Version(
            folder.name, folder, run_id, created,
            published=run is None or run["status"] == "ok",  # a run the catalog does not know is kept
            current=(folder if is_s3(folder) else folder.resolve()) in current, files=len(files),
            rows=sum(_metadata(p).num_rows for p in files), bytes=sum(_size(p) for p in files)))
    return sorted(found, key=lambda v: (v.created, v.name))


def _version_folders(table_dir: Path) -> list[Path]:
    if is_s3(table_dir):  # not one vacuum has marked for deletion (lake/vacuum.py): it may be half deleted
        trash = table_dir.parents[1] / TRASH / table_dir.parent.name / table_dir.name
        marked = {p.name for p in store.list_sizes(trash) if p.parent == trash}
        return [f for f in store.list_dirs(table_dir) if f.name.startswith(VERSION_PREFIX) and f.name not in marked]
    folders = table_dir.glob(f"{VERSION_PREFIX}*") if table_dir.is_dir() else []
    return [f for f in folders if f.is_dir() and not f.is_symlink()]


def _files(folder: Path) -> list[Path]:
    files = store.list_files(folder) if is_s3(folder) else folder.rglob("*.parquet")
    return [p for p in files if not p.name.startswith(".")]


def _folder_time(folder: Path) -> datetime:
    """When a version folder without a run was made (an S3 prefix has no time of its own: its
    newest object's)."""
    if is_s3(folder):
        times = [store.modified(p) for p in store.list_files(folder)]
        return max(times) if times else datetime.fromtimestamp(0, timezone.utc)
    return datetime.fromtimestamp(folder.stat().st_mtime, timezone.utc)


def _metadata(path: Path):
    import pyarrow.parquet as pq

    return store.read_metadata(path) if is_s3(path) else pq.read_metadata(path)


def _size(path: Path) -> int:
    return store.size_or_none(path) or 0 if is_s3(path) else path.stat().st_size
