"""Register raw sources (from their contracts) and their quarantine tables in the catalog."""

from __future__ import annotations

from .store import Catalog, ColumnInfo

QUARANTINE_COLUMNS = (
    ColumnInfo("_received_at", "timestamp[us, tz=UTC]", "when the rejected input arrived", False),
    ColumnInfo("request_id", "string", "the ingest request it came in", False),
    ColumnInfo("index", "int64", "position in the request (null: the whole body)"),
    ColumnInfo("raw", "string", "the input as it came in"),
    ColumnInfo("reasons", "list<string>", "why it was rejected", False),
)


def register_sources(workspace, catalog: Catalog) -> list[str]:
    """Make sure every contract has its raw table and quarantine table in the catalog."""
    names = []
    for source, compiled in workspace.contracts().items():
        contract = compiled.contract
        columns = [
            ColumnInfo(f.name, str(f.type), f.metadata.get(b"description", b"").decode(), f.nullable,
                       f.metadata.get(b"pii") == b"true")
            for f in compiled.schema
        ]
        catalog.register_table(
            "raw", source, kind="source", location=str(workspace.lake.table_dir("raw", source)),
            columns=columns, description=contract.description, owner=contract.owner,
            event_time_column=contract.event_time, source_version=contract.version,
        )
        catalog.register_table(
            "quarantine", source, kind="quarantine", location=str(workspace.lake.table_dir("quarantine", source)),
            columns=QUARANTINE_COLUMNS, description=f"events rejected by the contract '{source}', with reasons",
            owner=contract.owner, event_time_column="_received_at",
        )
        names.append(source)
    return names
