"""Prediction records the ingest log refused when a recorder closed, kept in a file of the
workspace until the next recorder appends them to the log.

Invariants: the file is 0600 and holds one JSON object per line. A writer appends whole lines
under an exclusive lock and fsyncs before letting go, so a crash mid-write leaves at most one
partial line, at the end, and the next writer starts on a line of its own. A reader holds the
same lock while it appends the records to the log, and removes the file only once the append
returned: a record is always in the file or in the log (in both if the reader dies between
the append and the removal; the flush keeps an event id once).
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path
from typing import Callable

import orjson

log = logging.getLogger("lakebook.serving")


def spill(path: Path, records: list[dict]) -> None:
    """Append ``records`` to the spill file at ``path``, durably."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = b"".join(orjson.dumps(record, default=str) + b"\n" for record in records)
    fd = _open_locked(path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
    try:
        os.fchmod(fd, 0o600)
        if _ends_mid_line(fd):  # a writer died mid-line: that line stays apart, and is skipped
            lines = b"\n" + lines
        _write_all(fd, lines)
        os.fsync(fd)
    finally:
        os.close(fd)


def take_spill(path: Path, append: Callable[[list[dict]], None]) -> int:
    """Hand the records spilled at ``path`` to ``append``, then remove the file; how many
    there were (0 without a file). When ``append`` raises, the file is left as it was."""
    fd = _open_locked(path, os.O_RDWR)
    if fd is None:
        return 0
    try:
        records = _records(_read_all(fd), path)
        if records:
            append(records)
        os.unlink(path)
    finally:
        os.close(fd)
    return len(records)


def _open_locked(path: Path, flags: int) -> int | None:
    """The file ``path`` names, opened with ``flags`` and locked; None if it does not exist
    (and ``flags`` do not create it). A reader may remove the file while this waits for the
    lock: then the name is opened again."""
    while True:
        try:
            fd = os.open(path, flags, 0o600)
        except FileNotFoundError:
            return None
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _ends_mid_line(fd: int) -> bool:
    size = os.fstat(fd).st_size
    return size > 0 and os.pread(fd, 1, size - 1) != b"\n"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _records(data: bytes, path: Path) -> list[dict]:
    """The records of the file's lines; a line that is not a JSON object (the end of a write a
    crash cut short) is skipped with a warning."""
    records = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            record = None
        if isinstance(record, dict):
            records.append(record)
        else:
            log.warning("skipped line %d of %s: not a whole prediction record (a write cut short)", number, path)
    return records
