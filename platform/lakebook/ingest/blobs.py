"""Raw blobs stored as they came: ``blobs/<source>/<name>`` plus a metadata record
(``blobs/<source>/_meta/<name>.json``: content type, size, sha256, time), in a local lake
folder or an S3 lake's bucket. Append-only: a name, once stored, keeps its content.

Concurrent PUTs of one name (threads of one server, or several processes) take the name's
lock file (flock) around check-and-write: exactly one content is stored, the same content
again is a no-op (the sha256 of the stored metadata is compared) and other content a
Conflict. A local lake keeps the lock files beside the metadata (``_meta/<name>.lock``); an
S3 lake has nothing to lock, so they live in the state dir (``<state dir>/blobs/locks/``) and
guard the processes that share it. The metadata is written before the blob, so a blob that
exists always has its metadata: locally each by an atomic rename, on S3 each in one PUT,
which S3 shows whole or not at all.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone
from pathlib import Path

import orjson

from ..errors import BadRequest, Conflict, InsufficientStorage, NotFound, out_of_space
from ..lake import store, write_bytes_atomic
from .._proc import file_lock

BLOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


def validate_blob_name(name: str) -> None:
    if not BLOB_NAME.match(name) or ".." in name:
        raise BadRequest(
            f"invalid blob name {name[:80]!r}",
            hint="use 1-200 letters, digits, '.', '_' or '-', starting with a letter or digit, no '..'",
        )


def meta_path(folder, name: str):
    """Where the metadata of the blob ``name`` of a source's blob folder is."""
    return folder / "_meta" / f"{name}.json"


def read_meta(folder, name: str) -> dict:
    """The metadata record of the blob ``name`` of a source's blob folder (local or on S3)."""
    return orjson.loads(read_bytes(meta_path(folder, name)))


def read_bytes(path) -> bytes:
    """A blob or metadata file's content, from a local lake or an S3 lake."""
    return store.read_bytes(path) if store.is_s3(path) else path.read_bytes()


def _exists(path) -> bool:
    return store.exists(path) if store.is_s3(path) else path.exists()


def _write(data: bytes, path) -> None:
    if store.is_s3(path):
        store.write_bytes(data, path)
    else:
        write_bytes_atomic(data, path)


def _remove(path) -> None:
    if store.is_s3(path):
        store.delete_file(path)
    else:
        path.unlink(missing_ok=True)


class BlobStore:
    """The blobs under ``root`` (the lake's ``blobs/`` folder); ``locks`` is where the name
    locks are kept when ``root`` is on S3 (``BlobStore.of(workspace)`` picks both)."""

    def __init__(self, root, locks: Path | None = None):
        if store.is_s3(root) and locks is None:
            raise ValueError("a blob store on S3 needs a local folder for its locks")
        self.root = root
        self.locks = locks

    @classmethod
    def of(cls, workspace) -> "BlobStore":
        """The blob store of a workspace's lake."""
        return cls(workspace.lake.blobs_dir, workspace.blob_locks_dir if workspace.lake_on_s3 else None)

    def _paths(self, source: str, name: str):
        validate_blob_name(name)
        folder = self.root / source
        return folder / name, meta_path(folder, name)

    def _lock_path(self, source: str, name: str, meta) -> Path:
        return meta.with_name(f"{name}.lock") if self.locks is None else self.locks / source / f"{name}.lock"

    def put(self, source: str, name: str, data: bytes, content_type: str) -> tuple[dict, bool]:
        """Store a blob; returns (metadata, created). Same content again is a no-op."""
        path, meta = self._paths(source, name)
        digest = hashlib.sha256(data).hexdigest()
        try:
            with file_lock(self._lock_path(source, name, meta)):
                if _exists(path):
                    return self._same(source, name, meta, digest), False
                record = {"source": source, "name": name, "content_type": content_type[:200], "size": len(data),
                          "sha256": digest, "stored_at": datetime.now(timezone.utc).isoformat()}
                self._store(path, meta, record, data)
                return record, True
        except OSError as exc:
            if out_of_space(exc):
                raise InsufficientStorage(f"the disk holding the blobs ({self.root}) is full: nothing was stored",
                                          hint="free space on that disk, then send again (no restart needed)") from exc
            if store.is_s3(self.root):
                raise self._unavailable(exc) from None
            raise

    def _unavailable(self, exc: OSError):
        return store.s3_error(exc, self.root.bucket, store.S3Options.from_env())

    @staticmethod
    def _same(source: str, name: str, meta, digest: str) -> dict:
        record = orjson.loads(read_bytes(meta))
        if record["sha256"] != digest:
            raise Conflict(f"blob {source}/{name} exists with other content",
                           hint="blobs are append-only: store the new content under a new name")
        return record

    @staticmethod
    def _store(path, meta, record: dict, data: bytes) -> None:
        if not store.is_s3(meta):
            meta.parent.mkdir(parents=True, exist_ok=True)
        try:
            _write(orjson.dumps(record), meta)
            _write(data, path)
        except BaseException:
            try:
                _remove(meta)
            except OSError:  # the store is out of reach: the metadata without its blob is written over next time
                pass
            raise

    def get(self, source: str, name: str) -> tuple[bytes, dict]:
        path, meta = self._paths(source, name)
        try:
            if not _exists(path):
                raise NotFound(f"no blob {source}/{name}")
            return read_bytes(path), orjson.loads(read_bytes(meta))
        except OSError as exc:
            if store.is_s3(self.root):
                raise self._unavailable(exc) from None
            raise
