"""The catalog: tables, columns, docs, owners, lineage, stats and freshness of the lake.

``Catalog`` (SQLAlchemy) is imported on first use, so reading a snapshot of the catalog
(``CatalogSnapshot``) does not pay for it."""

from __future__ import annotations

import importlib

from .info import ColumnInfo, TableInfo
from .snapshot import CatalogSnapshot

__all__ = ["Catalog", "CatalogSnapshot", "CatalogTables", "ColumnInfo", "RunOutput", "TableInfo", "lineage_lines", "open_catalog",
           "register_sources"]

_LAZY = {"Catalog": ".store", "CatalogTables": ".store", "RunOutput": ".store", "lineage_lines": ".store", "register_sources": ".sources"}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def open_catalog(workspace, *, register: bool = True):
    """The workspace's catalog, with every contract's raw and quarantine table registered
    (no write when they are registered already)."""
    from .sources import register_sources
    from .store import Catalog

    workspace.ensure_state()
    catalog = Catalog(workspace.catalog_url, workspace.lake.root)
    if register:
        register_sources(workspace, catalog)
    return catalog
