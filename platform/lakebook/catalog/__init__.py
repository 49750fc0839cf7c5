"""The catalog: tables, columns, docs, owners, lineage, stats and freshness of the lake."""

from __future__ import annotations

from .sources import register_sources
from .store import Catalog, ColumnInfo, RunOutput, TableInfo, lineage_lines

__all__ = ["Catalog", "ColumnInfo", "RunOutput", "TableInfo", "lineage_lines", "open_catalog", "register_sources"]


def open_catalog(workspace, *, register: bool = True) -> Catalog:
    """The workspace's catalog, with every contract's raw and quarantine table registered
    (no write when they are registered already)."""
    workspace.ensure_state()
    catalog = Catalog(workspace.catalog_url, workspace.lake.root)
    if register:
        register_sources(workspace, catalog)
    return catalog
