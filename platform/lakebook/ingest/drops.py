"""The drop folder inlet (``ingest.drops``): files that appear in a folder are stored as blobs
of its source, then moved aside into ``<dir>/.stored/``; the next flush lands them
(landing.py).

A file is taken only when its producer is done with it: when a ``<name>.done`` marker lies
beside it, or (unless ``require_done``) when its modification time is ``settle_s`` old, that
is its size and time have not changed for that long. It is taken only if its size and time
are the same after it was read as before. A producer that writes a file slowly, with pauses
longer than ``settle_s``, writes a marker when done, or writes under a name the pattern does
not match (``.part``) and renames.

The drop folder is always local; the blob goes to the lake, wherever it is (a local folder
or an S3 bucket). Nothing is lost: a file is moved aside only once its blob is durable
(fsynced, or its PUT answered by the bucket); one that cannot be stored (a name no blob may
have, other content under a stored name, content that is not its source's format) is moved
to ``<dir>/.failed/`` with a ``<name>.reason`` beside it; while the disk is full or the bucket
out of reach, files stay where they are and are tried again.
"""

from __future__ import annotations

import fnmatch
import logging
import mimetypes
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import LakebookError
from ..lake import fsync_dir
from .blob_rows import read_events
from .blobs import BlobStore, validate_blob_name

log = logging.getLogger("lakebook.ingest.drops")
STORED, FAILED, DONE, REASON = ".stored", ".failed", ".done", ".reason"
CONTENT_TYPES = {"csv": "text/csv", "json": "application/json", "ndjson": "application/x-ndjson",
                 "parquet": "application/vnd.apache.parquet"}


@dataclass
class DropReport:
    stored: list[tuple[str, str]] = field(default_factory=list)  # (source, name)
    created: int = 0  # of those, blobs new to the store (not the same content again)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    waiting: list[str] = field(default_factory=list)  # files not finished by their producer yet
    problems: list[str] = field(default_factory=list)  # folders that could not be read at all


class DropInlet:
    """Looks into every drop folder of a workspace (``scan``)."""

    def __init__(self, workspace, blobs: BlobStore | None = None):
        self.workspace = workspace
        self.blobs = blobs or BlobStore.of(workspace)

    def scan(self, now: float | None = None) -> DropReport:
        """Store every finished file of every drop folder; what happened to each."""
        report = DropReport()
        for drop in self.workspace.settings.ingest.drops:
            try:
                self._scan_folder(drop, report, time.time() if now is None else now)
            except LakebookError as exc:
                report.problems.append(f"{drop.dir}: {exc.message}")
            except OSError as exc:
                report.problems.append(f"{drop.dir}: {exc.strerror or exc}")
        for problem in report.problems:
            log.error("drop folder %s (its files stay where they are)", problem)
        return report

    def _scan_folder(self, drop, report: DropReport, now: float) -> None:
        folder = self.workspace.drop_dir(drop)
        contract = self.workspace.contract(drop.source)
        if not folder.is_dir():
            return
        for path in sorted(folder.iterdir()):
            name = path.name
            if name.startswith(".") or name.endswith(DONE) or not fnmatch.fnmatch(name, drop.pattern):
                continue
            if not path.is_file():
                continue
            marker = path.with_name(name + DONE)
            before = path.stat()
            if not marker.exists() and (drop.require_done or now - before.st_mtime < drop.settle_s):
                report.waiting.append(str(path))
                continue
            self._take(path, marker, before, drop.source, contract, report)

    def _take(self, path: Path, marker: Path, before: os.stat_result, source: str, contract,
              report: DropReport) -> None:
        data = path.read_bytes()
        after = path.stat()
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns) or len(data) != after.st_size:
            report.waiting.append(str(path))  # still being written: taken at a later scan
            return
        try:
            validate_blob_name(path.name)
            if contract.contract.tabular:
                read_events(contract, data)  # BlobUnreadable: a file that is not its format is no blob of it
            content_type = CONTENT_TYPES.get(contract.contract.format or "") or \
                mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            _, created = self.blobs.put(source, path.name, data, content_type)
        except LakebookError as exc:
            if exc.http_status in (503, 507):  # a full disk, an S3 lake out of reach: the file stays, tried again
                raise
            reason = exc.message + (f" ({exc.hint})" if exc.hint else "")
            report.failed.append((str(path), reason))
            _set_aside(path, marker, FAILED, reason)
            log.warning("drop %s moved to %s/: %s", path, FAILED, reason)
            return
        _set_aside(path, marker, STORED)
        report.stored.append((source, path.name))
        report.created += created


def _set_aside(path: Path, marker: Path, folder_name: str, reason: str | None = None) -> Path:
    """Move a dropped file into ``<dir>/<folder_name>/`` (its marker removed), with its reason
    beside it if there is one; a file of that name already there is kept (a number is added)."""
    folder = path.parent / folder_name
    folder.mkdir(exist_ok=True)
    target = folder / path.name
    if folder_name == FAILED:
        n = 1
        while target.exists():
            target, n = folder / f"{path.name}.{n}", n + 1
    if reason is not None:
        target.with_name(target.name + REASON).write_text(reason + "\n")
    os.replace(path, target)
    marker.unlink(missing_ok=True)
    fsync_dir(folder)
    fsync_dir(path.parent)
    return target
