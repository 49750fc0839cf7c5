"""The rows a feature definition reads, computed from raw events.

A definition's input is a raw table (a contract's events, as the bus delivers them) or a
table an SQL transform makes from exactly one raw table, row by row: no GROUP BY, no
aggregate outside a window, no DISTINCT, and windows only over one event's copies
(``PARTITION BY _event_id``, as a deduplication is written). Such a transform gives, for a set
of events, exactly its rows for those events, so the speed layer applies it to each
micro-batch as the batch layer applies it to the lake. Its other inputs (reference and
warehouse tables) are read from their published version at every micro-batch.

Every row carries ``__event_id``, the raw event's id, so windows count each event once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pyarrow as pa

from ..errors import FeatureStoreError, UnknownTable
from ..features.windows import FeatureDefinition
from ..lake import APPEND_ONLY_ZONES, listed_select
from ..lake.store import is_s3, register_with_duckdb

log = logging.getLogger("lakebook.stream")
EVENT_ID = "__event_id"
_EVENTS = "__lakebook_events"


@dataclass(frozen=True)
class InputPlan:
    """Where a definition's rows come from: the raw ``source``, the SQL of its input relation
    over ``raw.<source>`` (exposing ``__event_id``), and the other tables that SQL reads."""

    source: str
    relation: str
    tables: tuple[str, ...]
    job: str  # how lineage names what turns the source's events into the input


def plan_input(workspace, definition: FeatureDefinition) -> InputPlan:
    zone, _, name = definition.input.partition(".")
    if zone == "raw":
        return InputPlan(name, f'(SELECT *, _event_id AS {EVENT_ID} FROM raw."{name}")', (), "raw")
    from ..transform import discover

    made = discover(workspace.transforms_dir).get(definition.input)
    if made is None or made.kind != "sql":
        raise _not_per_event(definition, "it is not made by an SQL transform")
    raw = [t for t in made.inputs if t.partition(".")[0] in APPEND_ONLY_ZONES]
    if len(raw) != 1 or not raw[0].startswith("raw."):
        raise _not_per_event(definition, f"{made.where()} must read exactly one raw table (it reads {', '.join(raw) or 'none'})")
    relation = f"({_with_event_id(definition, made.sql, raw[0])})"
    return InputPlan(raw[0].partition(".")[2], relation, tuple(t for t in made.inputs if t != raw[0]), made.job)


def _not_per_event(definition: FeatureDefinition, why: str) -> FeatureStoreError:
    return FeatureStoreError(
        f"{definition.name}: the stream cannot compute its input {definition.input} event by event: {why}",
        hint="give the definition a raw table, or a table an SQL transform makes row by row from one raw table")


def _with_event_id(definition: FeatureDefinition, sql: str, raw_table: str) -> str:
    """The transform's SQL, checked to work row by row, with the raw event's id added."""
    import sqlglot
    from sqlglot import exp

    tree = sqlglot.parse_one(sql, read="duckdb")
    if not isinstance(tree, exp.Select):
        raise _not_per_event(definition, "its SQL is not one SELECT")
    why = _why_not_row_by_row(tree)
    if why:
        raise _not_per_event(definition, why)
    alias = _alias_reading(tree, raw_table)
    if alias is None:
        raise _not_per_event(definition, f"{raw_table} is not in its FROM clause")
    return tree.select(exp.column("_event_id", table=alias).as_(EVENT_ID), copy=True).sql(dialect="duckdb")


def _why_not_row_by_row(tree) -> str | None:
    from sqlglot import exp

    for select in tree.find_all(exp.Select):
        if select.args.get("group") or select.args.get("distinct"):
            return "it groups or deduplicates rows (GROUP BY, DISTINCT)"
    if any(agg.find_ancestor(exp.Window) is None for agg in tree.find_all(exp.AggFunc)):
        return "it aggregates rows"
    for window in tree.find_all(exp.Window):
        keys = window.args.get("partition_by") or []
        if not keys or any(not isinstance(k, exp.Column) or k.name != "_event_id" for k in keys):
            return "a window function reaches beyond one event's copies (PARTITION BY _event_id)"
    return None


def _alias_reading(tree, raw_table: str) -> str | None:
    """The alias, in the outer FROM and JOINs, of the source that reads ``raw_table``."""
    from sqlglot import exp

    start = tree.args.get("from_") or tree.args.get("from")
    sources = [start.this] if start is not None else []
    sources += [join.this for join in tree.args.get("joins") or []]
    for source in sources:
        tables = [source] if isinstance(source, exp.Table) else list(source.find_all(exp.Table))
        if any(f"{t.db}.{t.name}" == raw_table for t in tables):
            return source.alias_or_name
    return None


class InputRows:
    """A DuckDB connection that turns events (or the lake) into a definition's rows."""

    def __init__(self, workspace, definition: FeatureDefinition, plan: InputPlan | None = None):
        import duckdb

        self.definition, self.workspace = definition, workspace
        self.plan = plan or plan_input(workspace, definition)
        self.con = duckdb.connect(config={"threads": 1})
        self.con.execute("SET TimeZone = 'UTC'")
        register_with_duckdb(self.con, workspace.lake.root)  # an S3 lake's files are read through pyarrow
        self.con.execute("CREATE SCHEMA raw")
        self._catalog = None
        self._listed: dict[str, list[str]] = {}  # on an S3 lake: table -> the files its view reads
        for table in self.plan.tables:
            self._bind_published(table)
        self._sql = definition.rows_sql(self.plan.relation, extra=(EVENT_ID,))

    def _bind_published(self, table: str) -> None:
        """A view over the table's published version, found again at every query."""
        zone, _, name = table.partition(".")
        self.con.execute(f'CREATE SCHEMA IF NOT EXISTS "{zone}"')
        if is_s3(self.workspace.lake.root):
            self._bind_listed(table)
            return
        folder = self.workspace.lake.current(zone, name)
        if not folder.exists():
            raise self._unpublished(table)
        self.con.execute(f'CREATE VIEW "{zone}"."{name}" AS SELECT * FROM read_parquet('
                         f"'{str(folder).replace(chr(39), chr(39) * 2)}/**/*.parquet', hive_partitioning = true)")

    def _bind_listed(self, table: str) -> None:
        """On an S3 lake a published version has no stable path (no ``current`` link): the view
        reads the files the catalog lists for the table, looked up again before every query
        and replaced when another version is published."""
        zone, _, name = table.partition(".")
        catalog = self._opened_catalog()
        try:
            files = catalog.files(zone, name)
            if files == self._listed.get(table):
                return
            columns = catalog.table(table).columns
        except UnknownTable:
            raise self._unpublished(table) from None
        self.con.execute(f'CREATE OR REPLACE VIEW "{zone}"."{name}" AS {listed_select(files, columns)}')
        self._listed[table] = files

    def _opened_catalog(self):
        if self._catalog is None:
            from ..catalog import open_catalog

            self._catalog = open_catalog(self.workspace, register=False)
        return self._catalog

    def _unpublished(self, table: str) -> FeatureStoreError:
        return FeatureStoreError(f"{self.definition.name}: its input reads {table}, which has no published version",
                                 hint="run 'lakebook transform run' (it loads the seeds) first")

    def bind_events(self, events: pa.Table) -> None:
        """Read the source's events from this table (the bus's columns: the contract's,
        ``_event_id``, ``_ingested_at``)."""
        self.con.register(_EVENTS, events)
        self._bind_source(f"SELECT * FROM {_EVENTS}")

    def bind_lake(self, catalog) -> None:
        """Read every event of the source the lake holds."""
        table = catalog.table(f"raw.{self.plan.source}")
        self._bind_source(listed_select(catalog.files("raw", self.plan.source), table.columns))

    def _bind_source(self, select: str) -> None:
        for table in self._listed:
            self._bind_listed(table)
        self.con.execute(f'CREATE OR REPLACE VIEW raw."{self.plan.source}" AS {select}')

    def rows(self) -> pa.Table:
        """The definition's rows of the bound events."""
        return self.con.sql(self._sql).to_arrow_table()

    def table(self) -> pa.Table:
        """The features table of the bound events, as the batch layer builds it."""
        return self.con.sql(self.definition.table_sql(self.plan.relation)).to_arrow_table()

    def from_events(self, events: pa.Table) -> pa.Table:
        self.bind_events(events)
        return self.rows()

    def row_schema(self, events_schema: pa.Schema) -> pa.Schema:
        """The columns of the rows of events with ``events_schema``."""
        return self.from_events(events_schema.empty_table()).schema

    def close(self) -> None:
        self.con.close()
        if self._catalog is not None:
            self._catalog.close()
