"""The blob store on real files: concurrent writers of one name (threads here; processes
take the same lock file) end with exactly one content stored."""

from __future__ import annotations

import hashlib
import threading

import pytest

from lakebook.errors import Conflict
from lakebook.ingest.blobs import BlobStore


def race(store: BlobStore, bodies: list[bytes]) -> list:
    """PUT every body under one name at once (a barrier lines the threads up); each result is
    (metadata, created) or the error raised."""
    barrier = threading.Barrier(len(bodies))
    results: list = [None] * len(bodies)

    def put(i: int) -> None:
        barrier.wait()
        try:
            results[i] = store.put("flights", "same.bin", bodies[i], "application/octet-stream")
        except Conflict as exc:
            results[i] = exc

    threads = [threading.Thread(target=put, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.mark.parametrize("round_", range(5))
def test_concurrent_puts_of_different_content_store_exactly_one(tmp_path, round_):
    store = BlobStore(tmp_path / "blobs")
    bodies = [bytes([i]) * (256 * 1024 + i) for i in range(8)]
    results = race(store, bodies)
    created = [i for i, r in enumerate(results) if isinstance(r, tuple) and r[1]]
    assert len(created) == 1, results
    assert all(isinstance(r, Conflict) for i, r in enumerate(results) if i != created[0]), results
    data, meta = store.get("flights", "same.bin")
    assert data == bodies[created[0]] and meta["sha256"] == hashlib.sha256(data).hexdigest()
    assert meta["size"] == len(data)


def test_concurrent_puts_of_the_same_content_store_it_once(tmp_path):
    store = BlobStore(tmp_path / "blobs")
    body = b"x" * (512 * 1024)
    results = race(store, [body] * 8)
    assert sorted(created for _, created in results) == [False] * 7 + [True]
    assert len({meta["stored_at"] for meta, _ in results}) == 1  # the one stored record, read back by the rest
    assert store.get("flights", "same.bin")[0] == body
