"""Vacuum and rollback on DuckDB: which versions and partitions the retention policy removes,
that the published version never goes, dry runs, idempotence and a vacuum that crashed
mid-way; rollback's pointer, manifest and refusals."""

from __future__ import annotations

import importlib
import shutil
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest

from events import log_events, weather
from lakebook._proc import file_lock
from lakebook.catalog import open_catalog
from lakebook.config import RetentionSettings
from lakebook.errors import ConfigError, TransformError
from lakebook.ingest import flush_ingest_log_to_raw
from lakebook.lake import Version, maintenance, vacuum
from lakebook.lake.vacuum import expired_partitions, expired_versions
from lakebook.query import LakeSession
from lakebook.transform import kept_versions, rollback, run_transforms
from lakebook.workspace import Workspace

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 6, 30, 12, 0, tzinfo=timezone.utc)


def policy_ws(ws, retention: str):
    """``ws`` again, with ``lake.retention`` as YAML lines (indented under it)."""
    (ws.root / "lakebook.yaml").write_text(f"name: test\nlake:\n  retention:\n{retention}")
    return Workspace.load(ws.root)


@pytest.fixture
def weather_ws(workspace):
    """Thirty weather hours in raw and the hourly-weather transform (mode full: every run is
    a new version), with a policy of two versions kept."""
    (workspace.root / "transforms").mkdir()
    shutil.copy(REPO / "transforms" / "weather_hourly.sql", workspace.root / "transforms")
    log_events(workspace, "weather", [weather(i) for i in range(30)])
    flush_ingest_log_to_raw(workspace)
    return policy_ws(workspace, "    versions: 2\n")


def runs(ws, n: int) -> list[str]:
    """Run the hourly-weather transform ``n`` times; the version folders, oldest first."""
    for _ in range(n):
        run_transforms(ws, ["weather_hourly"])
    return [v.name for v in kept_versions(ws, "weather_hourly")]


def on_disk(ws, zone: str = "warehouse", name: str = "weather_hourly") -> list[str]:
    return sorted(p.name for p in ws.lake.table_dir(zone, name).iterdir())


def count(ws, table: str = "warehouse.weather_hourly") -> int:
    return LakeSession(ws).query(f"SELECT count(*) AS n FROM {table}").table.column(0)[0].as_py()


def version(name: str, days_old: float, *, published: bool = True, current: bool = False) -> Version:
    return Version(name, Path(name), None, NOW - timedelta(days=days_old), published, current, 0, 0, 0)


def test_the_policy_keeps_the_newest_versions_the_young_ones_and_the_current_one():
    kept = [version("version-000001", 30, current=True), version("version-000002", 20),
            version("version-000003", 9), version("version-000004", 5), version("version-000005", 1),
            version("version-000006", 0.1, published=False)]
    names = lambda vs: [v.name for v in vs]  # noqa: E731
    assert names(expired_versions(kept, 2, None, NOW)) == ["version-000002", "version-000003", "version-000006"]
    assert names(expired_versions(kept, 2, 10, NOW)) == ["version-000002", "version-000006"]
    assert names(expired_versions(kept, 10, None, NOW)) == ["version-000006"]  # a dead run's folder always goes
    assert names(expired_versions(kept, 1, None, NOW)) == ["version-000002", "version-000003", "version-000004",
                                                          "version-000006"]


def test_the_policy_removes_date_partitions_older_than_its_days(tmp_path):
    for day in ("2026-06-01", "2026-06-19", "2026-06-20", "2026-06-29"):
        (tmp_path / f"date={day}").mkdir()
    (tmp_path / "date=garbage").mkdir()
    assert [p.name for p in expired_partitions(tmp_path, 10, date(2026, 6, 30))] == ["date=2026-06-01",
                                                                                     "date=2026-06-19"]
    assert expired_partitions(tmp_path / "missing", 10, date(2026, 6, 30)) == []


def test_nonsense_retention_is_refused(workspace):
    for bad in ("    versions: 0\n", "    raw_days: 0\n", "    quarantine_days: -3\n", "    ages: 3\n"):
        with pytest.raises(ConfigError):
            policy_ws(workspace, bad)
    assert RetentionSettings().model_dump() == {"versions": 3, "version_days": None, "quarantine_days": None,
                                                "raw_days": None, "interval_s": 3600.0}


def test_vacuum_removes_the_versions_beyond_the_policy_once_and_a_dry_run_removes_nothing(weather_ws):
    made = runs(weather_ws, 4)
    assert len(made) == 4 and on_disk(weather_ws) == ["current", *made]  # a run no longer removes old versions
    catalog = open_catalog(weather_ws)
    dry = vacuum(weather_ws, catalog, dry_run=True)
    assert [(r.kind, Path(r.path).name) for r in dry.removed] == [("version", made[0]), ("version", made[1])]
    assert dry.bytes_freed > 0 and on_disk(weather_ws) == ["current", *made]
    done = vacuum(weather_ws, catalog)
    assert done.as_dict()["removed"] == dry.as_dict()["removed"] and not done.dry_run
    assert on_disk(weather_ws) == ["current", *made[2:]] and count(weather_ws) == 30
    assert vacuum(weather_ws, catalog).removed == []  # idempotent


def test_rollback_points_the_link_and_the_catalog_at_the_previous_version(weather_ws):
    made = runs(weather_ws, 3)
    catalog = open_catalog(weather_ws)
    table_dir = weather_ws.lake.table_dir("warehouse", "weather_hourly")
    back = rollback(weather_ws, "weather_hourly")
    assert back.name == made[1] and back.rows == 30
    info = catalog.table("warehouse.weather_hourly")
    assert Path(info.location) == table_dir / made[1] == (table_dir / "current").resolve()
    assert catalog.files("warehouse", "weather_hourly") == sorted(str(p) for p in (table_dir / made[1]).rglob("*.parquet"))
    assert info.row_count == 30 and count(weather_ws) == 30
    assert catalog.last_run("warehouse.weather_hourly")["engine"] == "rollback"
    assert [v.current for v in kept_versions(weather_ws, "warehouse.weather_hourly")] == [False, True, False]
    assert rollback(weather_ws, "weather_hourly", made[0].removeprefix("version-").lstrip("0")).name == made[0]
    assert vacuum(weather_ws, catalog).removed == []  # the current (oldest) and the newest two are kept
    runs(weather_ws, 1)
    assert [Path(r.path).name for r in vacuum(weather_ws, catalog).removed] == [made[0], made[1]]


def test_rollback_refuses_a_vacuumed_or_unknown_version_naming_those_kept(weather_ws):
    made = runs(weather_ws, 3)
    vacuum(weather_ws, open_catalog(weather_ws))
    with pytest.raises(TransformError) as info:
        rollback(weather_ws, "warehouse.weather_hourly", made[0])
    assert info.value.message == f"warehouse.weather_hourly has no version {made[0]}: vacuumed, or never made"
    assert info.value.hint == f"versions kept: {made[1]}, {made[2]} (current)"
    with pytest.raises(TransformError, match="no version version-000999"):
        rollback(weather_ws, "weather_hourly", "999")
    rollback(weather_ws, "weather_hourly")
    with pytest.raises(TransformError, match="no version older than the current one"):
        rollback(weather_ws, "weather_hourly")
    with pytest.raises(TransformError, match="raw.weather is append-only"):
        rollback(weather_ws, "raw.weather")


def test_vacuum_removes_what_dead_runs_left_but_waits_for_a_running_transform(weather_ws):
    made = runs(weather_ws, 1)
    catalog = open_catalog(weather_ws)
    table_dir = weather_ws.lake.table_dir("warehouse", "weather_hourly")
    dead = catalog.start_run("warehouse.weather_hourly", "duckdb")  # killed: never finished
    (table_dir / f"version-{dead:06d}").mkdir()
    (table_dir / f"version-{dead:06d}" / "run-x.parquet").write_bytes(b"half")
    (table_dir / ".current.run-000099.tmp").mkdir()
    with file_lock(weather_ws.transform_lock_path):  # a transform runs: nothing of its is touched
        busy = maintenance(weather_ws, catalog)  # the periodic round: it waits for no lock
    assert busy.removed == [] and busy.busy == ["versions (a transform is running)"]
    assert len(on_disk(weather_ws)) == 4
    done = vacuum(weather_ws, catalog)
    assert sorted((r.kind, Path(r.path).name) for r in done.removed) == [
        ("staging", ".current.run-000099.tmp"), ("version", f"version-{dead:06d}")]
    assert on_disk(weather_ws) == ["current", *made] and count(weather_ws) == 30


def test_old_quarantine_and_raw_partitions_go_with_their_catalog_rows(workspace):
    log_events(workspace, "weather", [weather(i) for i in range(0, 72, 2)] + [weather(1, origin="BOS"), "junk"])
    flush_ingest_log_to_raw(workspace)
    ws = policy_ws(workspace, "    quarantine_days: 7\n    raw_days: 30\n")
    catalog = open_catalog(ws)
    assert on_disk(ws, "raw", "weather") == ["date=2013-01-01", "date=2013-01-02", "date=2013-01-03", "date=2013-01-04"]
    assert vacuum(ws, catalog, now=datetime(2013, 1, 31, tzinfo=timezone.utc)).removed == []  # quarantine is today's
    report = vacuum(ws, catalog, now=datetime(2013, 2, 1, 12, tzinfo=timezone.utc))
    assert [(r.kind, r.table, Path(r.path).name, r.catalog_files) for r in report.removed] == [
        ("partition", "raw.weather", "date=2013-01-01", 1)]
    assert on_disk(ws, "raw", "weather") == ["date=2013-01-02", "date=2013-01-03", "date=2013-01-04"]
    assert count(ws, "raw.weather") == 36 - 7 and catalog.table("raw.weather").row_count == 29
    assert count(ws, "quarantine.weather") == 2
    later = datetime.now(timezone.utc) + timedelta(days=8)
    report = vacuum(ws, catalog, now=later)
    assert {r.table for r in report.removed} == {"raw.weather", "quarantine.weather"}
    assert count(ws, "quarantine.weather") == 0 and catalog.files("quarantine", "weather") == []
    assert count(ws, "raw.weather") == 0 and vacuum(ws, catalog, now=later).removed == []


def test_a_vacuum_that_crashed_midway_leaves_a_consistent_table_and_the_next_one_finishes(workspace, monkeypatch):
    log_events(workspace, "weather", [weather(i) for i in range(0, 72, 2)])
    flush_ingest_log_to_raw(workspace)
    ws = policy_ws(workspace, "    raw_days: 30\n")
    catalog = open_catalog(ws)

    def crash(path, *args, **kwargs):
        raise OSError("killed")

    monkeypatch.setattr(importlib.import_module("lakebook.lake.vacuum"), "shutil", SimpleNamespace(rmtree=crash))
    with pytest.raises(OSError, match="killed"):
        vacuum(ws, catalog, now=datetime(2013, 2, 2, 12, tzinfo=timezone.utc))
    assert catalog.table("raw.weather").row_count == 36 - 7 - 12  # the catalog went first, in one step
    assert count(ws, "raw.weather") == 36 - 7 - 12  # queries read the catalog's manifest: as it says
    assert on_disk(ws, "raw", "weather") == ["date=2013-01-02", "date=2013-01-03", "date=2013-01-04"]
    monkeypatch.undo()
    report = vacuum(ws, catalog, now=datetime(2013, 2, 2, 12, tzinfo=timezone.utc))
    assert [(r.kind, Path(r.path).name) for r in report.removed] == [
        ("leftover", "date=2013-01-01"), ("partition", "date=2013-01-02")]
    assert on_disk(ws, "raw", "weather") == ["date=2013-01-03", "date=2013-01-04"] and count(ws, "raw.weather") == 17
    assert not list(ws.lake.trash_dir.rglob("*.parquet"))


def test_the_vacuum_versions_and_rollback_commands(weather_ws, capsys, monkeypatch):
    from click.testing import CliRunner

    from lakebook.cli import cli, main

    def run(*args):
        done = CliRunner(env={"COLUMNS": "200"}).invoke(cli, ["-w", str(weather_ws.root), *args], obj={},
                                                        catch_exceptions=False)
        assert done.exit_code == 0, done.output
        return done.output

    made = runs(weather_ws, 3)
    listed = run("transform", "versions", "weather_hourly")
    assert [line.split()[1] for line in listed.splitlines() if "version-" in line] == made
    assert "current" in next(line for line in listed.splitlines() if made[2] in line)
    dry = run("lake", "vacuum", "--dry-run")
    assert f"warehouse/weather_hourly/{made[0]}" in dry and "1 folders to remove, would free" in dry
    assert "1 folders removed, freed" in run("lake", "vacuum")
    assert "0 folders removed, freed 0 B" in run("lake", "vacuum")
    assert run("transform", "rollback", "weather_hourly") == f"weather_hourly: current is {made[1]} (30 rows)\n"
    monkeypatch.setattr("sys.argv", ["lakebook", "-w", str(weather_ws.root), "transform", "rollback",
                                     "weather_hourly", made[0]])
    with pytest.raises(SystemExit) as exit_:
        main()
    err = capsys.readouterr().err
    assert exit_.value.code != 0 and "Traceback" not in err
    assert err.splitlines() == [f"error: warehouse.weather_hourly has no version {made[0]}: vacuumed, or never made",
                                f"hint: versions kept: {made[1]} (current), {made[2]}"]
