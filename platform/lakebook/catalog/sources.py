"""Register raw sources (from their contracts), their quarantine tables and, for blob
sources, their ``blobs`` tables in the catalog."""

from __future__ import annotations

import pyarrow as pa

from ..contracts import INGESTED_AT
from .store import Catalog, ColumnInfo

QUARANTINE_COLUMNS = (
    ColumnInfo("_received_at", "timestamp[us, tz=UTC]", "when the rejected input arrived", False),
    ColumnInfo("request_id", "string", "the ingest request it came in (blob:<name> for a blob's row)", False),
    ColumnInfo("index", "int64", "position in the request, or a blob's row number (null: the whole body)"),
    ColumnInfo("raw", "string", "the input as it came in"),
    ColumnInfo("reasons", "list<string>", "why it was rejected", False),
)
BLOB_TABLE_SCHEMA = pa.schema([
    pa.field("name", pa.string(), nullable=False, metadata={"description": "the blob's name (its file name)"}),
    pa.field("size", pa.int64(), nullable=False, metadata={"description": "bytes"}),
    pa.field("content_type", pa.string(), nullable=False, metadata={"description": "as it was stored with"}),
    pa.field("sha256", pa.string(), nullable=False, metadata={"description": "hex digest of the content"}),
    pa.field("stored_at", pa.timestamp("us", tz="UTC"), nullable=False, metadata={"description": "when it was stored"}),
    pa.field("rows", pa.int64(), metadata={"description": "rows in the file (tabular formats)"}),
    pa.field("rejected", pa.int64(), metadata={"description": "rows quarantined (tabular formats)"}),
    pa.field("status", pa.string(), nullable=False,
             metadata={"description": "accepted, partly rejected, rejected, binary or duplicate"}),
    pa.field("path", pa.string(), nullable=False, metadata={"description": "the original file, as it came"}),
])


def _columns(schema: pa.Schema) -> list[ColumnInfo]:
    return [ColumnInfo(f.name, str(f.type), (f.metadata or {}).get(b"description", b"").decode(), f.nullable,
                       (f.metadata or {}).get(b"pii") == b"true") for f in schema]


def register_sources(workspace, catalog: Catalog) -> list[str]:
    """Make sure every contract has its raw table and quarantine table in the catalog (a
    binary blob source has neither: no rows are read from its files), and every blob source
    its blobs table."""
    names = []
    for source, compiled in workspace.contracts().items():
        contract = compiled.contract
        if contract.is_blob:
            register_blob_table(workspace, catalog, source, contract.owner)
        if contract.kind == "events" or contract.tabular:
            catalog.register_table(
                "raw", source, kind="source", location=str(workspace.lake.table_dir("raw", source)),
                columns=_columns(compiled.lake_schema), description=contract.description, owner=contract.owner,
                event_time_column=contract.event_time or INGESTED_AT, source_version=contract.version,
            )
            catalog.register_table(
                "quarantine", source, kind="quarantine",
                location=str(workspace.lake.table_dir("quarantine", source)), columns=QUARANTINE_COLUMNS,
                description=f"events rejected by the contract '{source}', with reasons",
                owner=contract.owner, event_time_column="_received_at",
            )
        names.append(source)
    return names


def register_blob_table(workspace, catalog: Catalog, source: str, owner: str = "") -> None:
    """The ``blobs.<source>`` table: one row per blob stored for the source."""
    catalog.register_table(
        "blobs", source, kind="blobs", location=str(workspace.lake.blob_catalog_dir(source)),
        columns=_columns(BLOB_TABLE_SCHEMA), description=f"every blob stored for source '{source}', as it came",
        owner=owner, event_time_column="stored_at",
    )
