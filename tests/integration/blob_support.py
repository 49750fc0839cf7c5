"""What the blob tests share: a planes CSV with a change and a bad row, waiting for the
flusher to land blobs, and lakebook's own query engine."""

from __future__ import annotations

import time
from pathlib import Path

from ingest_support import load_workspace

HEADER = b"tailnum,year,type,manufacturer,model,engines,seats,speed,engine\n"
CHANGES = HEADER + (b"N10156,2004,Fixed wing multi engine,EMBRAER,EMB-145XR,2,50,NA,Turbo-fan\n"
                    b"X-1,2013,Fixed wing multi engine,UNKNOWN,UNKNOWN,2,NA,NA,Turbo-fan\n")


def wait_for(predicate, timeout_s: float = 30.0, poll_s: float = 0.2):
    """``predicate()``'s first true value within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"not within {timeout_s} s")


def query(root: Path, sql: str) -> list[dict]:
    from lakebook.query import LakeSession

    return LakeSession(load_workspace(root)).query(sql).table.to_pylist()
