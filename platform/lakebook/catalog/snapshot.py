"""The catalog's tables as one process last read them, read again only when the catalog changed.

A SQLite catalog (the embedded default) is read with the standard library over a read-only
connection, and a change is seen from ``PRAGMA data_version``: a query process starts without
SQLAlchemy and pays one pragma per query while nothing changes. Other databases, and a
SQLite catalog that does not exist yet, are read through ``Catalog`` on every refresh.
The SQL below reads the tables ``store.py`` defines; tests compare both readings.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .info import ColumnInfo, TableInfo, stored_path

if TYPE_CHECKING:
    from .store import Catalog

_TABLES = ("SELECT id, zone, name, kind, description, owner, location, row_count, bytes, last_event_time, "
           "last_ingest_time, updated_at, event_time_column FROM tables ORDER BY zone, name")
_COLUMNS = "SELECT table_id, name, type, description, nullable, pii FROM columns ORDER BY table_id, position"
_FILES = ("SELECT f.path FROM files f JOIN tables t ON f.table_id = t.id WHERE t.zone = ? AND t.name = ? "
          "AND f.removed_at IS NULL ORDER BY f.id")


class CatalogSnapshot:
    """``tables`` by qualified name (``raw.flights``), as of the last ``refresh``."""

    def __init__(self, url: str, root: Path | None, open_catalog: Callable[[], "Catalog"],
                 catalog: "Catalog | None" = None):
        self.url, self.root = url, root
        self.tables: dict[str, TableInfo] = {}
        self._open_catalog = open_catalog
        self._catalog = catalog
        self._owns_catalog = catalog is None  # one it was given is closed by whoever gave it
        self._reader: sqlite3.Connection | None = None
        self._version: int | None = None

    def catalog(self) -> "Catalog":
        """The catalog itself (opened on first use: it registers the workspace's sources)."""
        if self._catalog is None:
            self._catalog = self._open_catalog()
        return self._catalog

    def refresh(self) -> bool:
        """Read the tables again if the catalog changed since the last read; True when it did."""
        version = self._current_version()
        if version is not None and version == self._version:
            return False
        tables = self._read_sqlite() if version is not None else None
        if tables is None:
            version, tables = None, self.catalog().tables()
        self.tables = {t.qualified_name: t for t in tables}
        self._version = version
        return True

    def files(self, table: TableInfo) -> list[str]:
        """The paths of a table's live files (its manifest), read in one statement: a file
        compaction replaced and the file that replaced it are never both listed."""
        rows = None
        if self._reader is not None:
            try:
                rows = self._reader.execute(_FILES, (table.zone, table.name)).fetchall()
            except sqlite3.OperationalError:  # a catalog from before compaction: Catalog adds the column
                rows = None
        if rows is None:
            return self.catalog().files(table.zone, table.name)
        return [stored_path(self.root, path) for (path,) in rows]

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        if self._catalog is not None and self._owns_catalog:
            self._catalog.close()

    def _current_version(self) -> int | None:
        if self._reader is None:
            self._reader = _sqlite_reader(self.url)
        return self._reader.execute("PRAGMA data_version").fetchone()[0] if self._reader else None

    def _read_sqlite(self) -> list[TableInfo] | None:
        """The tables in one read transaction; None when the database has no catalog yet."""
        try:
            self._reader.execute("BEGIN")
            try:
                tables, columns = self._reader.execute(_TABLES).fetchall(), self._reader.execute(_COLUMNS).fetchall()
            finally:
                self._reader.execute("COMMIT")
        except sqlite3.OperationalError:
            return None
        by_table: dict[int, list[ColumnInfo]] = {}
        for table_id, name, type_, description, nullable, pii in columns:
            by_table.setdefault(table_id, []).append(ColumnInfo(name, type_, description, bool(nullable), bool(pii)))
        return [_table_info(row, tuple(by_table.get(row[0], ())), self.root) for row in tables]


def _sqlite_reader(url: str) -> sqlite3.Connection | None:
    """A read-only connection to a SQLite catalog that exists, else None."""
    if not url.startswith("sqlite:///"):
        return None
    try:
        con = sqlite3.connect(f"file:{url[len('sqlite:///'):]}?mode=ro", uri=True, isolation_level=None,
                              check_same_thread=False)
        con.execute("PRAGMA schema_version").fetchone()  # opens the file now: data_version is live from here
    except sqlite3.OperationalError:
        return None
    return con


def _table_info(row: tuple, columns: tuple[ColumnInfo, ...], root: Path | None) -> TableInfo:
    (_, zone, name, kind, description, owner, location, rows, size, last_event, last_ingest, updated,
     event_time_column) = row
    return TableInfo(zone, name, kind, description, owner, stored_path(root, location), rows, size,
                     _utc(last_event), _utc(last_ingest), _utc(updated), event_time_column, columns)


def _utc(value: str | None) -> datetime | None:
    """A DateTime column as SQLAlchemy stores it in SQLite (naive UTC text), zone-aware."""
    return datetime.fromisoformat(value).replace(tzinfo=timezone.utc) if value else None
