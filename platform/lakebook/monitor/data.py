"""Check kinds over the lake's data, measured from the catalog (its tables' stats and file
manifest) and, for a column's nulls, DuckDB over the recent files: nothing here needs the
ingest server or any other service running.

Windows are over when files were added to the catalog (a flush, a transform's run): the
lake's own clock, not the events' (the example replays 2013's flights today).
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..catalog import open_catalog
from ..catalog.info import stored_path
from ..catalog.store import FileRow, TableRow, _parse
from ..errors import MonitorDefinitionError, did_you_mean
from ..lake.store import register_with_duckdb
from .engine import format_seconds
from .measure import Measurement


def freshness(workspace, check, now: datetime) -> Measurement:
    """Seconds since the table's newest data: by ingest time (when it reached the lake; a
    built table: when its newest file was added) or, with ``by: event``, by event time."""
    table = check.args[0]
    by_event = check.options.get("by") == "event"
    with _catalog(workspace) as catalog:
        info = catalog.table(table)
        newest = info.last_event_time if by_event else info.last_ingest_time or _newest_file(catalog, table)
    labels = {"table": table}
    what = "event" if by_event else "data"
    if newest is None:
        return Measurement(None, "s", f"{table} has no {what} yet", labels)
    age = (now - newest).total_seconds()
    return Measurement(age, "s", f"newest {what} {format_seconds(age)} ago ({newest:%Y-%m-%d %H:%M:%S} UTC)", labels)


def row_count(workspace, check, now: datetime) -> Measurement:
    table = check.args[0]
    with _catalog(workspace) as catalog:
        rows = catalog.table(table).row_count
    return Measurement(float(rows), "rows", f"{table} holds {rows:,} rows", {"table": table})


def volume_change(workspace, check, now: datetime) -> Measurement:
    """Rows added in the last ``window`` vs the mean rows per window over the ``baseline``
    before it, in percent (-100: nothing came). The baseline is what the lake has of it: a
    lake younger than one window before this one has no baseline yet (unknown)."""
    table, window, baseline = check.args[0], check.options["window"], check.options["baseline"]
    start = now - timedelta(seconds=window)
    labels = {"table": table}
    with _catalog(workspace) as catalog:
        catalog.table(table)
        recent = _rows_added(catalog, table, start, now)
        first = _first_file(catalog, table)
        base_start = max(start - timedelta(seconds=baseline), first) if first else None
        past = _rows_added(catalog, table, base_start, start) if base_start else 0
    span = (start - base_start).total_seconds() if base_start else 0
    if span < window:
        return Measurement(None, "%", f"{table}: less than one window ({format_seconds(window)}) of history before "
                                      f"the last one", labels)
    mean = past * window / span
    if mean == 0:
        return Measurement(None, "%", f"{table}: no rows in the baseline ({format_seconds(span)}); "
                                      f"{recent:,} in the last {format_seconds(window)}", labels)
    change = (recent - mean) / mean * 100
    return Measurement(change, "%", f"{recent:,} rows in the last {format_seconds(window)} vs {mean:,.0f} on average "
                                    f"over {format_seconds(span)}", labels)


def reject_rate(workspace, check, now: datetime) -> Measurement:
    """Quarantined / (accepted + quarantined) events of a source flushed in the last ``window``."""
    source, window = check.args[0], check.options["window"]
    start = now - timedelta(seconds=window)
    labels = {"source": source, "table": f"raw.{source}"}
    with _catalog(workspace) as catalog:
        _known_source(catalog, source)
        accepted = _rows_added(catalog, f"raw.{source}", start, now)
        rejected = _rows_added(catalog, f"quarantine.{source}", start, now)
    total = accepted + rejected
    if total == 0:
        return Measurement(None, "%", f"no {source} events in the last {format_seconds(window)}", labels)
    return Measurement(rejected / total * 100, "%", f"{rejected:,} of {total:,} {source} events rejected in the last "
                                                    f"{format_seconds(window)}", labels)


def missing_share(workspace, check, now: datetime) -> Measurement:
    """Nulls in a column, in percent of the rows of the files added in the last ``window``."""
    import duckdb

    table, column = check.args
    window = check.options["window"]
    labels = {"table": table, "column": column}
    with _catalog(workspace) as catalog:
        info = catalog.table(table)
        columns = [c.name for c in info.columns]
        if column not in columns:
            guess = did_you_mean(column, columns)
            raise MonitorDefinitionError(f"{table} has no column {column!r}",
                                         hint=guess or f"its columns: {', '.join(columns)}")
        files = _files_added(catalog, table, now - timedelta(seconds=window), now)
    if not files:
        return Measurement(None, "%", f"no {table} files added in the last {format_seconds(window)}", labels)
    quoted = '"' + column.replace('"', '""') + '"'
    with duckdb.connect() as con:
        register_with_duckdb(con, workspace.lake.root)  # the files of an S3 lake are read through pyarrow
        rows, present = con.execute(f"SELECT count(*), count({quoted}) FROM read_parquet(?, union_by_name = true)",
                                    [files]).fetchone()
    if rows == 0:
        return Measurement(None, "%", f"no {table} rows in the last {format_seconds(window)}", labels)
    missing = rows - present
    return Measurement(missing / rows * 100, "%", f"{missing:,} of {rows:,} rows without {column} "
                                                  f"(last {format_seconds(window)})", labels)


def schema_change(workspace, check, now: datetime) -> Measurement:
    """Columns added, dropped or retyped within ``window``, against the schema the check saw
    before (kept between evaluations); the first evaluation only records it."""
    from .state import MonitorStore

    table, window = check.args[0], check.options["window"]
    with _catalog(workspace) as catalog:
        schema = {c.name: c.type for c in catalog.table(table).columns}
    with MonitorStore(workspace) as store:
        memory = store.memory(check.name)
        changes = [c for c in memory.get("changes", [])
                   if datetime.fromisoformat(c["at"]) > now - timedelta(seconds=window)]
        seen = memory.get("schema")
        if seen is not None and seen != schema:
            changes.append({"at": now.isoformat(), "what": describe_schema_change(seen, schema)})
        store.remember(check.name, {"schema": schema, "changes": changes}, now)
    labels = {"table": table}
    if not changes:
        return Measurement(0.0, "changes", f"{table}: {len(schema)} columns, unchanged", labels)
    return Measurement(float(len(changes)), "changes", f"{table}: {changes[-1]['what']} (at {changes[-1]['at'][:19]})",
                       labels)


def describe_schema_change(before: dict[str, str], after: dict[str, str]) -> str:
    """``added x (int64); dropped y; z int32 -> string``."""
    parts = [f"added {n} ({t})" for n, t in after.items() if n not in before]
    parts += [f"dropped {n}" for n in before if n not in after]
    parts += [f"{n} {before[n]} -> {t}" for n, t in after.items() if n in before and before[n] != t]
    return "; ".join(parts) or "columns reordered"


# -- the catalog's side -----------------------------------------------------------------------------
@contextmanager
def _catalog(workspace):
    """The workspace's catalog for one measurement (the contracts' tables registered), closed after."""
    catalog = open_catalog(workspace)
    try:
        yield catalog
    finally:
        catalog.close()


def _known_source(catalog, source: str) -> None:
    catalog.table(f"raw.{source}")  # UnknownTable, with a suggestion, for a source with no contract


def _table_filter(table: str):
    zone, _, name = table.partition(".")
    return (TableRow.zone == zone) & (TableRow.name == name)


def _rows_added(catalog, table: str, start: datetime, end: datetime) -> int:
    """Rows of the files added in [start, end), as they were written: a file compaction replaced
    still counts (its manifest row stays), the compacted file does not (its rows came earlier)."""
    with Session(catalog.engine) as session:
        return int(session.scalar(select(func.coalesce(func.sum(FileRow.rows), 0))
                                  .join(TableRow, FileRow.table_id == TableRow.id)
                                  .where(_table_filter(table), FileRow.first_id.is_(None), FileRow.added_at >= start,
                                         FileRow.added_at < end)) or 0)


def _files_added(catalog, table: str, start: datetime, end: datetime) -> list[str]:
    """The live files added in [start, end): a compacted file counts as added when the newest
    file it replaced was (it also holds the older ones' rows)."""
    with Session(catalog.engine) as session:
        paths = session.scalars(select(FileRow.path).join(TableRow, FileRow.table_id == TableRow.id)
                                .where(_table_filter(table), FileRow.removed_at.is_(None), FileRow.added_at >= start,
                                       FileRow.added_at < end)
                                .order_by(FileRow.id))
        return [stored_path(catalog.root, p) for p in paths]


def _first_file(catalog, table: str) -> datetime | None:
    return _file_time(catalog, table, func.min)


def _newest_file(catalog, table: str) -> datetime | None:
    return _file_time(catalog, table, func.max)


def _file_time(catalog, table: str, aggregate) -> datetime | None:
    with Session(catalog.engine) as session:
        return _parse(session.scalar(select(aggregate(FileRow.added_at)).join(TableRow, FileRow.table_id == TableRow.id)
                                     .where(_table_filter(table))))
