"""Raw blobs stored as they came: ``blobs/<source>/<name>`` plus a metadata record
(content type, size, sha256, time). Append-only: a name, once stored, keeps its content.

Concurrent PUTs of one name (threads of one server, or several processes) take the name's
lock file (``_meta/<name>.lock``, flock) around check-and-write: exactly one content is
stored, the same content again is a no-op and other content a Conflict. The metadata is
written before the blob, so a blob that exists always has its metadata.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone
from pathlib import Path

import orjson

from ..errors import BadRequest, Conflict, InsufficientStorage, NotFound, out_of_space
from ..lake import write_bytes_atomic
from ..lake.store import require_local
from .._proc import file_lock

BLOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


def validate_blob_name(name: str) -> None:
    if not BLOB_NAME.match(name) or ".." in name:
        raise BadRequest(
            f"invalid blob name {name[:80]!r}",
            hint="use 1-200 letters, digits, '.', '_' or '-', starting with a letter or digit, no '..'",
        )


class BlobStore:
    def __init__(self, root: Path):
        self.root = root

    def _paths(self, source: str, name: str) -> tuple[Path, Path]:
        validate_blob_name(name)
        folder = self.root / source
        return folder / name, folder / "_meta" / f"{name}.json"

    def put(self, source: str, name: str, data: bytes, content_type: str) -> tuple[dict, bool]:
        """Store a blob; returns (metadata, created). Same content again is a no-op."""
        require_local(self.root, "storing blobs")
        path, meta_path = self._paths(source, name)
        digest = hashlib.sha256(data).hexdigest()
        try:
            with file_lock(meta_path.with_name(f"{name}.lock")):
                if path.exists():
                    return self._same(source, name, meta_path, digest), False
                meta = {"source": source, "name": name, "content_type": content_type[:200], "size": len(data),
                        "sha256": digest, "stored_at": datetime.now(timezone.utc).isoformat()}
                self._store(path, meta_path, meta, data)
                return meta, True
        except OSError as exc:
            if out_of_space(exc):
                raise InsufficientStorage(f"the disk holding the blobs ({self.root}) is full: nothing was stored",
                                          hint="free space on that disk, then send again (no restart needed)") from exc
            raise

    @staticmethod
    def _same(source: str, name: str, meta_path: Path, digest: str) -> dict:
        meta = orjson.loads(meta_path.read_bytes())
        if meta["sha256"] != digest:
            raise Conflict(f"blob {source}/{name} exists with other content",
                           hint="blobs are append-only: store the new content under a new name")
        return meta

    @staticmethod
    def _store(path: Path, meta_path: Path, meta: dict, data: bytes) -> None:
        try:
            write_bytes_atomic(orjson.dumps(meta), meta_path)
            write_bytes_atomic(data, path)
        except BaseException:
            meta_path.unlink(missing_ok=True)
            raise

    def get(self, source: str, name: str) -> tuple[bytes, dict]:
        path, meta_path = self._paths(source, name)
        if not path.exists():
            raise NotFound(f"no blob {source}/{name}")
        return path.read_bytes(), orjson.loads(meta_path.read_bytes())
