"""Run transforms in dependency order and publish their outputs atomically.

A full run writes a new version folder (``<zone>/<name>/version-<run id>/``) and then points the
catalog at it: until that moment readers see the previous version, and a failed run
leaves it untouched (the half-written folder is removed). An incremental run reads only
the input files that arrived since its last successful run (the catalog remembers which)
and adds its output files to the current version.
"""

from __future__ import annotations

import graphlib
import logging
import time
from datetime import datetime, timezone
from dataclasses import dataclass
from pathlib import Path

from ..catalog import Catalog, ColumnInfo, open_catalog
from ..errors import TransformError, did_you_mean
from ..lake import describe_files, discard, publish_version
from .definitions import Transform, discover
from .engines import open_transform_engine

log = logging.getLogger("lakebook.transform.runner")


@dataclass
class TransformResult:
    name: str
    status: str  # ok | skipped
    engine: str
    rows: int = 0
    files: int = 0
    seconds: float = 0.0
    incremental: bool = False
    note: str = ""


def plan(transforms: dict[str, Transform], names: list[str] | None = None) -> list[Transform]:
    """The transforms to run, upstream first. Names may be qualified or bare."""
    graph = {q: [i for i in t.inputs if i in transforms] for q, t in transforms.items()}
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        raise TransformError(f"transforms depend on each other in a cycle: {' -> '.join(exc.args[1])}") from None
    if not names:
        return [transforms[q] for q in order]
    wanted = set()
    for name in names:
        matches = [q for q in transforms if q == name or q.split(".")[-1] == name]
        if not matches:
            raise TransformError(f"no transform named {name!r}",
                                 hint=did_you_mean(name, [q.split(".")[-1] for q in transforms])
                                 or "lakebook transform list shows them")
        wanted.update(matches)
    return [transforms[q] for q in order if q in wanted]


def run_transforms(workspace, names: list[str] | None = None, *, engine: str | None = None,
                   full_refresh: bool = False, on_start=None) -> list[TransformResult]:
    """Run the named transforms (all if none), each on its engine, in dependency order."""
    catalog = open_catalog(workspace)
    transforms = discover(workspace.transforms_dir)
    results = []
    engines: dict[str, object] = {}
    try:
        for t in plan(transforms, names):
            if on_start:
                on_start(t)
            chosen = "spark" if t.kind == "python" else (engine or t.engine or workspace.settings.batch.engine.type)
            if chosen not in engines:
                engines[chosen] = open_transform_engine(workspace, chosen)
            results.append(_run_one(workspace, catalog, t, engines[chosen], full_refresh))
    finally:
        for e in engines.values():
            e.close()
    return results


def _input_files(catalog: Catalog, t: Transform, watermarks: dict[str, int]) -> dict[str, list[tuple[int, str]]]:
    known = {table.qualified_name for table in catalog.tables()}
    files = {}
    for name in t.inputs:
        if name not in known:
            raise TransformError(f"{t.where()}: unknown input table {name}",
                                 hint=did_you_mean(name, sorted(known), quote=False) or "lakebook catalog list shows the tables")
        zone, _, table = name.partition(".")
        files[name] = catalog.file_entries(zone, table, after_id=watermarks.get(name, 0))
    return files


def _run_one(workspace, catalog: Catalog, t: Transform, engine, full_refresh: bool) -> TransformResult:
    started = time.perf_counter()
    last = catalog.last_run(t.qualified_name)
    exists = any(x.qualified_name == t.qualified_name for x in catalog.tables(t.zone))
    incremental = t.mode == "incremental" and not full_refresh and last is not None and exists
    previous = last["watermarks"] if incremental else {}
    inputs = _input_files(catalog, t, previous)
    watermarks = {name: max([previous.get(name, 0)] + [i for i, _ in entries]) for name, entries in inputs.items()}
    if incremental and not any(inputs.values()):
        return TransformResult(t.qualified_name, "skipped", engine.name, incremental=True, note="no new input files")
    run_id = catalog.start_run(t.qualified_name, engine.name)
    published = Path(catalog.table(t.qualified_name).location) if exists else None
    folder = published if incremental else workspace.lake.version_dir(t.zone, t.name, run_id)
    stem = f"run-{run_id:06d}"
    try:
        for name in t.inputs:
            engine.bind(catalog.table(name), [path for _, path in inputs[name]])
        paths = engine.run(t, folder, stem)
        written = describe_files(paths, t.event_time, datetime.now(timezone.utc))
        _publish(catalog, t, folder, written, incremental)
    except BaseException as exc:
        if not incremental:
            discard(folder)
        catalog.finish_run(run_id, "failed", message=str(exc))
        raise
    rows = sum(f.rows for f in written)
    catalog.finish_run(run_id, "ok", rows=rows, watermarks=watermarks)
    if not incremental:
        publish_version(folder, replaced=published)
    log.info("%s: %d rows in %d files (%s)", t.qualified_name, rows, len(written), engine.name)
    return TransformResult(t.qualified_name, "ok", engine.name, rows, len(written),
                           round(time.perf_counter() - started, 3), incremental)


def _publish(catalog: Catalog, t: Transform, folder: Path, written, incremental: bool) -> None:
    schema = _output_schema(written, folder)
    columns = [ColumnInfo(f.name, str(f.type), "", f.nullable) for f in schema]
    if t.partition_by and t.partition_by not in schema.names:
        columns.append(ColumnInfo(t.partition_by, "partition", "partition column (from the folder name)"))
    catalog.register_table(t.zone, t.name, kind="transform" if t.zone == "warehouse" else "features",
                           location=str(folder), columns=columns, description=t.description, owner=t.owner,
                           event_time_column=t.event_time)
    if incremental:
        catalog.record_files(t.zone, t.name, written)
    else:
        catalog.replace_files(t.zone, t.name, str(folder), written)
    catalog.set_lineage(t.qualified_name, t.job, _column_lineage(t, catalog))


def _output_schema(written, folder: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    if written:
        return pq.read_schema(written[0].path)
    return pa.schema([])


def _column_lineage(t: Transform, catalog: Catalog) -> dict[str, dict[str, list[str]]]:
    """{upstream table: {output column: [upstream columns]}}; columns where sqlglot can tell."""
    edges: dict[str, dict[str, list[str]]] = {name: {} for name in t.inputs}
    if t.kind != "sql":
        return edges
    try:
        import sqlglot
        from sqlglot.lineage import lineage

        schema = {}
        for name in t.inputs:
            zone, _, table = name.partition(".")
            schema.setdefault(zone, {})[table] = {c.name: "VARCHAR" for c in catalog.table(name).columns}
        tree = sqlglot.parse_one(t.sql, read="duckdb")
        outputs = [s.alias_or_name for s in tree.selects] if hasattr(tree, "selects") else []
        for column in outputs:
            if column == "*":
                continue
            node = lineage(column, tree, schema=schema, dialect="duckdb")
            for leaf in node.walk():
                if leaf.downstream or not hasattr(leaf.source, "db"):
                    continue
                upstream = f"{leaf.source.db}.{leaf.source.name}"
                if upstream in edges:
                    edges[upstream].setdefault(column, []).append(leaf.name.split(".")[-1])
    except Exception as exc:  # lineage is best effort; table-level edges stand without it
        log.debug("column lineage of %s unavailable: %s", t.qualified_name, exc)
    return edges

