"""The kept versions of a transform output, and rolling it back to one of them.

A rollback publishes an older version as a run does: under the transform lock, the table's
location, file manifest and a run of its own (engine ``rollback``) are committed in one
transaction, then the ``current`` link moves. That run carries the watermarks of the last run
that wrote into the version, so the next incremental run reads every input file the version
has not seen and adds its output to that version, not to the one rolled back from.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from .._proc import file_lock
from ..catalog import Catalog, ColumnInfo, RunOutput, TableInfo, open_catalog
from ..errors import TransformError
from ..lake import APPEND_ONLY_ZONES, Version, describe_files, list_versions, publish_version
from ..lake import store
from ..lake.versions import file_run_ids
from ..run_io import record

log = logging.getLogger("lakebook.transform.rollback")

ENGINE = "rollback"  # the engine of the run a rollback records


def versioned_table(catalog: Catalog, name: str) -> TableInfo:
    """A table that has versions (a transform output or a seed), by qualified or bare name."""
    if "." not in name:
        matches = [t for t in catalog.tables() if t.name == name and t.zone not in APPEND_ONLY_ZONES]
        if len(matches) == 1:
            return matches[0]
        name = f"warehouse.{name}"  # none or several: the catalog's error names the candidates
    info = catalog.table(name)
    if info.zone in APPEND_ONLY_ZONES:
        raise TransformError(f"{info.qualified_name} is append-only: it has no versions",
                             hint="transform outputs and seeds have versions")
    return info


def table_versions(workspace, catalog: Catalog, info: TableInfo) -> list[Version]:
    """The published versions kept of a table, oldest first."""
    table_dir = workspace.lake.table_dir(info.zone, info.name)
    return [v for v in list_versions(table_dir, catalog.runs(info.qualified_name), info.location) if v.published]


def kept_versions(workspace, name: str) -> list[Version]:
    """The kept versions of table ``name``, oldest first."""
    catalog = open_catalog(workspace)
    try:
        return table_versions(workspace, catalog, versioned_table(catalog, name))
    finally:
        catalog.close()


def rollback(workspace, name: str, version: str | None = None) -> Version:
    """Publish ``version`` of table ``name`` again (by default the one before the current one)."""
    catalog = open_catalog(workspace)
    try:
        with file_lock(workspace.transform_lock_path):
            info = versioned_table(catalog, name)
            if info.kind == "seed":
                raise TransformError(f"{info.qualified_name} is a seed: it follows seeds/{info.name}.csv",
                                     hint="restore that file's content; the next transform run loads it")
            kept = table_versions(workspace, catalog, info)
            target = _choose(info, kept, version)
            _publish(catalog, info, target)
    finally:
        catalog.close()
    record(writes=[info.qualified_name])
    log.info("%s rolled back to %s", info.qualified_name, target.name)
    return target


def version_name(version: str) -> str:
    """``version-000003`` however it was written: 3, 000003, version-000003 (a digest as it is)."""
    label = version.removeprefix("version-")
    return f"version-{int(label):06d}" if label.isdigit() else f"version-{label}"


def _choose(info: TableInfo, kept: list[Version], version: str | None) -> Version:
    shown = ", ".join(f"{v.name}{' (current)' if v.current else ''}" for v in kept) or "none"
    if version is None:
        current = [i for i, v in enumerate(kept) if v.current]
        if not current or current[0] == 0:
            raise TransformError(f"{info.qualified_name} has no version older than the current one to roll back to",
                                 hint=f"versions kept: {shown}")
        return kept[current[0] - 1]
    wanted = version_name(version)
    for v in kept:
        if v.name == wanted:
            return v
    raise TransformError(f"{info.qualified_name} has no version {wanted}: vacuumed, or never made",
                         hint=f"versions kept: {shown}")


def _publish(catalog: Catalog, info: TableInfo, target: Version) -> None:
    """The catalog first (location, manifest, run and watermarks in one transaction), then the link."""
    found = store.list_files(target.path) if store.is_s3(target.path) else target.path.rglob("*.parquet")
    paths = [p for p in found if not p.name.startswith(".")]
    written = describe_files(paths, info.event_time_column, datetime.now(timezone.utc))
    output = RunOutput(info.zone, info.name, info.kind, str(target.path), _columns(info, written), tuple(written),
                       replace=True, description=info.description, owner=info.owner,
                       event_time_column=info.event_time_column)
    run_id = catalog.start_run(info.qualified_name, ENGINE)
    catalog.finish_run(run_id, "ok", rows=sum(f.rows for f in written), message=f"rolled back to {target.name}",
                       watermarks=_watermarks(catalog, info, target), output=output)
    publish_version(target.path)


def _watermarks(catalog: Catalog, info: TableInfo, target: Version) -> dict[str, int]:
    """The watermarks of the last finished run that wrote into ``target``: its own full run or
    an incremental run that added files to it later."""
    wrote = file_run_ids(target.path) | ({target.run_id} if target.run_id is not None else set())
    runs = [r for r in catalog.runs(info.qualified_name)
            if r["id"] in wrote and r["status"] == "ok" and r["engine"] != ENGINE]
    if not runs:  # without watermarks the next incremental run would add every input again
        raise TransformError(f"{info.qualified_name}: the catalog knows no finished run that wrote {target.name}",
                             hint="run `lakebook transform run --full-refresh` to rebuild the table instead")
    watermarks = runs[-1]["watermarks"]
    merged = sorted(name for name, mark in watermarks.items() if catalog.merged_across(name, int(mark)))
    if merged:  # compaction planned its files around the newer runs' positions, not this version's
        raise TransformError(
            f"{info.qualified_name}: cannot roll back to {target.name}: compaction has since merged files of "
            f"{', '.join(merged)} that version had read with files it had not, so the next incremental run "
            "could not read only the new ones", hint=f"rebuild instead: lakebook transform run {info.name} --full-refresh")
    return watermarks


def _columns(info: TableInfo, written) -> tuple[ColumnInfo, ...]:
    """The version's own columns (its schema may differ from the current one's), with the
    descriptions the catalog has for them."""
    if not written:
        return info.columns
    known = {c.name: c for c in info.columns}
    columns = [ColumnInfo(f.name, str(f.type), known[f.name].description if f.name in known else "", f.nullable,
                          known[f.name].pii if f.name in known else False)
               for f in _schema(written[0].path)]
    for key in sorted({f.path.parent.name.partition("=")[0] for f in written if f.partition}):
        columns.append(known.get(key) or ColumnInfo(key, "partition", "partition column (from the folder name)"))
    return tuple(columns)


def _schema(path):
    import pyarrow.parquet as pq

    return store.read_schema(path) if store.is_s3(path) else pq.read_schema(path)
