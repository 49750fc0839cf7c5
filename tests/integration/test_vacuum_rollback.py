"""Vacuum and rollback against real transform runs (DuckDB) and the `lakebook` command in its
own process: five versions of an incremental, partitioned transform, the default policy's
three left after a vacuum and still queried, a rollback read through `lakebook query`, and an
incremental run after it that adds to the version rolled back to."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from transform_support import new_flights
from lakebook.catalog import open_catalog
from lakebook.query import LakeSession
from lakebook.transform import load_seeds, run_transforms

REPO = Path(__file__).resolve().parents[2]
TABLE = "warehouse.flights_clean"


def lakebook(ws, *args: str):
    done = subprocess.run([sys.executable, "-m", "lakebook", "-w", str(ws.root), *args],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def in_process(ws, *args: str):
    """A `lakebook` command run in this process (its output parsed as JSON)."""
    from click.testing import CliRunner

    from lakebook.cli import cli

    done = CliRunner().invoke(cli, ["-w", str(ws.root), *args], obj={}, catch_exceptions=False)
    assert done.exit_code == 0, done.output
    return json.loads(done.output)


COUNTS = f"SELECT count(*) AS n, count(DISTINCT flight_id) AS ids FROM {TABLE}"


def read(ws) -> dict:
    """What `lakebook query` reads of the table: rows and distinct flights."""
    return json.loads(lakebook(ws, "query", COUNTS, "--format", "json"))[0]


def read_here(ws) -> dict:
    """The same through the query engine in this process."""
    return LakeSession(ws).query(COUNTS).table.to_pylist()[0]


@pytest.fixture
def flights_ws(workspace):
    (workspace.root / "transforms").mkdir()
    shutil.copy(REPO / "transforms" / "flights_clean.sql", workspace.root / "transforms")
    shutil.copytree(REPO / "seeds", workspace.root / "seeds")
    new_flights(workspace, 0, 200, months=(1, 2))
    load_seeds(workspace)
    return workspace


def test_vacuum_keeps_the_policy_versions_and_a_rollback_is_queried_and_built_on(flights_ws):
    ws = flights_ws
    assert run_transforms(ws, ["flights_clean"])[0].rows == 200
    for batch in range(4):  # four more versions, each with ten more flights
        new_flights(ws, 200 + 10 * batch, 210 + 10 * batch, months=(1, 2))
        assert run_transforms(ws, ["flights_clean"], full_refresh=True)[0].rows == 210 + 10 * batch
    table_dir = ws.lake.table_dir("warehouse", "flights_clean")
    made = sorted(p.name for p in table_dir.glob("version-*"))
    assert len(made) == 5

    report = json.loads(lakebook(ws, "lake", "vacuum", "--json"))
    assert [Path(r["path"]).name for r in report["removed"]] == made[:2] and report["bytes_freed"] > 0
    assert sorted(p.name for p in table_dir.glob("version-*")) == made[2:]
    listed = in_process(ws, "transform", "versions", "flights_clean", "--json")
    assert [(v["name"], v["rows"], v["current"]) for v in listed] == [
        (made[2], 220, False), (made[3], 230, False), (made[4], 240, True)]
    assert read_here(ws) == {"n": 240, "ids": 240}

    back = in_process(ws, "transform", "rollback", TABLE, "--json")
    assert back["name"] == made[3]
    assert read(ws) == {"n": 230, "ids": 230}
    assert (table_dir / "current").resolve() == table_dir / made[3]

    new_flights(ws, 240, 250, months=(1, 2))
    after = run_transforms(ws, ["flights_clean"])[0]
    assert after.incremental and after.rows == 20  # the ten version 4 never saw, and the ten new ones
    assert read_here(ws) == {"n": 250, "ids": 250}
    catalog = open_catalog(ws)
    assert Path(catalog.table(TABLE).location) == table_dir / made[3] and catalog.table(TABLE).row_count == 250
    assert sorted(catalog.files("warehouse", "flights_clean")) == sorted(
        str(p) for p in (table_dir / made[3]).rglob("*.parquet"))
    newest = [v for v in in_process(ws, "transform", "versions", "flights_clean", "--json") if v["name"] == made[4]]
    assert newest[0]["rows"] == 240  # the version rolled back from got nothing
