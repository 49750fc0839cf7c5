"""Run transforms in dependency order and publish their outputs atomically.

A full run writes a new version folder (``<zone>/<name>/version-<run id>/``) and then points the
catalog at it: until that moment readers see the previous version, and a failed run
leaves it untouched (the half-written folder is removed). Versions replaced stay until
vacuum (lake/vacuum.py) removes those the retention policy does not keep; a rollback
(rollback.py) publishes one of them again. An incremental run reads only
the files of its append-only inputs (raw, quarantine) that arrived since its last successful
run (the catalog remembers which), and the whole of its other inputs (reference and
warehouse tables, replaced by version), and adds its output files to the current version.

The catalog is the truth about what is published. A run's files, its status and its
watermarks (the input files it consumed) are committed in one transaction; an incremental
run writes into a staging folder, moves its files (named by run id) into the published
version, then commits. A run that fails removes what it wrote; one that was killed leaves
files the manifest does not list, and the next run of the workspace removes them before it
reads its inputs, so the rerun adds each row once. Runs of a workspace take turns (a lock)
so that clean-up never touches the files of a live run.
"""

from __future__ import annotations

import graphlib
import logging
import time
from datetime import datetime, timezone
from dataclasses import dataclass
from pathlib import Path

from ..catalog import Catalog, ColumnInfo, RunOutput, open_catalog
from ..errors import TransformError, did_you_mean
from .._proc import file_lock
from ..lake import APPEND_ONLY_ZONES, describe_files, discard, list_versions, move_files, publish_version, remove_unlisted
from ..lake.store import as_lake_path, is_s3, read_schema
from ..run_io import record
from .definitions import Transform, discover
from .engines import open_transform_engine

log = logging.getLogger("lakebook.transform.runner")

_RUN_FILES = "run-*.parquet"  # every output file is named after its run (see _file_stem)


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
        with file_lock(workspace.transform_lock_path):
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
    """The files to read of each input: past its watermark, or all of them."""
    known = {table.qualified_name for table in catalog.tables()}
    files = {}
    for name in t.inputs:
        if name not in known:
            raise TransformError(f"{t.where()}: unknown input table {name}",
                                 hint=did_you_mean(name, sorted(known), quote=False) or "lakebook catalog list shows the tables")
        zone, _, table = name.partition(".")
        files[name] = catalog.file_entries(zone, table, after_id=watermarks.get(name, 0))
    return files


def _appended(t: Transform) -> list[str]:
    """The inputs an incremental run reads only the new files of."""
    return [name for name in t.inputs if name.partition(".")[0] in APPEND_ONLY_ZONES]


def _run_one(workspace, catalog: Catalog, t: Transform, engine, full_refresh: bool) -> TransformResult:
    started = time.perf_counter()
    exists = any(x.qualified_name == t.qualified_name for x in catalog.tables(t.zone))
    published = as_lake_path(catalog.table(t.qualified_name).location) if exists else None
    _discard_uncommitted(workspace, catalog, t, published)
    incremental, inputs, watermarks = _plan(catalog, t, exists and not full_refresh)
    if incremental and not any(inputs[name] for name in watermarks):
        return TransformResult(t.qualified_name, "skipped", engine.name, incremental=True, note="no new input files")
    run_id = catalog.start_run(t.qualified_name, engine.name)
    stem = _file_stem(run_id)
    # S3 has no rename: there an incremental run writes its run-named files straight into the
    # published version, where no reader sees them until the catalog lists them (on S3 every
    # reader follows the catalog's manifest; a killed run's files are removed as unlisted).
    staged = incremental and not workspace.lake_on_s3
    if incremental:
        folder = workspace.lake.staging(published, stem) if staged else published
    else:
        folder = workspace.lake.version_dir(t.zone, t.name, run_id)
    try:
        for name in t.inputs:
            engine.bind(catalog.table(name), [path for _, path in inputs[name]])
        paths = engine.run(t, folder, stem)
        if staged:
            paths = move_files(paths, folder, published)
        written = describe_files(paths, t.event_time, datetime.now(timezone.utc))
        catalog.set_lineage(t.qualified_name, t.job, _column_lineage(t, catalog))
        rows = sum(f.rows for f in written)
        output = _output(t, published if incremental else folder, written, replace=not incremental)
        catalog.finish_run(run_id, "ok", rows=rows, watermarks=watermarks, output=output)
    except BaseException as exc:
        if folder != published:
            discard(folder)
        _discard_uncommitted(workspace, catalog, t, published)
        catalog.finish_run(run_id, "failed", message=str(exc))
        raise
    if staged:
        discard(folder)
    elif not incremental:
        publish_version(folder)
    record(reads=t.inputs, writes=[t.qualified_name])
    log.info("%s: %d rows in %d files (%s)", t.qualified_name, rows, len(written), engine.name)
    return TransformResult(t.qualified_name, "ok", engine.name, rows, len(written),
                           round(time.perf_counter() - started, 3), incremental)


def _plan(catalog: Catalog, t: Transform, may_add: bool) -> tuple[bool, dict[str, list[tuple[int, str]]], dict[str, int]]:
    """Whether the run is incremental (``may_add``: the table exists and no full refresh was
    asked), the files to read of each input, and the watermarks the run records: the newest
    file of each append-only input."""
    last, appended = catalog.last_run(t.qualified_name), _appended(t)
    incremental = t.mode == "incremental" and bool(appended) and may_add and last is not None
    previous = {name: last["watermarks"].get(name, 0) for name in appended} if incremental else {}
    inputs = _input_files(catalog, t, previous)
    watermarks = {name: max([previous.get(name, 0)] + [i for i, _ in inputs[name]]) for name in appended}
    return incremental, inputs, watermarks


def _file_stem(run_id: int) -> str:
    return f"run-{run_id:06d}"


def _discard_uncommitted(workspace, catalog: Catalog, t: Transform, published: Path | None) -> None:
    """Remove what runs of ``t`` that did not commit left behind: staging folders, version
    folders of full runs that never published, and files moved into the published version
    that its manifest does not list."""
    for folder in workspace.lake.stagings(t.zone, t.name):
        discard(folder)
    table_dir = workspace.lake.table_dir(t.zone, t.name)
    for version in list_versions(table_dir, catalog.runs(t.qualified_name), published, stats=False):
        if not version.published and not version.current:
            discard(version.path)
    if published is not None:
        removed = remove_unlisted(published, _RUN_FILES, catalog.files(t.zone, t.name))
        if removed:
            log.warning("%s: removed %d files of a run that did not commit", t.qualified_name, len(removed))


def _output(t: Transform, location: Path, written, replace: bool) -> RunOutput:
    schema = _output_schema(written)
    columns = [ColumnInfo(f.name, str(f.type), "", f.nullable) for f in schema]
    if t.partition_by and t.partition_by not in schema.names:
        columns.append(ColumnInfo(t.partition_by, "partition", "partition column (from the folder name)"))
    return RunOutput(t.zone, t.name, kind="transform" if t.zone == "warehouse" else "features",
                     location=str(location), columns=tuple(columns), files=tuple(written), replace=replace,
                     description=t.description, owner=t.owner, event_time_column=t.event_time)


def _output_schema(written):
    import pyarrow as pa
    import pyarrow.parquet as pq

    if written:
        path = written[0].path
        return read_schema(path) if is_s3(path) else pq.read_schema(path)
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

