"""The catalog: tables, columns, docs, owners, stats and freshness of the lake."""

from .store import Catalog, ColumnInfo, TableInfo
from .sources import register_sources

__all__ = ["Catalog", "ColumnInfo", "TableInfo", "register_sources"]
