"""Query engines, selected by ``query.engine`` (backends.py).

The DuckDB engine runs in the calling process over the lake's Parquet files: one view per
catalog table (``raw.flights``, the SQL from lake/views.py), refreshed when the catalog
changes. It cannot modify the lake: statements that write files or attach databases are
refused, and tables a user creates live only in the session's in-memory database.
Statements run with one ``execute`` (one prepare), straight to Arrow.
"""

from __future__ import annotations

import re
import sqlite3
import warnings
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from ..catalog import Catalog, TableInfo, open_catalog
from ..errors import QueryError, ReadOnlyViolation, UnknownTable, closest
from ..lake import ZONES, folder_select
_ALLOWED_STATEMENTS = {
    "SELECT", "EXPLAIN", "CREATE", "DROP", "INSERT", "UPDATE", "DELETE", "ALTER", "PRAGMA", "SET",
    "VARIABLE_SET", "TRANSACTION", "PREPARE", "EXECUTE", "ANALYZE", "RELATION",
}
_DDL_TARGET = re.compile(
    r"^\s*(create|drop|alter)\s+(or\s+replace\s+)?((temp|temporary)\s+)?"
    r"(table|view|schema|macro|sequence|index|type|function)\s+(if\s+(not\s+)?exists\s+)?(?P<name>[\w.\"]+)",
    re.IGNORECASE,
)
_TRAILING_SEMICOLONS = re.compile(r"[\s;]+$")
_DML_TARGET = re.compile(r"^\s*(insert\s+(or\s+\w+\s+)?into|update|delete\s+from)\s+(?P<name>[\w.\"]+)", re.IGNORECASE)


class QueryEngine(Protocol):
    """What a query session needs of an engine: run SQL over the catalog's tables, say which
    catalog tables a statement reads, close."""

    name: str

    def execute(self, sql: str, params: dict[str, Any] | None = None, limit: int | None = None) -> pa.Table: ...
    def tables_in(self, sql: str) -> list[TableInfo]: ...
    def close(self) -> None: ...


class _CatalogSnapshot:
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


class DuckDBEngine:
    """DuckDB in this process, over the lake's Parquet files."""

    name = "duckdb"

    def __init__(self, workspace, catalog: Catalog | None = None, config=None):
        import duckdb

        self.workspace = workspace
        self.catalog = catalog or open_catalog(workspace)
        self._snapshot = _CatalogSnapshot(self.catalog)
        self._con = duckdb.connect(":memory:")
        self._con.execute("SET TimeZone = 'UTC'")
        # Lake files are immutable once written: their footers can be cached across queries.
        self._con.execute("SET parquet_metadata_cache = true")
        threads = getattr(config, "threads", None)
        if threads:
            self._con.execute(f"SET threads = {int(threads)}")
        for schema in ZONES:
            self._con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        self._views: dict[str, str] = {}
        self._built_from: dict[str, TableInfo] = {}
        self._unreadable: dict[str, QueryError] = {}  # tables whose view cannot be made: a damaged file

    # -- catalog -> views ----------------------------------------------------------------
    def sync_views(self, force: bool = False) -> dict[str, TableInfo]:
        """Views for the catalog's tables, (re)built when the catalog has changed. A table's
        view is redefined only when its catalog entry changed (new files change its stats),
        or for every table with ``force`` (its files are looked at again)."""
        if self._snapshot.refresh() or not self._views or force:
            self._build_views(force)
        return self._snapshot.tables

    def _build_views(self, force: bool = False) -> bool:
        """True when a view's definition changed."""
        changed = False
        for name, table in self._snapshot.tables.items():
            if not force and name in self._views and self._built_from.get(name) == table:
                continue
            definition = folder_select(Path(table.location), table.columns)
            if self._views.get(name) != definition:
                if not self._create_view(name, definition):
                    continue
                self._views[name] = definition
                changed = True
            self._built_from[name] = table
        return changed

    def _create_view(self, name: str, definition: str) -> bool:
        """False if a file of the table cannot be read: then only queries of that table fail
        (with the error naming the file), and the view is made again once the catalog changes."""
        import duckdb

        try:
            self._con.execute(f"CREATE OR REPLACE VIEW {name} AS {definition}")
        except duckdb.Error as exc:
            if (error := _unreadable_file(exc, self.workspace)) is None:
                raise
            self._unreadable[name] = error
            return False
        self._unreadable.pop(name, None)
        return True

    # -- running SQL ---------------------------------------------------------------------
    def check_read_only(self, sql: str) -> list:
        """Refuse statements that could change the lake; the parsed statements otherwise."""
        import duckdb

        try:
            statements = self._con.extract_statements(sql)
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
            if match and match.group("name").strip('"').split(".")[0].lower() in ZONES:
                raise ReadOnlyViolation(
                    f"cannot change {match.group('name')}: lake tables are read-only",
                    hint="create session tables without a zone prefix, e.g. CREATE TEMP TABLE t AS ...",
                )
        return statements

    def execute(self, sql: str, params: dict[str, Any] | None = None, limit: int | None = None) -> pa.Table:
        import duckdb

        tables = self.sync_views()
        statements = self.check_read_only(sql)
        for table in self.tables_in(sql) if self._unreadable else ():
            if table.qualified_name in self._unreadable:
                raise self._unreadable[table.qualified_name]
        try:
            try:
                return self._run(sql, statements, params, limit)
            except duckdb.InvalidInputException as exc:
                # Files with a new schema written before the catalog was told about them: look at
                # the files again (union_by_name if they now differ) and run a lone statement once more.
                if len(statements) != 1 or "schema mismatch" not in str(exc) or not self._build_views(force=True):
                    raise
                return self._run(sql, statements, params, limit)
        except (duckdb.CatalogException, duckdb.BinderException) as exc:
            raise _explain_missing(exc, sql, tables, self.session_tables()) from None
        except (duckdb.ParserException, duckdb.ConversionException, duckdb.InvalidInputException,
                duckdb.OutOfRangeException, duckdb.TypeMismatchException, duckdb.ConstraintException,
                duckdb.NotImplementedException, duckdb.PermissionException, duckdb.IOException) as exc:
            raise _unreadable_file(exc, self.workspace) or QueryError(_one_line(exc)) from None

    def _run(self, sql: str, statements: list, params: dict[str, Any] | None, limit: int | None) -> pa.Table:
        """One ``execute`` (one prepare; ``con.sql(...).to_arrow_table()`` binds the statement
        twice), then Arrow. ``limit`` wraps a lone SELECT in ``SELECT * FROM (...) LIMIT n``,
        as ``relation.limit(n)`` did; other results are cut after the fact."""
        import duckdb

        if limit is not None and limit < 0:  # relation.limit(-1) meant no limit
            limit = None
        query, wrapped = sql, False
        if limit is not None and len(statements) == 1 and statements[0].type.name == "SELECT":
            body = _without_semicolons(statements[0].query)
            query, wrapped = f"SELECT * FROM (\n{body}\n) AS q LIMIT {int(limit)}", True
        with warnings.catch_warnings():
            # DuckDB 2.0 warns that Arrow from a DB-API result copies the rows once; still cheaper
            # than the second bind of con.sql, which re-reads the view's file list and footers.
            warnings.filterwarnings("ignore", message="Arrow output on a DB-API result", category=UserWarning)
            try:
                cursor = self._con.execute(query, params or None)
            except duckdb.ParserException:
                if not wrapped:
                    raise
                query, wrapped = sql, False  # the statement parsed alone: run it as written, cut below
                cursor = self._con.execute(query, params or None)
            if cursor is None or cursor.description is None:  # nothing to run (empty, comments only)
                return pa.table({})
            table = cursor.to_arrow_reader().read_all()
        if limit is not None and not wrapped and table.num_rows > limit:
            table = table.slice(0, limit)
        return table

    def session_tables(self) -> list[str]:
        rows = self._con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name NOT IN "
            f"({', '.join(repr(s) for s in ZONES)}) AND database_name IN ('memory', 'temp')"
        ).fetchall()
        return [r[0] for r in rows]

    def tables_in(self, sql: str) -> list[TableInfo]:
        """Catalog tables a query reads (for the freshness footer), by name."""
        import duckdb

        try:
            names = duckdb.get_table_names(sql, qualified=True)
        except duckdb.Error:
            return []
        found = set()
        for name in names:
            base = re.split(r"\s+as\s+", name, flags=re.IGNORECASE)[0].strip().replace('"', "")
            if base in self._snapshot.tables:
                found.add(base)
        return [self._snapshot.tables[name] for name in sorted(found)]

    def close(self) -> None:
        self._con.close()


def _without_semicolons(statement: str) -> str:
    return _TRAILING_SEMICOLONS.sub("", statement)


def _one_line(exc: Exception) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return first.split("Error: ", 1)[-1] if "Error: " in first else first


# What DuckDB says of a Parquet file it cannot read (truncated, overwritten, not Parquet at all).
_UNREADABLE = re.compile(r"(no magic bytes found|too small to be a parquet file|deserialize|corrupt)", re.IGNORECASE)
_QUOTED_PARQUET = re.compile(r"'([^']+\.parquet)'")


def _unreadable_file(exc: Exception, workspace) -> QueryError | None:
    """A QueryError naming the lake file (and its table) DuckDB could not read, and what to do;
    None for any other error."""
    text = _one_line(exc)
    path = _QUOTED_PARQUET.search(text)
    if path is None or not _UNREADABLE.search(text):
        return None
    table = workspace.lake.table_of(path.group(1))
    detail = text.replace(f" {path.group(0)}", "")  # the path is named once
    return QueryError(f"{'.'.join(table) + ': ' if table else ''}cannot read the lake file {path.group(1)} ({detail})",
                      hint="`lakebook doctor` checks the lake's files; `lakebook doctor --fix` sets a damaged one "
                           "aside so the rest of the table can be queried")


def _explain_missing(exc: Exception, sql: str, tables: dict[str, TableInfo], session: list[str]) -> QueryError:
    message = _one_line(exc)
    match = re.search(r"with name (\S+) does not exist", str(exc))
    if not match:
        return QueryError(message)
    missing = match.group(1).strip('"')
    qualified = re.search(rf'\b(\w+)\s*\.\s*"?{re.escape(missing)}"?\b', sql)
    if qualified:  # DuckDB names the table without its schema; say what the user wrote
        missing = f"{qualified.group(1)}.{missing}"
    short = {n.split(".")[-1]: n for n in tables}
    guess = closest(missing, list(tables) + session, cutoff=0.5) or (
        short[missing] if missing in short else closest(missing, list(short)))
    if guess in short:
        guess = short[guess]
    hint = f"did you mean {guess}?" if guess else "%lake tables lists the tables"
    return UnknownTable(f"unknown table {missing}", hint=hint)


def open_engine(workspace, name: str | None = None, catalog: Catalog | None = None) -> QueryEngine:
    """The query engine ``name`` (default: ``query.engine``), with the workspace's settings for it."""
    from ..backends import query_engines

    configured = workspace.settings.query.engine
    config = configured if name in (None, configured.type) else query_engines.config(name)
    return query_engines.load(config.type)(workspace, catalog, config)
