"""Compaction and vacuum on an S3 lake (``lake.root: s3://bucket/lake``) against a real local
S3 server (moto's standalone server, tests/s3_support.py): many small flushes into the bucket
compacted into one file with the same rows, the originals deleted once their grace period is
over, versions of DuckDB transforms beyond the retention policy and old quarantine partitions
removed, through the API, the CLI and the ingest service's maintenance rounds."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from events import flight, log_events, weather
from ingest_support import flush, make_workspace
from s3_support import s3, s3_env  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
FLUSHES, PER_FLUSH = 10, 6
ROWS = FLUSHES * PER_FLUSH
DAY = "date=2013-01-01"
ANSWER = ("SELECT count(*) AS n, count(DISTINCT _event_id) AS ids, sum(flight) AS flights, min(sched_dep_at) AS first, "
          "max(sched_dep_at) AS last FROM raw.flights")


def s3_workspace(s3, root: Path, lake_options: str = "") -> tuple[Path, str]:
    """A workspace whose lake is ``s3://<a fresh bucket>/lake``; ``lake_options``: more of the
    ``lake:`` section (indented by four spaces)."""
    bucket = s3.create_bucket(f"lake-{uuid.uuid4().hex[:12]}")
    make_workspace(root, f"name: s3maint\nlake:\n  root: s3://{bucket}/lake\n{lake_options}")
    return root, bucket


COMPACTION = "  compaction:\n    min_files: 4\n    grace_s: 600\n"


@pytest.fixture
def small_files(s3, s3_env, tmp_path) -> tuple[Path, str]:
    """An S3 lake whose raw.flights holds FLUSHES small files of one day, one per flush."""
    root, bucket = s3_workspace(s3, tmp_path / "ws", COMPACTION)
    ws = load(root)
    for k in range(FLUSHES):
        assert not log_events(ws, "flights", [flight(k * PER_FLUSH + i) for i in range(PER_FLUSH)])["rejected"]
        assert flush(root).events == PER_FLUSH
    assert len(raw_keys(s3, bucket)) == FLUSHES
    return root, bucket


def load(root: Path, **env):
    from lakebook.workspace import Workspace

    return Workspace.load(root, environ={**os.environ, **env}) if env else Workspace.load(root)


def raw_keys(s3, bucket: str) -> list[str]:
    return sorted(k for k in s3.keys(bucket, f"lake/raw/flights/{DAY}/") if k.endswith(".parquet"))


def query(ws, sql: str = ANSWER) -> list[dict]:
    from lakebook.query import LakeSession

    return LakeSession(ws).query(sql).table.to_pylist()


def catalog_files(ws, zone: str = "raw", name: str = "flights") -> list[str]:
    from lakebook.catalog import open_catalog

    catalog = open_catalog(ws)
    try:
        return catalog.files(zone, name)
    finally:
        catalog.close()


def lakebook(root: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lakebook", *args], cwd=root, capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


# -- compaction ---------------------------------------------------------------------------------
def test_compaction_on_s3_rewrites_the_small_files_into_one_with_the_same_rows(s3, small_files):
    from lakebook.ingest import compact_lake
    from lakebook.lake.compaction import remove_replaced
    from lakebook.catalog import open_catalog

    root, bucket = small_files
    ws = load(root)
    before, originals = query(ws), raw_keys(s3, bucket)
    assert before[0]["n"] == before[0]["ids"] == ROWS
    seen: dict[str, list[dict]] = {}

    def on_step(step: str) -> None:  # a query between the steps of the commit sees every row once
        seen[step] = query(ws, "SELECT count(*) AS n, count(DISTINCT _event_id) AS ids FROM raw.flights")

    report = compact_lake(ws, on_step=on_step)
    assert seen == {"written": [{"n": ROWS, "ids": ROWS}], "committed": [{"n": ROWS, "ids": ROWS}]}
    [part] = report.partitions
    assert (part.table, part.partition, part.replaced, part.rows, len(part.written)) == ("raw.flights", DAY, FLUSHES,
                                                                                      ROWS, 1)
    compacted = part.written[0]
    assert compacted.startswith(f"s3://{bucket}/lake/raw/flights/{DAY}/compact-") and report.removed == []
    assert catalog_files(ws) == [compacted]
    assert query(ws) == before
    # the originals stay in the bucket for grace_s (a query that listed them just before still reads them)
    assert raw_keys(s3, bucket) == sorted([*originals, compacted.split(f"s3://{bucket}/")[1]])
    assert compact_lake(ws).partitions == []  # one file left: nothing to compact

    # a compacted key no commit lists (a compaction killed before its commit): an orphan once older than grace_s
    orphan = f"lake/raw/flights/{DAY}/compact-000000000001-000000000002-deadbeef.parquet"
    s3.client().put_object(Bucket=bucket, Key=orphan, Body=b"not committed")
    catalog = open_catalog(ws)
    try:
        assert remove_replaced(ws, catalog, grace_s=600) == []  # young: kept
        removed = remove_replaced(ws, catalog, grace_s=0)
    finally:
        catalog.close()
    assert sorted(removed) == sorted([f"s3://{bucket}/{k}" for k in originals] + [f"s3://{bucket}/{orphan}"])
    assert raw_keys(s3, bucket) == [compacted.split(f"s3://{bucket}/")[1]]
    assert query(ws) == before
    assert catalog_files(ws) == [compacted]


class Stopped(Exception):
    """A compaction stopped at a step of its commit (tests/integration/test_compaction_crash.py
    kills the process there on a local lake)."""


def test_a_compaction_stopped_before_its_commit_on_s3_loses_nothing_and_its_key_goes_after_grace(s3, small_files):
    from lakebook.catalog import open_catalog
    from lakebook.ingest import compact_lake
    from lakebook.lake.compaction import remove_replaced

    root, bucket = small_files
    ws = load(root)
    before, originals, listed = query(ws), raw_keys(s3, bucket), catalog_files(ws)

    def stop_at_written(step: str) -> None:
        if step == "written":
            raise Stopped(step)

    with pytest.raises(Stopped):
        compact_lake(ws, on_step=stop_at_written)
    [orphan] = sorted(set(raw_keys(s3, bucket)) - set(originals))  # written, never committed: no reader lists it
    assert "/compact-" in orphan and catalog_files(ws) == listed and query(ws) == before
    catalog = open_catalog(ws)
    try:
        assert remove_replaced(ws, catalog, grace_s=600) == []  # young: it could be another host's, in flight
        assert remove_replaced(ws, catalog, grace_s=0) == [f"s3://{bucket}/{orphan}"]
    finally:
        catalog.close()
    assert raw_keys(s3, bucket) == originals
    assert compact_lake(ws).partitions[0].replaced == FLUSHES and query(ws) == before


def test_lakebook_lake_compact_json_on_an_s3_workspace(s3, small_files):
    root, bucket = small_files
    before = lakebook(root, "query", ANSWER, "--format", "json")
    assert before.returncode == 0, before.stderr
    assert json.loads(before.stdout)[0]["n"] == ROWS

    done = lakebook(root, "lake", "compact", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert [(p["table"], p["partition"], p["replaced"], p["rows"]) for p in doc["partitions"]] == [
        ("raw.flights", DAY, FLUSHES, ROWS)]
    assert doc["removed"] == [] and len(raw_keys(s3, bucket)) == FLUSHES + 1
    after = lakebook(root, "query", ANSWER, "--format", "json")
    assert after.returncode == 0 and after.stdout == before.stdout, after.stderr  # the same answer from one file

    # past the grace period (here: none) the next pass deletes the originals
    again = lakebook(root, "lake", "compact", "--json", env={"LAKEBOOK_LAKE__COMPACTION__GRACE_S": "0"})
    assert again.returncode == 0, again.stderr
    doc = json.loads(again.stdout)
    assert doc["partitions"] == [] and len(doc["removed"]) == FLUSHES
    assert [k.rsplit("/", 1)[1][:8] for k in raw_keys(s3, bucket)] == ["compact-"]
    assert lakebook(root, "query", ANSWER, "--format", "json").stdout == before.stdout


def test_the_ingest_services_compaction_rounds_compact_an_s3_lake(s3, small_files):
    from lakebook.ingest import open_ingest_log
    from lakebook.ingest.maintenance import run_compactions

    root, bucket = small_files
    ws = load(root, LAKEBOOK_LAKE__COMPACTION__INTERVAL_S="0.2")
    before = query(ws)
    ingest_log, stop = open_ingest_log(ws), threading.Event()
    rounds = threading.Thread(target=run_compactions, args=(ws, ingest_log, stop), daemon=True)
    rounds.start()
    try:
        deadline = time.monotonic() + 60
        while len(catalog_files(ws)) > 1 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        stop.set()
        rounds.join(timeout=60)
        ingest_log.close()
    assert not rounds.is_alive()
    [compacted] = catalog_files(ws)
    assert "/compact-" in compacted and query(ws) == before


# -- vacuum -----------------------------------------------------------------------------------
RETENTION = "  retention:\n    versions: 2\n    quarantine_days: 30\n    raw_days: 30\n"
RAW_PARTITIONS = [("partition", "raw.flights", DAY), ("partition", "raw.weather", DAY),
                  ("partition", "raw.weather", "date=2013-01-02")]  # of 2013: older than 30 days


@pytest.fixture
def versions_ws(s3, s3_env, tmp_path) -> tuple[Path, str]:
    """An S3 lake with four versions of warehouse.weather_hourly (a full DuckDB transform: every
    run is a new version), raw partitions of 2013 and a quarantine partition of today, and a
    policy keeping two versions and 30 days of raw and quarantine."""
    from lakebook.transform import run_transforms

    root, bucket = s3_workspace(s3, tmp_path / "ws", RETENTION)
    (root / "transforms").mkdir()
    shutil.copy(REPO / "transforms" / "weather_hourly.sql", root / "transforms")
    ws = load(root)
    log_events(ws, "weather", [weather(i) for i in range(30)])
    log_events(ws, "flights", [flight(0), flight(1, carrier=None)])
    report = flush(root)
    assert report.events == 31 and report.rejected == 1
    for _ in range(4):
        assert [r.status for r in run_transforms(ws, ["weather_hourly"])] == ["ok"]
    return root, bucket


def version_keys(s3, bucket: str) -> list[str]:
    return sorted({k.split("/")[3] for k in s3.keys(bucket, "lake/warehouse/weather_hourly/")
                   if k.split("/")[3].startswith("version-") and k.endswith(".parquet")})


def test_vacuum_on_s3_removes_the_versions_and_partitions_beyond_the_policy(s3, versions_ws):
    from lakebook.catalog import open_catalog
    from lakebook.lake.vacuum import vacuum
    from lakebook.transform import kept_versions

    root, bucket = versions_ws
    ws = load(root)
    made = version_keys(s3, bucket)
    assert len(made) == 4 and [v.name for v in kept_versions(ws, "weather_hourly")] == made
    answer = query(ws, "SELECT * FROM warehouse.weather_hourly ORDER BY ALL")
    assert len(answer) > 0 and query(ws, "SELECT count(*) AS n FROM quarantine.flights") == [{"n": 1}]
    keys = sorted(s3.keys(bucket))

    later = datetime.now(timezone.utc) + timedelta(days=31)  # the quarantine partition (today's) is old by then
    today = datetime.now(timezone.utc).date().isoformat()
    catalog = open_catalog(ws)
    try:
        dry = vacuum(ws, catalog, dry_run=True, now=later)
        assert sorted(s3.keys(bucket)) == keys  # a dry run removes nothing
        assert [(r.kind, r.table, r.path.rsplit("/", 1)[1]) for r in dry.removed] == [
            ("version", "warehouse.weather_hourly", made[0]), ("version", "warehouse.weather_hourly", made[1]),
            ("partition", "quarantine.flights", f"date={today}"), *RAW_PARTITIONS]
        assert all(r.files == 1 and r.bytes > 0 for r in dry.removed)
        assert [r.catalog_files for r in dry.removed] == [0, 0, 1, 1, 1, 1]
        assert catalog.files("quarantine", "flights") and catalog.files("raw", "weather")

        done = vacuum(ws, catalog, now=later)
        assert [(r.kind, r.path) for r in done.removed] == [(r.kind, r.path) for r in dry.removed]
        assert done.bytes_freed == dry.bytes_freed > 0
        assert catalog.files("quarantine", "flights") == catalog.files("raw", "weather") == []
    finally:
        catalog.close()
    assert version_keys(s3, bucket) == made[2:]
    assert [v.name for v in kept_versions(ws, "weather_hourly")] == made[2:]
    assert not any(k.startswith(("lake/quarantine/", "lake/raw/")) and k.endswith(".parquet") for k in s3.keys(bucket))
    assert not any(k.startswith(f"lake/warehouse/weather_hourly/{v}") for v in made[:2] for k in s3.keys(bucket))
    assert not [k for k in s3.keys(bucket, "lake/_vacuum/") if not k.endswith("/")]  # no marker left
    assert query(ws, "SELECT * FROM warehouse.weather_hourly ORDER BY ALL") == answer
    assert query(ws, "SELECT count(*) AS n FROM quarantine.flights") == [{"n": 0}]
    assert query(ws, "SELECT count(*) AS n FROM raw.weather") == [{"n": 0}]

    catalog = open_catalog(ws)
    try:
        assert vacuum(ws, catalog, now=later).removed == []  # again: nothing more
    finally:
        catalog.close()


def test_a_version_a_crashed_vacuum_marked_is_not_listed_and_the_next_vacuum_finishes_it(s3, versions_ws):
    from lakebook.catalog import open_catalog
    from lakebook.lake import store
    from lakebook.lake.vacuum import vacuum
    from lakebook.transform import kept_versions

    root, bucket = versions_ws
    ws = load(root)
    made = version_keys(s3, bucket)
    # a vacuum killed after it marked the oldest version and deleted none of its keys
    store.write_bytes(b"", ws.lake.trash(ws.lake.table_dir("warehouse", "weather_hourly") / made[0]))
    assert [v.name for v in kept_versions(ws, "weather_hourly")] == made[1:]  # no rollback to it
    catalog = open_catalog(ws)
    try:
        report = vacuum(ws, catalog)
    finally:
        catalog.close()
    assert [(r.kind, r.table, r.path.rsplit("/", 1)[1]) for r in report.removed] == [
        ("leftover", "warehouse.weather_hourly", made[0]), ("version", "warehouse.weather_hourly", made[1]),
        *RAW_PARTITIONS]
    assert version_keys(s3, bucket) == made[2:]
    assert not [k for k in s3.keys(bucket, "lake/_vacuum/") if not k.endswith("/")]


def test_lakebook_lake_vacuum_json_on_an_s3_workspace(s3, versions_ws):
    root, bucket = versions_ws
    made = version_keys(s3, bucket)
    keys = sorted(s3.keys(bucket))
    shown = lakebook(root, "lake", "vacuum", "--dry-run", env={"COLUMNS": "200"})
    assert shown.returncode == 0 and "5 folders to remove" in shown.stdout, shown.stderr
    assert f"warehouse/weather_hourly/{made[0]}" in shown.stdout and "s3://" not in shown.stdout  # under the root
    dry = lakebook(root, "lake", "vacuum", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    doc = json.loads(dry.stdout)
    assert doc["dry_run"] is True and doc["busy"] == [] and doc["bytes_freed"] > 0
    assert [(r["kind"], r["path"]) for r in doc["removed"]] == [
        ("version", f"s3://{bucket}/lake/warehouse/weather_hourly/{made[0]}"),
        ("version", f"s3://{bucket}/lake/warehouse/weather_hourly/{made[1]}"),
        *[(kind, f"s3://{bucket}/lake/{table.replace('.', '/')}/{day}") for kind, table, day in RAW_PARTITIONS]]
    assert sorted(s3.keys(bucket)) == keys

    done = lakebook(root, "lake", "vacuum", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {**doc, "dry_run": False}
    assert version_keys(s3, bucket) == made[2:]
    table = lakebook(root, "lake", "vacuum")  # the table form: nothing more to remove
    assert table.returncode == 0 and "0 folders removed" in table.stdout, table.stderr


def test_the_ingest_services_vacuum_rounds_vacuum_an_s3_lake(s3, versions_ws):
    from lakebook.ingest import maintenance

    root, bucket = versions_ws
    ws = load(root)
    made = version_keys(s3, bucket)
    object.__setattr__(ws.settings.lake.retention, "interval_s", 0.2)  # below the setting's minimum (60 s)
    stop = threading.Event()
    rounds = threading.Thread(target=maintenance.run_vacuums, args=(ws, stop), daemon=True)
    rounds.start()
    try:
        deadline = time.monotonic() + 60
        while version_keys(s3, bucket) != made[2:] and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        stop.set()
        rounds.join(timeout=60)
    assert not rounds.is_alive() and version_keys(s3, bucket) == made[2:]
