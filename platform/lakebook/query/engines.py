"""Query engines, selected by ``query.engine`` (backends.py).

The DuckDB engine runs in the calling process over the lake's Parquet files. A catalog table
(``raw.flights``) is a view over its files (lake/views.py): those its manifest lists for an
append-only table (raw, quarantine, speed: compaction replaces files there, and a statement
reads either the replaced files or their replacement), else its published version's folder.
A view is made the first time a statement names it and made again when the catalog says the
table changed: a statement pays only for the tables it names. Statements run with one ``execute`` (one prepare), straight to Arrow.

It cannot change the lake, nor what a catalog name means:

- every statement is judged on DuckDB's own parse before any runs. Queries, EXPLAIN, PREPARE
  and EXECUTE, session tables and views (CREATE, INSERT, DROP, …), SET VARIABLE and the
  PRAGMAs that only describe pass; settings (SET, RESET, USE), COPY, ATTACH/DETACH,
  INSTALL/LOAD, EXPORT/IMPORT, CALL, other PRAGMAs and transaction control are refused.
  EXPLAIN and PREPARE are judged by the statement they wrap.
- the connection's configuration is locked once set up (``lock_configuration``): nothing
  can turn profiling or logging output into a file; secrets are never persisted, extensions
  never downloaded, and spill files go to the workspace's state dir.
- statements that can create, replace or drop catalog entries run in a transaction that is
  rolled back if a table, view or schema named like a zone (``raw``, ``quarantine``, …)
  changed, however the statement spelled it (``memory.raw.flights``, quoted, nested, after
  PREPARE): catalog names always mean the lake's tables.

Files outside the lake can be read (``read_csv('data.csv')``): the kernel already runs as its
user, so refusing would protect nothing and would stop joining one's own files with the lake.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

import pyarrow as pa

from ..catalog import CatalogSnapshot, TableInfo, open_catalog
from ..errors import LakebookError, QueryError, ReadOnlyViolation, UnknownTable, closest
from ..lake import APPEND_ONLY_ZONES, ZONES, folder_select, listed_select
from ..lake.store import register_with_duckdb
from .statements import READ_ONLY_HINT, SETTINGS_HINT, check_statement, quoted, spelled_names, tokens

if TYPE_CHECKING:
    from ..catalog import Catalog

# Statements that ask which tables there are (and so name none of them).
_LISTS_TABLES = re.compile(r"\b(information_schema|duckdb_(tables|views|columns)|show\s+(all\s+)?tables|"
                           r"pg_catalog|sqlite_master)\b", re.IGNORECASE)
_ZONE_LIST = ", ".join(f"'{zone}'" for zone in ZONES)
_IN_ZONES = f"(schema_name IN ({_ZONE_LIST}) OR database_name IN ({_ZONE_LIST}))"
# Every table, view and schema named like a zone, with what identifies its version.
_ZONE_ENTRIES = f"""
SELECT database_name, schema_name, view_name, view_oid, sql, comment FROM duckdb_views() WHERE NOT internal AND {_IN_ZONES}
UNION ALL SELECT database_name, schema_name, table_name, table_oid, sql, comment FROM duckdb_tables() WHERE {_IN_ZONES}
UNION ALL SELECT database_name, schema_name, NULL, oid, sql, comment FROM duckdb_schemas() WHERE {_IN_ZONES}
"""
_NESTED_IN_ZONES = f" OR parent_schema IN ({_ZONE_LIST})"  # DuckDB 2.0 nests schemas
_TRAILING_SEMICOLONS = re.compile(r"[\s;]+$")


class QueryEngine(Protocol):
    """What a query session needs of an engine: run SQL over the catalog's tables, say which
    catalog tables a statement reads, close."""

    name: str

    def execute(self, sql: str, params: dict[str, Any] | None = None, limit: int | None = None) -> pa.Table: ...
    def tables_in(self, sql: str) -> list[TableInfo]: ...
    def close(self) -> None: ...


class DuckDBEngine:
    """DuckDB in this process, over the lake's Parquet files."""

    name = "duckdb"

    def __init__(self, workspace, catalog: Catalog | None = None, config=None):
        self.workspace = workspace
        self._snapshot = CatalogSnapshot(workspace.catalog_url, workspace.lake.root, lambda: open_catalog(workspace),
                                         catalog)
        self._on_s3 = workspace.lake_on_s3
        self._con = _locked_connection(workspace, getattr(config, "threads", None))
        self._views: dict[str, str] = {}
        self._built_from: dict[str, TableInfo] = {}
        self._mixed: set[str] = set()  # tables whose files were found to differ by more than their ends show
        self._known: dict[str, str] = {}  # lower-cased catalog name -> catalog name
        self._registered = catalog is not None
        self._zone_entries: frozenset | None = None
        self._zone_entries_sql = _zone_entries_sql(self._con)
        self._defer_binding = " WITH (DEFER_BINDING)"

    # -- catalog -> views ----------------------------------------------------------------
    def _views_for(self, sql: str) -> None:
        """Make views for the catalog tables ``sql`` names, and again for those already made
        whose table changed."""
        changed = self._refresh()
        named = spelled_names(tokens(sql), self._known)
        if named.unknown and not self._registered:
            self._registered = True
            self._snapshot.catalog()  # opening it registers sources added since the catalog was written
            changed = self._refresh() or changed
            named = spelled_names(tokens(sql), self._known)
        wanted = {*named.tables, *named.quoted, *(self._built_from if changed else ())}
        if _LISTS_TABLES.search(sql):  # it names no table and asks which there are: all of them
            wanted.update(self._known.values())
        for name in wanted:
            self._build_view(name)

    def _refresh(self) -> bool:
        if not self._snapshot.refresh():
            return False
        self._known = {name.lower(): name for name in self._snapshot.tables}
        return True

    def _build_view(self, name: str, check_files: bool = False) -> bool:
        """(Re)define the view of one catalog table; True when its definition changed. A table
        whose files were once found to differ is always judged from every file."""
        table = self._snapshot.tables.get(name)
        if table is None or (not check_files and self._built_from.get(name) == table):
            return False
        check_files = check_files or name in self._mixed
        if table.zone in APPEND_ONLY_ZONES or self._on_s3:  # its manifest: compaction swaps files in the catalog,
            # in one commit; on S3 every table is read from its manifest (a version's files, not a listing)
            definition = listed_select(self._snapshot.files(table), table.columns, check_files=check_files)
        else:  # a published version: its folder holds exactly its files
            definition = folder_select(Path(table.location), table.columns, check_files=check_files)
        self._built_from[name] = table
        if self._views.get(name) == definition:
            return False
        self._create_view(f"{quoted(table.zone)}.{quoted(table.name)}", definition)
        self._views[name] = definition
        self._zone_entries = None
        return True

    def _create_view(self, name: str, definition: str) -> None:
        """A view DuckDB binds when a statement reads it, not now: binding lists the table's
        files, and the statement that reads the view lists them again."""
        import duckdb

        try:
            self._con.execute(f"CREATE OR REPLACE VIEW {name}{self._defer_binding} AS {definition}")
        except duckdb.ParserException:
            if not self._defer_binding:
                raise
            self._defer_binding = ""  # a DuckDB before 2.0: views are bound when made
            self._con.execute(f"CREATE OR REPLACE VIEW {name} AS {definition}")

    # -- the read-only guard -------------------------------------------------------------
    def check_read_only(self, sql: str) -> tuple[list, bool]:
        """DuckDB's parse of ``sql``, and whether a statement can change catalog entries;
        ReadOnlyViolation when one may not run here."""
        statements = self._parse(sql)
        changes = [check_statement(statement, self._parse) for statement in statements]
        return statements, any(changes)

    def _parse(self, sql: str) -> list:
        import duckdb

        try:
            return self._con.extract_statements(sql)
        except duckdb.Error as exc:
            raise QueryError(_one_line(exc)) from None

    def _zone_state(self) -> frozenset:
        if self._zone_entries is None:
            self._zone_entries = frozenset(self._con.execute(self._zone_entries_sql).fetchall())
        return self._zone_entries

    def _run_guarded(self, run: Callable[[], pa.Table]) -> pa.Table:
        """``run`` in a transaction, rolled back when a table, view or schema named like a zone changed."""
        before = self._zone_state()
        self._con.execute("BEGIN TRANSACTION")
        try:
            table = run()
            after = frozenset(self._con.execute(self._zone_entries_sql).fetchall())
        except BaseException:
            self._rollback()
            raise
        if after != before:
            self._rollback()
            raise ReadOnlyViolation(f"cannot change {_entry_names(before ^ after)}: lake tables are read-only",
                                    hint="create session tables and views without a zone prefix, "
                                         "e.g. CREATE TEMP TABLE t AS ...")
        self._con.execute("COMMIT")
        return table

    def _rollback(self) -> None:
        import duckdb

        try:
            self._con.execute("ROLLBACK")
        except duckdb.Error:  # nothing left to roll back
            pass

    # -- running SQL ---------------------------------------------------------------------
    def execute(self, sql: str, params: dict[str, Any] | None = None, limit: int | None = None) -> pa.Table:
        import duckdb

        statements, changes_entries = self.check_read_only(sql)
        self._views_for(sql)

        def run() -> pa.Table:
            if changes_entries:
                return self._run_guarded(lambda: self._run(sql, statements, params, limit))
            return self._run(sql, statements, params, limit)

        try:
            try:
                return run()
            except duckdb.InvalidInputException as exc:
                # A file whose schema differs from the first one: look at every file (union_by_name
                # if they differ) and run a lone statement once more.
                if len(statements) != 1 or "schema mismatch" not in str(exc) or not self._check_files():
                    raise
                return run()
        except duckdb.Error as exc:
            raise self._error(exc, sql) from None

    def _check_files(self) -> bool:
        """Define the views made so far from every file's schema; True when one changed."""
        changed = [name for name in list(self._built_from) if self._build_view(name, check_files=True)]
        self._mixed.update(changed)
        return bool(changed)

    def _error(self, exc: Exception, sql: str) -> LakebookError:
        import duckdb

        text = str(exc)
        if (unreadable := _unreadable_file(exc, self.workspace)) is not None:
            return unreadable
        if "configuration has been locked" in text:
            return ReadOnlyViolation("settings cannot be changed in %%lake", hint=SETTINGS_HINT)
        if isinstance(exc, duckdb.PermissionException):
            return ReadOnlyViolation(_one_line(exc), hint=READ_ONLY_HINT)
        if "base table" in text or "is not an table" in text:
            return QueryError(_one_line(exc), hint="lake tables and views are read-only: change a copy, "
                                                   "e.g. CREATE TEMP TABLE t AS SELECT ...")
        if isinstance(exc, (duckdb.CatalogException, duckdb.BinderException)):
            return _explain_missing(exc, sql, self._snapshot.tables, self.session_tables())
        return QueryError(_one_line(exc))

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
        try:
            cursor = self._con.execute(query, params or None)
        except duckdb.ParserException:
            if not wrapped:
                raise
            query, wrapped = sql, False  # the statement parsed alone: run it as written, cut below
            cursor = self._con.execute(query, params or None)
        if cursor is None or cursor.description is None:  # nothing to run (empty, comments only)
            return pa.table({})
        with warnings.catch_warnings():
            # DuckDB 2.0 warns that Arrow from a DB-API result copies the rows once; still cheaper
            # than the second bind of con.sql, which lists a view's files and reads footers again.
            warnings.filterwarnings("ignore", message="Arrow output on a DB-API result", category=UserWarning)
            table = cursor.to_arrow_reader().read_all()
        if limit is not None and not wrapped and table.num_rows > limit:
            table = table.slice(0, limit)
        return table

    def session_tables(self) -> list[str]:
        rows = self._con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name NOT IN "
            f"({_ZONE_LIST}) AND database_name IN ('memory', 'temp')"
        ).fetchall()
        return [r[0] for r in rows]

    def tables_in(self, sql: str) -> list[TableInfo]:
        """Catalog tables a query reads (for the freshness footer), by name."""
        named = spelled_names(tokens(sql), self._known)
        return [self._snapshot.tables[name] for name in sorted(set(named.tables))]

    def close(self) -> None:
        self._con.close()
        self._snapshot.close()


def _locked_connection(workspace, threads: int | None):
    """An in-memory connection with the zone schemas, its configuration locked: no later
    statement can change a setting."""
    import duckdb

    con = duckdb.connect(":memory:", config={
        "allow_persistent_secrets": False, "autoinstall_known_extensions": False,
        "temp_directory": str(workspace.query_spill_dir),
    })
    con.execute("SET TimeZone = 'UTC'")
    # Lake files are immutable once written: their footers can be cached across queries.
    con.execute("SET parquet_metadata_cache = true")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    for zone in ZONES:
        con.execute(f"CREATE SCHEMA {zone}")
    register_with_duckdb(con, workspace.lake.root)  # an S3 lake's files are read through pyarrow's S3 filesystem
    con.execute("SET lock_configuration = true")
    return con


def _zone_entries_sql(con) -> str:
    columns = {c[0] for c in con.execute("SELECT * FROM duckdb_schemas() LIMIT 0").description}
    return _ZONE_ENTRIES.rstrip() + (_NESTED_IN_ZONES if "parent_schema" in columns else "")


def _entry_names(entries: frozenset) -> str:
    names = {".".join(part for part in (schema, name) if part) or database for database, schema, name, *_ in entries}
    return ", ".join(sorted(names))


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
