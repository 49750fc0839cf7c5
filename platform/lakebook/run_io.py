"""The catalog tables a job run reads and writes, reported to the job runner.

The job runner names a file in ``LAKEBOOK_RUN_IO`` (config.py) for the processes of a run;
the query layer, transforms and feature materialization append to it one JSON line per
table, ``{"op": "read" | "write", "table": "zone.name"}``.

Invariants: each line is one ``write`` to a file opened with ``O_APPEND``, so lines of
concurrent writers (a kernel, a transform run) never interleave; without the variable
nothing is opened. Reporting never fails the work it reports on: a file that cannot be
written is logged.
"""

from __future__ import annotations

import logging
import os
from typing import Iterable

import orjson

from .config import run_environment

log = logging.getLogger("lakebook.run_io")
OPS = ("read", "write")


def record(reads: Iterable[str] = (), writes: Iterable[str] = ()) -> None:
    """Report the tables (``zone.name``) read and written, each once, if a run asks for them."""
    path = run_environment().io_path
    if path is None:
        return
    lines = [_line("read", t) for t in dict.fromkeys(reads)] + [_line("write", t) for t in dict.fromkeys(writes)]
    if lines:
        _append(path, lines)


def _line(op: str, table: str) -> bytes:
    return orjson.dumps({"op": op, "table": table}) + b"\n"


def _append(path, lines: list[bytes]) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            for line in lines:
                if os.write(fd, line) != len(line):
                    raise OSError(f"short write of {len(line)} bytes")
        finally:
            os.close(fd)
    except OSError as exc:
        log.warning("could not report the run's tables to %s: %s", path, exc)


def recorded(path) -> list[dict]:
    """The lines a run's file holds, in order (what the job runner reads back)."""
    with open(path, "rb") as f:
        return [orjson.loads(line) for line in f if line.strip()]
