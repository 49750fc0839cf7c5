"""The catalog on PostgreSQL: a real server (Debian's postgresql, started here on a free
loopback port in a temporary data folder) behind the same SQLAlchemy code as the SQLite
default. The ingest server, its flusher, the query engine and the batch runner all use it
through ``catalog.url``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

from ingest_support import NDJSON, flush, load_workspace, ndjson, start_ingest_server
from events import flight
from server_support import create_database, postgres_server

from lakebook.services import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL server for this module: (host, port). Trust auth on 127.0.0.1 only."""
    with postgres_server() as address:
        yield address


@pytest.fixture
def catalog_url(postgres, request):
    """A fresh database for one test."""
    name = "t_" + request.node.name.lower().replace("[", "_").replace("]", "")[:40]
    return create_database(*postgres, name)


def test_ingest_flush_and_query_keep_the_catalog_in_postgres(workspace_dir, catalog_url, monkeypatch):
    monkeypatch.setenv("LAKEBOOK_CATALOG__URL", catalog_url)
    events = [flight(i) for i in range(300)]
    server = start_ingest_server(workspace_dir, flush_interval_s=0.5, env=dict(os.environ),
                                 log_path=workspace_dir.parent / "ingest.log")
    try:
        answer = httpx.post(f"{server.url}/v1/events/flights", content=ndjson(events), headers=NDJSON, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["accepted"] == 300
        bad = httpx.post(f"{server.url}/v1/events/flights", content=ndjson([flight(999, dep_delay="late")]),
                         headers=NDJSON, timeout=30)
        assert bad.json()["rejected"], bad.text
    finally:
        assert server.stop() == 0, server.log_text()[-2000:]  # a graceful stop flushes the rest
    assert flush(workspace_dir).events == 0

    from lakebook.catalog import open_catalog
    from lakebook.query import query

    workspace = load_workspace(workspace_dir)
    assert workspace.catalog_url == catalog_url
    catalog = open_catalog(workspace)
    try:
        assert catalog.engine.dialect.name == "postgresql"
        flights = catalog.table("raw.flights")
        assert flights.row_count == 300
        assert flights.bytes > 0
        assert flights.last_event_time == max(datetime.fromisoformat(e["sched_dep_at"]) for e in events)
        assert {c.name for c in flights.columns} >= {"carrier", "dep_delay", "_event_id", "_ingested_at"}
        assert flights.last_ingest_time is not None
        assert catalog.table("quarantine.flights").row_count == 1
        files = catalog.files("raw", "flights")
        assert files and all(Path(f).is_file() for f in files)
    finally:
        catalog.close()

    result = query("SELECT count(*) AS n, count(DISTINCT _event_id) AS ids FROM raw.flights", workspace)
    assert result.df().to_dict("records") == [{"n": 300, "ids": 300}]


def test_catalog_api_on_postgres(catalog_url):
    """Every catalog operation the batch layer uses, on PostgreSQL: tables with 64-bit stats,
    the file manifest (recording a file twice changes nothing), lineage and runs."""
    from lakebook.catalog import Catalog
    from lakebook.catalog.store import ColumnInfo
    from lakebook.lake import WrittenFile

    first, second = Catalog(catalog_url), Catalog(catalog_url)  # two processes' worth: create_all twice
    try:
        first.register_table("warehouse", "big", kind="table", location="/lake/warehouse/big",
                             columns=[ColumnInfo("id", "int64", "the key", False, False),
                                      ColumnInfo("email", "string", "who", True, True)],
                             description="a table", owner="data-team")
        t0 = datetime(2013, 1, 1, 5, tzinfo=timezone.utc)
        t1 = datetime(2013, 12, 31, 23, tzinfo=timezone.utc)
        files = [WrittenFile(path=f"/lake/warehouse/big/part-{i}.parquet", partition=f"p={i}", rows=3_000_000_000,
                             bytes=5_000_000_000, min_event_time=t0, max_event_time=t1 if i else t0,
                             max_ingested_at=t1)
                 for i in range(2)]
        first.record_files("warehouse", "big", files)
        second.record_files("warehouse", "big", files[:1])  # known path: skipped
        big = second.table("warehouse.big")
        assert (big.row_count, big.bytes) == (6_000_000_000, 10_000_000_000)
        assert big.last_event_time == t1 and big.last_ingest_time == t1
        assert [(c.name, c.type, c.pii) for c in big.columns] == [("id", "int64", False), ("email", "string", True)]
        assert second.event_time_bounds("warehouse", "big") == (t0, t1)

        second.set_lineage("warehouse.big", "make_big", {"raw.flights": {"id": ["id"]}, "ref.planes": {}})
        second.set_lineage("features.f", "make_f", {"warehouse.big": {"x": ["id"]}})
        assert [(e["upstream"], e["depth"]) for e in first.lineage("features.f")] == \
            [("warehouse.big", 1), ("raw.flights", 2), ("ref.planes", 2)]

        run = first.start_run("make_big", "duckdb")
        first.finish_run(run, "ok", rows=6_000_000_000, watermarks={"raw.flights": 7})
        last = second.last_run("make_big")
        assert last["rows"] == 6_000_000_000 and last["watermarks"] == {"raw.flights": 7}

        from lakebook.errors import UnknownTable

        with pytest.raises(UnknownTable) as err:
            first.table("warehouse.bgi")
        assert "warehouse.big" in err.value.hint
    finally:
        first.close()
        second.close()


def test_compaction_commits_and_the_columns_it_added_on_postgres(catalog_url):
    """A catalog made before compaction gets its columns at open (ALTER TABLE on PostgreSQL),
    and a compaction's commit replaces files in one transaction, leaving tombstones."""
    import psycopg

    from lakebook.catalog import Catalog
    from lakebook.catalog.store import ColumnInfo
    from lakebook.lake import WrittenFile

    catalog = Catalog(catalog_url)
    catalog.close()
    with psycopg.connect(catalog_url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as con:
        con.execute("ALTER TABLE files DROP COLUMN first_id, DROP COLUMN last_id, DROP COLUMN removed_at")
    catalog = Catalog(catalog_url)
    try:
        catalog.register_table("raw", "f", kind="source", location="/lake/raw/f", columns=[ColumnInfo("x", "int64")])
        files = [WrittenFile(f"/lake/raw/f/date=2013-01-01/part-{i}.parquet", "date=2013-01-01", 10, 100, None, None,
                             None) for i in range(3)]
        catalog.record_files("raw", "f", files)
        ids = [i for i, _ in catalog.file_entries("raw", "f")]
        merged = WrittenFile("/lake/raw/f/date=2013-01-01/compact-x.parquet", "date=2013-01-01", 30, 120, None, None,
                             None)
        assert catalog.replace_compacted("raw", "f", ids, merged) is not None
        assert catalog.replace_compacted("raw", "f", ids, merged) is None  # replaced already: nothing changes
        assert catalog.files("raw", "f") == [str(merged.path)] and catalog.table("raw.f").row_count == 30
        assert catalog.file_entries("raw", "f", after_id=ids[0]) == []  # wholly read by a consumer past its first id
        assert catalog.file_entries("raw", "f") == [(ids[-1], str(merged.path))]
        catalog.record_files("raw", "f", files)  # a replayed flush: known paths, nothing added
        assert catalog.table("raw.f").row_count == 30
        assert sorted(p for _, _, p in catalog.replaced_files()) == sorted(str(f.path) for f in files)
    finally:
        catalog.close()


def test_a_catalog_url_that_cannot_be_reached_is_a_clear_error(workspace_dir, monkeypatch):
    port = free_port()  # nothing listens there
    monkeypatch.setenv("LAKEBOOK_CATALOG__URL", f"postgresql+psycopg://postgres@127.0.0.1:{port}/nothing")
    started = time.monotonic()
    answer = subprocess.run([sys.executable, "-m", "lakebook", "-w", str(workspace_dir), "catalog", "list"],
                            capture_output=True, text=True, timeout=120)
    assert answer.returncode != 0
    assert f"127.0.0.1:{port}" in answer.stderr or "connection" in answer.stderr.lower()
    assert "Traceback" not in answer.stderr, answer.stderr[-2000:]
    assert time.monotonic() - started < 60


@pytest.mark.timeout(240)
def test_two_schedulers_on_one_postgresql_database_run_each_tick_once(workspace, catalog_url, tmp_path, monkeypatch):
    """The job tables (runs, the leader's lease, cursors) on PostgreSQL, as the SQLite test runs them."""
    import psycopg
    from sqlalchemy.engine import make_url

    from jobs_support import add_notebooks
    from test_jobs_scheduler import two_schedulers_run_each_tick_once

    monkeypatch.setenv("LAKEBOOK_CATALOG__URL", catalog_url)  # the schedulers inherit it
    add_notebooks(workspace.root)
    two_schedulers_run_each_tick_once(workspace, tmp_path)
    url = make_url(catalog_url)
    with psycopg.connect(host=url.host, port=url.port, user=url.username, dbname=url.database) as con:
        held = con.execute("SELECT count(*) FROM job_runs WHERE job = 'tick' AND status = 'succeeded'").fetchone()[0]
    assert held >= 4
    assert not (workspace.state_dir / "catalog.sqlite").exists(), "the default SQLite catalog was used"


def test_the_monitors_state_and_history_live_in_postgres_too(workspace_dir, catalog_url, monkeypatch):
    """The monitor's tables on PostgreSQL: results recorded and bounded, a check's state moved
    along, a kind's memory kept between evaluations (schema_change)."""
    from events import log_events
    from lakebook.ingest import flush_ingest_log_to_raw
    from lakebook.monitor.engine import evaluate
    from lakebook.monitor.state import MonitorStore

    monkeypatch.setenv("LAKEBOOK_CATALOG__URL", catalog_url)
    (workspace_dir / "lakebook.yaml").write_text("name: test\nmonitor: {defaults: false, history: 2}\n"
                                                "alerts: {channels: {lab: {type: lab}}}\n")
    (workspace_dir / "monitors").mkdir()
    (workspace_dir / "monitors" / "checks.yaml").write_text(
        "checks:\n  - {check: reject_rate(flights), fail: '> 5%'}\n  - {check: schema_change(raw.flights)}\n")
    workspace = load_workspace(workspace_dir)
    log_events(workspace, "flights", [flight(i) for i in range(8)] + [flight(8, origin="XXX"), flight(9, month=13)])
    flush_ingest_log_to_raw(workspace)
    states = [{c.name: r.state for c, r, _ in evaluate(workspace).results} for _ in range(3)]
    assert [s["reject_rate_flights"] for s in states] == ["pending", "firing", "firing"]
    assert {s["schema_change_raw_flights"] for s in states} == {"ok"}
    with MonitorStore(workspace) as store:
        assert store.engine.dialect.name == "postgresql"
        assert [h["value"] for h in store.history("reject_rate_flights", 10)] == [20.0, 20.0]  # two kept
        assert store.rows()["reject_rate_flights"]["state"] == "firing"
        assert "carrier" in store.memory("schema_change_raw_flights")["schema"]
    # the alert manager's tables there too: the alert kept, its message sent once (the Lab inbox), an ack
    from datetime import datetime, timezone

    from lakebook.alerts import Inbox
    from lakebook.monitor import AlertManager
    from lakebook.monitor.alertstore import AlertStore

    with AlertStore(workspace) as alerts:
        assert alerts.engine.dialect.name == "postgresql"
        [alert] = alerts.alerts()
        assert [n["status"] for n in alerts.notifications()] == ["firing"]
    assert alert["labels"]["alertname"] == "reject_rate_flights" and alert["status"] == "firing"
    with Inbox(workspace) as inbox:
        assert [a["title"] for a in inbox.alerts()] == ["alertname=reject_rate_flights: 1 alert firing"]
    acked = AlertManager(workspace).ack(alert["id"], "ops", datetime.now(timezone.utc))
    assert acked["acked_by"] == "ops"


def test_a_manual_run_queued_on_postgres_gets_its_id_and_a_time_queued_twice_runs_once(workspace_dir, catalog_url,
                                                                                      monkeypatch):
    """`lakebook jobs run` queues the run and names it: the insert that skips a run already
    queued for the same time reports what it inserted on PostgreSQL as on SQLite."""
    from datetime import datetime, timezone

    from jobs_support import add_job, add_notebooks
    from lakebook.jobs import load_jobs
    from lakebook.jobs.api import queue_run
    from lakebook.jobs.store import JobStore

    monkeypatch.setenv("LAKEBOOK_CATALOG__URL", catalog_url)
    add_notebooks(workspace_dir)
    add_job(workspace_dir, "report", "notebook: notebooks/ok.ipynb\n")
    workspace = load_workspace(workspace_dir)
    run, _ = queue_run(workspace, "report", {})
    job = load_jobs(workspace).job("report")
    tick = datetime(2024, 3, 5, 6, tzinfo=timezone.utc)
    with JobStore(workspace) as store:
        assert store.engine.dialect.name == "postgresql"
        assert store.run(run["id"])["job"] == "report" and store.run(run["id"])["status"] == "queued"
        [ticked] = store.enqueue(job, "cron", [tick])
        assert ticked != run["id"]
        assert store.enqueue(job, "cron", [tick]) == []  # the same tick again: nothing new
        assert [r["id"] for r in store.runs("report", limit=10)].count(ticked) == 1
