"""Stored blobs into the catalog and the lake: the ``blobs.<source>`` table (one row per blob)
and, for a tabular blob source, its rows in ``raw.<source>`` (valid ones) and
``quarantine.<source>`` (the others, with reasons). The blob itself stays as it came
(``blobs/<source>/<name>``), for audit and replay.

This is done at flush, by whoever flushes (the ingest service's flusher, ``lakebook ingest
flush``, the drop inlet), under the flush lock, not when the blob is stored: a PUT or a drop
answers as soon as the blob is durable, a large file is read once, off the request, and a
contract fixed later applies to blobs not yet landed. A blob is landed when its row file in
``blobs.<source>`` exists; that file is written last, after its raw and quarantine files,
each named after the blob (``blob-<name>``) and recorded by path: a crash at any step is
redone by the next flush, and nothing is written twice.

Storing the same name with the same content again stores nothing (ingest/blobs.py); the same
content under another name of the source is catalogued with status ``duplicate`` and adds no
rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pyarrow as pa

from ..catalog.sources import BLOB_TABLE_SCHEMA, register_blob_table, register_sources
from ..contracts import INGESTED_AT
from ..errors import BlobUnreadable, LakebookError, UnknownTable
from ..lake import write_date_partitions
from ..lake import store
from .blob_rows import BlobRows, blob_schema, validate_blob
from .blobs import read_bytes, read_meta
from .records import QUARANTINE_SCHEMA

log = logging.getLogger("lakebook.ingest.landing")

ACCEPTED, PARTLY_REJECTED, REJECTED, BINARY, DUPLICATE = "accepted", "partly rejected", "rejected", "binary", "duplicate"
RAW_PREVIEW_CHARS = 2000  # of a blob no row could be read from, kept in its quarantine row


@dataclass
class BlobLanding:
    source: str
    name: str
    status: str
    rows: int | None = None
    rejected: int | None = None
    note: str | None = None  # something to tell (fields inferred)


def pending_blobs(workspace, catalog, source: str) -> list[str]:
    """Names of the source's stored blobs not landed yet (no file in the blobs table's
    manifest: a row file written by a flush that crashed before recording it is written
    again, as it was, and recorded), oldest first."""
    folder = workspace.lake.blobs_dir / source
    stored = _stored_names(folder)
    if not stored:
        return []
    try:
        landed = {Path(p).stem for p in catalog.files("blobs", source)}
    except UnknownTable:
        landed = set()
    names = [name for name in stored if name not in landed]
    return sorted(names, key=lambda name: (read_meta(folder, name)["stored_at"], name))


def _stored_names(folder) -> list[str]:
    """The names of the blobs in a source's blob folder (a local folder or an S3 prefix)."""
    if store.is_s3(folder):
        return [name for name in store.list_names(folder) if not name.startswith(".")]
    if not folder.is_dir():
        return []
    return [p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]


def blob_sources(workspace) -> list[str]:
    """Sources with a contract and at least one stored blob. On an S3 lake, every source whose
    contract takes blobs: its folder is listed when it is landed (land_source), so a bucket
    out of reach is one source's failure, retried with backoff, not the whole flush's."""
    root = workspace.lake.blobs_dir
    contracts = workspace.contracts()
    if store.is_s3(root):
        return sorted(name for name, compiled in contracts.items() if compiled.contract.is_blob)
    return sorted(p.name for p in root.iterdir() if p.is_dir() and p.name in contracts) if root.is_dir() else []


def blobs_pending(workspace, catalog) -> bool:
    """Whether any source has a stored blob not landed yet (also when the lake cannot be
    listed now: the flush then says why, and retries with backoff)."""
    try:
        return any(pending_blobs(workspace, catalog, source) for source in blob_sources(workspace))
    except (LakebookError, OSError):
        return True


def land_source(workspace, catalog, source: str) -> list[BlobLanding]:
    """Land every pending blob of ``source`` (the caller holds the flush lock)."""
    pending = pending_blobs(workspace, catalog, source)
    if not pending:
        return []
    register_blob_table(workspace, catalog, source, workspace.contract(source).contract.owner)
    known = _catalogued_digests(catalog, source)
    landed = []
    for name in pending:
        landing = _land(workspace, catalog, source, name, known)
        known.setdefault(read_meta(workspace.lake.blobs_dir / source, name)["sha256"], name)
        landed.append(landing)
        log.info("landed blob %s/%s: %s%s", source, name, landing.status,
                 f", {landing.rows} rows, {landing.rejected} rejected" if landing.rows is not None else "")
    return landed


def _catalogued_digests(catalog, source: str) -> dict[str, str]:
    """sha256 -> name of every blob of the source landed already."""
    files = catalog.files("blobs", source)
    if not files:
        return {}
    table = pa.concat_tables([store.read_table(f, columns=["sha256", "name"]) for f in files])
    return dict(zip(table.column("sha256").to_pylist(), table.column("name").to_pylist()))


def _land(workspace, catalog, source: str, name: str, known: dict[str, str]) -> BlobLanding:
    path = workspace.lake.blobs_dir / source / name
    meta = read_meta(path.parent, name)
    stored_at = datetime.fromisoformat(meta["stored_at"])
    compiled = workspace.contract(source)
    if meta["sha256"] in known:
        landing = BlobLanding(source, name, DUPLICATE, 0, 0, f"the same content as {known[meta['sha256']]}")
    elif not compiled.contract.tabular:
        landing = BlobLanding(source, name, BINARY)
    else:
        landing = _land_rows(workspace, catalog, source, name, read_bytes(path), stored_at)
    row = {**{k: meta[k] for k in ("name", "size", "content_type", "sha256")}, "stored_at": stored_at,
           "rows": landing.rows, "rejected": landing.rejected, "status": landing.status, "path": str(path)}
    files = write_date_partitions(pa.Table.from_pylist([row], schema=BLOB_TABLE_SCHEMA),
                                  workspace.lake.blob_catalog_dir(source), "stored_at", name,
                                  ingested_column="stored_at", compression=workspace.settings.lake.compression)
    catalog.record_files("blobs", source, files)
    return landing


def _land_rows(workspace, catalog, source: str, name: str, data: bytes, stored_at: datetime) -> BlobLanding:
    """A tabular blob's rows into raw (valid) and quarantine (the others)."""
    note = None
    contract = workspace.contract(source)
    try:
        if contract.contract.infer and not contract.contract.fields:
            contract, note = _infer(workspace, catalog, source, name, data)
        rows = validate_blob(contract, name, data, stored_at)
    except BlobUnreadable as exc:
        preview = data[:RAW_PREVIEW_CHARS].decode("utf-8", "backslashreplace")
        rows = BlobRows(pa.table({}), [(None, preview, [exc.message])], 0)
    stem = f"blob-{name}"
    compression = workspace.settings.lake.compression
    if rows.accepted.num_rows:
        files = write_date_partitions(rows.accepted, workspace.lake.table_dir("raw", source),
                                      contract.contract.event_time or INGESTED_AT, stem,
                                      ingested_column=INGESTED_AT, compression=compression)
        catalog.record_files("raw", source, files)
    if rows.rejected:
        quarantined = pa.Table.from_pylist(
            [{"_received_at": stored_at, "request_id": f"blob:{name}", "index": i, "raw": raw, "reasons": reasons}
             for i, raw, reasons in rows.rejected], schema=QUARANTINE_SCHEMA)
        files = write_date_partitions(quarantined, workspace.lake.table_dir("quarantine", source), "_received_at",
                                      stem, ingested_column="_received_at", compression=compression)
        catalog.record_files("quarantine", source, files)
    accepted = rows.accepted.num_rows
    status = ACCEPTED if not rows.rejected else (PARTLY_REJECTED if accepted else REJECTED)
    return BlobLanding(source, name, status, rows.rows, len(rows.rejected), note)


def _infer(workspace, catalog, source: str, name: str, data: bytes):
    """Infer the source's fields from this blob, write them beside its contract and take them."""
    from ..contracts.inferred import infer_fields, write_inferred

    compiled = workspace.contract(source)
    try:
        fields = infer_fields(blob_schema(compiled, data))
    except ValueError as exc:
        raise BlobUnreadable(f"cannot infer fields from {name}: {exc}") from None
    written = write_inferred(workspace.contracts_dir / f"{source}.yaml", source, name, fields)
    register_sources(workspace, catalog)
    note = f"fields inferred from {name}: review {written.parent.name}/{written.name}"
    log.warning("source %s: %s", source, note)
    return workspace.contract(source), note


def list_blobs(catalog, source: str | None = None) -> list[dict]:
    """The catalogued blobs (rows of the blobs tables), of one source or all, oldest first."""
    tables = [t for t in catalog.tables("blobs") if source is None or t.name == source]
    if source is not None and not tables:
        catalog.table(f"blobs.{source}")  # UnknownTable, with the known names
    listed = []
    for table in tables:
        for path in catalog.files("blobs", table.name):
            listed += [{"source": table.name, **row}
                       for row in store.read_table(path, schema=BLOB_TABLE_SCHEMA).to_pylist()]
    return sorted(listed, key=lambda row: (row["stored_at"], row["source"], row["name"]))
