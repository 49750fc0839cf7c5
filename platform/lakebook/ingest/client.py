"""A small client of the ingest API: send a file of NDJSON events in batches, concurrently."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator

from ..errors import LakebookError


def batches(path: Path, size: int) -> Iterator[bytes]:
    """The file's lines, ``size`` at a time, as NDJSON bodies."""
    with open(path, "rb") as fh:
        lines = fh.read().splitlines()
    for start in range(0, len(lines), size):
        yield b"\n".join(lines[start:start + size])


def send_ndjson_file(url: str, source: str, path: Path, batch_size: int = 1000, *, concurrency: int = 4,
                     on_batch: Callable[[int], None] | None = None, headers: dict[str, str] | None = None,
                     ) -> tuple[int, int]:
    """POST the file's lines to ``url``/v1/events/``source`` in NDJSON batches over
    ``concurrency`` connections; (accepted, rejected). ``on_batch(n)`` follows progress."""
    import httpx

    headers = {"content-type": "application/x-ndjson", **(headers or {})}
    with httpx.Client(base_url=url, timeout=60, limits=httpx.Limits(max_connections=concurrency)) as client:
        def send(body: bytes) -> tuple[int, int, int]:
            answer = client.post(f"/v1/events/{source}", content=body, headers=headers)
            if answer.status_code not in (200, 422):
                raise LakebookError(f"ingest answered {answer.status_code}: {answer.text[:300]}")
            doc = answer.json()
            return doc["accepted"], doc["rejected_count"], body.count(b"\n") + 1

        accepted = rejected = 0
        with ThreadPoolExecutor(concurrency) as pool:
            for ok, bad, n in pool.map(send, batches(path, batch_size)):
                accepted, rejected = accepted + ok, rejected + bad
                if on_batch is not None:
                    on_batch(n)
    return accepted, rejected
