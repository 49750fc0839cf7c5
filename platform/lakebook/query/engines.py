"""Query engines behind a registry keyed by ``query.engine`` (duckdb now, spark later).

The DuckDB engine runs in the calling process over the lake's Parquet files: one view per
catalog table (``raw.flights``), refreshed when the catalog changes. It cannot modify the
lake: statements that write files or attach databases are refused, and tables a user
creates live only in the session's in-memory database.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from .._registry import Registry
from ..catalog import Catalog, TableInfo
from ..errors import QueryError, ReadOnlyViolation, UnknownTable

ZONE_SCHEMAS = ("raw", "quarantine", "ref", "warehouse", "features")
_ALLOWED_STATEMENTS = {
    "SELECT", "EXPLAIN", "CREATE", "DROP", "INSERT", "UPDATE", "DELETE", "ALTER", "PRAGMA", "SET",
    "VARIABLE_SET", "TRANSACTION", "PREPARE", "EXECUTE", "ANALYZE", "RELATION",
}
_DDL_TARGET = re.compile(
    r"^\s*(create|drop|alter)\s+(or\s+replace\s+)?((temp|temporary)\s+)?"
    r"(table|view|schema|macro|sequence|index|type|function)\s+(if\s+(not\s+)?exists\s+)?(?P<name>[\w.\"]+)",
    re.IGNORECASE,
)
_DML_TARGET = re.compile(r"^\s*(insert\s+(or\s+\w+\s+)?into|update|delete\s+from)\s+(?P<name>[\w.\"]+)", re.IGNORECASE)
_DUCKDB_TYPES = {
    "string": "VARCHAR", "int32": "INTEGER", "int64": "BIGINT", "float": "FLOAT", "double": "DOUBLE",
    "bool": "BOOLEAN", "timestamp[us, tz=UTC]": "TIMESTAMPTZ", "date32[day]": "DATE",
    "list<string>": "VARCHAR[]", "list<item: string>": "VARCHAR[]",
}


class QueryEngine(Protocol):
    name: str

    def execute(self, sql: str, params: dict[str, Any] | None = None, limit: int | None = None) -> pa.Table: ...
    def tables_in(self, sql: str) -> list[str]: ...


query_engines: Registry[type] = Registry("query engine", "query.engine")


class CatalogSnapshot:
    """The catalog's tables, re-read only when the catalog database has changed."""

    def __init__(self, catalog: Catalog):
        self.catalog = catalog
        self.version: Any = None
        self.tables: dict[str, TableInfo] = {}
        self._probe = _sqlite_probe(catalog.url)

    def _current_version(self) -> Any:
        if self._probe is not None:
            return self._probe.execute("PRAGMA data_version").fetchone()[0]
        return None  # other databases: re-read every time

    def refresh(self) -> bool:
        """Re-read if changed; True when it did."""
        version = self._current_version()
        if version is not None and version == self.version and self.tables:
            return False
        self.tables = {t.qualified_name: t for t in self.catalog.tables()}
        self.version = version
        return True


def _sqlite_probe(url: str) -> sqlite3.Connection | None:
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///"):]
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    con.execute("PRAGMA schema_version").fetchone()  # open a read snapshot once so data_version is live
    return con


@query_engines.register("duckdb")
class DuckDBEngine:
    """DuckDB in this process, over the lake's Parquet files."""

    name = "duckdb"

    def __init__(self, workspace, catalog: Catalog | None = None):
        import duckdb

        self.workspace = workspace
        self.catalog = catalog or Catalog.for_workspace(workspace)
        self.snapshot = CatalogSnapshot(self.catalog)
        self.con = duckdb.connect(":memory:")
        self.con.execute("SET TimeZone = 'UTC'")
        # Lake files are immutable once written: their footers can be cached across queries.
        self.con.execute("SET parquet_metadata_cache = true")
        threads = workspace.settings.query.threads
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        for schema in ZONE_SCHEMAS:
            self.con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        self._views: dict[str, str] = {}

    # -- catalog -> views ----------------------------------------------------------------
    def sync_views(self) -> dict[str, TableInfo]:
        if self.snapshot.refresh() or not self._views:
            for name, table in self.snapshot.tables.items():
                definition = _view_sql(table)
                if self._views.get(name) != definition:
                    self.con.execute(f"CREATE OR REPLACE VIEW {name} AS {definition}")
                    self._views[name] = definition
        return self.snapshot.tables

    # -- running SQL ---------------------------------------------------------------------
    def check_read_only(self, sql: str) -> None:
        import duckdb

        try:
            statements = self.con.extract_statements(sql)
        except duckdb.Error as exc:
            raise QueryError(_one_line(exc)) from None
        for statement in statements:
            kind = statement.type.name
            if kind not in _ALLOWED_STATEMENTS:
                raise ReadOnlyViolation(
                    f"{kind} statements are not allowed in %%lake: the lake is read-only here",
                    hint="query with SELECT; keep results with -o NAME or CREATE TEMP TABLE",
                )
            match = _DDL_TARGET.match(statement.query) or _DML_TARGET.match(statement.query)
            if match and match.group("name").strip('"').split(".")[0].lower() in ZONE_SCHEMAS:
                raise ReadOnlyViolation(
                    f"cannot change {match.group('name')}: lake tables are read-only",
                    hint="create session tables without a zone prefix, e.g. CREATE TEMP TABLE t AS ...",
                )

    def execute(self, sql: str, params: dict[str, Any] | None = None, limit: int | None = None) -> pa.Table:
        import duckdb

        tables = self.sync_views()
        self.check_read_only(sql)
        try:
            relation = self.con.sql(sql, params=params or None)
            if relation is None:
                return pa.table({})
            if limit is not None:
                relation = relation.limit(limit)
            return relation.to_arrow_table() if hasattr(relation, "to_arrow_table") else relation.fetch_arrow_table()
        except (duckdb.CatalogException, duckdb.BinderException) as exc:
            raise _explain_missing(exc, sql, tables, self.session_tables()) from None
        except (duckdb.ParserException, duckdb.ConversionException, duckdb.InvalidInputException,
                duckdb.OutOfRangeException, duckdb.TypeMismatchException, duckdb.ConstraintException,
                duckdb.NotImplementedException, duckdb.PermissionException) as exc:
            raise QueryError(_one_line(exc)) from None

    def session_tables(self) -> list[str]:
        rows = self.con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name NOT IN "
            f"({', '.join(repr(s) for s in ZONE_SCHEMAS)}) AND database_name IN ('memory', 'temp')"
        ).fetchall()
        return [r[0] for r in rows]

    def tables_in(self, sql: str) -> list[str]:
        """Catalog tables a query reads (for the freshness footer)."""
        import duckdb

        try:
            names = duckdb.get_table_names(sql, qualified=True)
        except duckdb.Error:
            return []
        found = set()
        for name in names:
            base = re.split(r"\s+as\s+", name, flags=re.IGNORECASE)[0].strip().replace('"', "")
            if base in self.snapshot.tables:
                found.add(base)
        return sorted(found)


def _view_sql(table: TableInfo) -> str:
    folder = Path(table.location)
    if not any(folder.rglob("*.parquet")):
        columns = ", ".join(
            f"CAST(NULL AS {_DUCKDB_TYPES.get(c.type, 'VARCHAR')}) AS \"{c.name}\"" for c in table.columns
        ) or "NULL AS empty"
        return f"SELECT {columns} WHERE false"
    pattern = str(folder / "**" / "*.parquet").replace("'", "''")
    return f"SELECT * FROM read_parquet('{pattern}', hive_partitioning = true, union_by_name = true)"


def _one_line(exc: Exception) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return first.split("Error: ", 1)[-1] if "Error: " in first else first


def _explain_missing(exc: Exception, sql: str, tables: dict[str, TableInfo], session: list[str]) -> QueryError:
    import difflib

    message = _one_line(exc)
    match = re.search(r"with name (\S+) does not exist", str(exc))
    if not match:
        return QueryError(message)
    missing = match.group(1).strip('"')
    qualified = re.search(rf'\b(\w+)\s*\.\s*"?{re.escape(missing)}"?\b', sql)
    if qualified:  # DuckDB names the table without its schema; say what the user wrote
        missing = f"{qualified.group(1)}.{missing}"
    names = list(tables) + session
    short = {n.split(".")[-1]: n for n in tables}
    close = difflib.get_close_matches(missing, names, n=1, cutoff=0.5) or (
        [short[missing]] if missing in short else difflib.get_close_matches(missing, list(short), n=1)
    )
    guess = close[0] if close else None
    if guess in short:
        guess = short[guess]
    hint = f"did you mean {guess}?" if guess else "%lake tables lists the tables"
    return UnknownTable(f"unknown table {missing}", hint=hint)


def open_engine(workspace, name: str | None = None, catalog: Catalog | None = None) -> QueryEngine:
    engine = query_engines.get(name or workspace.settings.query.engine)
    return engine(workspace, catalog)
