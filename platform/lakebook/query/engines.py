"""Query engines behind a registry keyed by ``query.engine`` (duckdb now, spark later).

The DuckDB engine runs in the calling process over the lake's Parquet files: one view per
catalog table (``raw.flights``), refreshed when the catalog changes. It cannot modify the
lake: statements that write files or attach databases are refused, and tables a user
creates live only in the session's in-memory database.

Views are cheap to query: ``union_by_name`` (which makes DuckDB read the schema of every
file on every query) is used only for tables whose files really have different schemas,
found from their Parquet footers, read once per file (lake files are immutable once
written); and the glob names the partition depth the files are at rather than ``**``.
Statements run with one ``execute`` (one prepare), straight to Arrow.
"""

from __future__ import annotations

import os
import re
import sqlite3
import warnings
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
_TRAILING_SEMICOLONS = re.compile(r"[\s;]+$")
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
        self._built_from: dict[str, TableInfo] = {}

    # -- catalog -> views ----------------------------------------------------------------
    def sync_views(self, force: bool = False) -> dict[str, TableInfo]:
        """Views for the catalog's tables, (re)built when the catalog has changed. A table's
        view is redefined only when its catalog entry changed (new files change its stats),
        or for every table with ``force`` (its files are looked at again)."""
        if self.snapshot.refresh() or not self._views or force:
            self._build_views(force)
        return self.snapshot.tables

    def _build_views(self, force: bool = False) -> bool:
        """True when a view's definition changed."""
        changed = False
        for name, table in self.snapshot.tables.items():
            if not force and name in self._views and self._built_from.get(name) == table:
                continue
            definition = _view_sql(table)
            if self._views.get(name) != definition:
                self.con.execute(f"CREATE OR REPLACE VIEW {name} AS {definition}")
                self._views[name] = definition
                changed = True
            self._built_from[name] = table
        return changed

    # -- running SQL ---------------------------------------------------------------------
    def check_read_only(self, sql: str) -> list:
        """Refuse statements that could change the lake; the parsed statements otherwise."""
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
        return statements

    def execute(self, sql: str, params: dict[str, Any] | None = None, limit: int | None = None) -> pa.Table:
        import duckdb

        tables = self.sync_views()
        statements = self.check_read_only(sql)
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
                duckdb.NotImplementedException, duckdb.PermissionException) as exc:
            raise QueryError(_one_line(exc)) from None

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
                cursor = self.con.execute(query, params or None)
            except duckdb.ParserException:
                if not wrapped:
                    raise
                query, wrapped = sql, False  # the statement parsed alone: run it as written, cut below
                cursor = self.con.execute(query, params or None)
            if cursor is None or cursor.description is None:  # nothing to run (empty, comments only)
                return pa.table({})
            table = cursor.to_arrow_reader().read_all()
        if limit is not None and not wrapped and table.num_rows > limit:
            table = table.slice(0, limit)
        return table

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
    files = _parquet_files(folder)
    if not files:
        columns = ", ".join(
            f"CAST(NULL AS {_DUCKDB_TYPES.get(c.type, 'VARCHAR')}) AS \"{c.name}\"" for c in table.columns
        ) or "NULL AS empty"
        return f"SELECT {columns} WHERE false"
    depths = {depth for _, depth, _ in files}
    # Files all at one depth (date=.../x.parquet: one folder down) glob with one '*' per folder,
    # which DuckDB lists faster than '**'; mixed depths keep '**'.
    levels = ["*"] * depths.pop() if len(depths) == 1 else ["**"]
    pattern = str(folder.joinpath(*levels, "*.parquet")).replace("'", "''")
    schemas = {_schema_key(path, stat) for path, _, stat in files}
    union = ", union_by_name = true" if len(schemas) > 1 or None in schemas else ""
    return f"SELECT * FROM read_parquet('{pattern}', hive_partitioning = true{union})"


def _parquet_files(folder: Path) -> list[tuple[str, int, os.stat_result]]:
    """(path, folders below ``folder``, stat) of every ``*.parquet`` file under it, as DuckDB's
    ``**`` glob finds them (hidden names included, linked folders followed once)."""
    found: list[tuple[str, int, os.stat_result]] = []
    seen: set[tuple[int, int]] = set()

    def walk(path: str, depth: int) -> None:
        try:
            with os.scandir(path) as entries:
                for entry in entries:
                    try:
                        if entry.is_dir():
                            st = entry.stat()
                            if (st.st_dev, st.st_ino) not in seen:
                                seen.add((st.st_dev, st.st_ino))
                                walk(entry.path, depth + 1)
                        elif entry.name.endswith(".parquet") and entry.is_file():
                            found.append((entry.path, depth, entry.stat()))
                    except OSError:  # gone since listed
                        continue
        except OSError:
            return

    try:
        root = folder.stat()
    except OSError:
        return found
    seen.add((root.st_dev, root.st_ino))
    walk(str(folder), 0)
    return found


# path -> (size, mtime_ns, schema key): lake files are immutable once written, so a footer is
# read once per process; size and mtime guard against a path written again.
_footer_schemas: dict[str, tuple[int, int, tuple]] = {}


def _schema_key(path: str, stat: os.stat_result) -> tuple | None:
    """Column names and types from a Parquet file's footer; None when it cannot be read."""
    cached = _footer_schemas.get(path)
    if cached is not None and cached[0] == stat.st_size and cached[1] == stat.st_mtime_ns:
        return cached[2]
    import pyarrow.parquet as pq

    try:
        schema = pq.read_metadata(path).schema.to_arrow_schema()
    except (OSError, pa.ArrowException):
        return None  # counted as a schema of its own: the view keeps union_by_name
    key = tuple((f.name, str(f.type)) for f in schema)
    _footer_schemas[path] = (stat.st_size, stat.st_mtime_ns, key)
    return key


def _without_semicolons(statement: str) -> str:
    return _TRAILING_SEMICOLONS.sub("", statement)


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
