"""`lakebook doctor` on a real lake (issue 20, item 4): a truncated Parquet file makes the
query error name the file and suggest doctor; doctor reports it; `--fix` sets it aside and
the rest of the table is queryable again. Also the ingest log's check and files the
catalog and the disk disagree on."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from events import flight, log_events
from lakebook.catalog import open_catalog
from lakebook.cli import cli
from lakebook.errors import QueryError
from lakebook.ingest import flush_ingest_log_to_raw
from lakebook.query import LakeSession


def doctor(workspace, *args):
    return CliRunner().invoke(cli, ["-w", str(workspace.root), "doctor", *args], obj={}, catch_exceptions=False)


@pytest.fixture
def lake(workspace):
    """Two days of flights in the raw lake: one file per day."""
    log_events(workspace, "flights", [flight(i) for i in range(300)])  # 7 minutes apart: 2013-01-01 and -02
    flush_ingest_log_to_raw(workspace)
    return workspace


def count(workspace, session=None, table: str = "raw.flights") -> int:
    session = session or LakeSession(workspace)
    return session.query(f"SELECT count(*) AS n FROM {table}").arrow().column("n")[0].as_py()


def test_a_truncated_file_is_named_reported_and_set_aside_so_the_rest_stays_queryable(lake):
    files = open_catalog(lake).files("raw", "flights")
    before = LakeSession(lake)  # its views were made while every file could be read
    assert len(files) == 2 and count(lake, before) == 300
    victim = Path(files[1])
    lost = pq.read_metadata(victim).num_rows
    with open(victim, "r+b") as handle:
        handle.truncate(victim.stat().st_size // 2)
    damaged_bytes = victim.read_bytes()

    for session in (before, LakeSession(lake)):  # a view made before, and one that cannot be made now
        with pytest.raises(QueryError) as info:
            count(lake, session)
        assert str(victim) in info.value.message and info.value.message.startswith("raw.flights: cannot read")
        assert "lakebook doctor --fix" in info.value.hint
        assert count(lake, session, "raw.weather") == 0  # other tables are not affected

    checked = doctor(lake)
    assert checked.exit_code == 1, checked.output
    assert f"damaged file: raw.flights {victim}: its footer cannot be read" in checked.output
    assert "`lakebook doctor --fix` fixes damaged and missing files" in checked.output
    doc = json.loads(doctor(lake, "--json").output)
    assert doc["ok"] is False and [(p["kind"], p["path"], p["fixed"]) for p in doc["problems"]] == [
        ("damaged file", str(victim), False)]
    assert victim.read_bytes() == damaged_bytes  # checking changes nothing

    fixed = doctor(lake, "--fix")
    assert fixed.exit_code == 0, fixed.output
    aside = lake.lake.root / "_damaged" / victim.relative_to(lake.lake.root)
    assert f"moved to {aside}; {lost:,} catalogued rows left raw.flights" in fixed.output
    assert not victim.exists() and aside.read_bytes() == damaged_bytes  # set aside, not deleted
    assert count(lake) == 300 - lost
    assert open_catalog(lake).table("raw.flights").row_count == 300 - lost
    assert doctor(lake).output.splitlines()[-1] == "no problems found"


def test_files_missing_on_disk_or_unknown_to_the_catalog_are_reported(lake):
    first, second = open_catalog(lake).files("raw", "flights")
    stray = Path(second).parent / "part-stray.parquet"
    os.replace(second, stray)  # the catalogued path is gone; a file it does not know is there
    doc = json.loads(doctor(lake, "--json").output)
    assert sorted((p["kind"], p["path"]) for p in doc["problems"]) == [("missing file", second), ("unknown file", str(stray))]
    fixed = json.loads(doctor(lake, "--fix", "--json").output)
    kinds = {p["kind"]: p for p in fixed["problems"]}
    assert kinds["missing file"]["fixed"] and not kinds["unknown file"]["fixed"] and fixed["ok"] is False
    assert stray.exists() and open_catalog(lake).files("raw", "flights") == [first]


def test_a_damaged_ingest_log_is_reported_with_what_to_do(lake):
    log_events(lake, "flights", [flight(i) for i in range(300, 310)])
    path = lake.ingest_log_path
    assert doctor(lake).exit_code == 0
    data = bytearray(path.read_bytes())
    data[4096:8192] = b"\xff" * 4096  # the second page: a b-tree page of the log's tables
    path.write_bytes(bytes(data))
    checked = doctor(lake)
    assert checked.exit_code == 1
    assert f"ingest log: DAMAGED ({path})" in checked.output
    assert f"damaged log: {path}: " in checked.output and "keep a copy of the file" in checked.output


def test_a_missing_table_folder_is_reported_and_its_catalog_entries_kept(lake):
    import shutil

    folder = lake.lake.table_dir("raw", "flights")
    shutil.move(folder, folder.with_name("flights.elsewhere"))  # as if its disk were not mounted
    doc = json.loads(doctor(lake, "--fix", "--json").output)
    assert [(p["kind"], p["path"], p["fixed"]) for p in doc["problems"]] == [("missing folder", str(folder), False)]
    assert len(open_catalog(lake).files("raw", "flights")) == 2
