"""The monitor core: check definitions and their errors, levels and units, the state machine,
the contracts' defaults, and evaluations over a real SQLite catalog with real flushed events
(the alerts land in the real ``lab`` inbox through the alert manager)."""

from __future__ import annotations

import json
import textwrap
from datetime import datetime, timedelta, timezone

import pytest

from events import flight, log_events
from lakebook.errors import MonitorDefinitionError, UnknownCheck
from lakebook.monitor.definitions import load_checks, load_file, parse_condition, parse_duration
from lakebook.monitor.state import CheckState, advance
from lakebook.workspace import Workspace

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)


def monitors(root, text: str, name: str = "checks.yaml"):
    folder = root / "monitors"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def one_check(tmp_path, text: str):
    path = tmp_path / "m.yaml"
    path.write_text(textwrap.dedent(text))
    [check] = load_file(path, shown="m.yaml")
    return check


# -- definitions ------------------------------------------------------------------------------------
def test_a_check_reads_like_a_data_quality_tool(tmp_path):
    check = one_check(tmp_path, """
        checks:
          - check: freshness(raw.flights)
            warn: "> 30m"
            fail: when > 2h
            for: 5m
            labels: {team: ops}
            by: event
    """)
    assert (check.name, check.kind, check.args, check.expression) == (
        "freshness_raw_flights", "freshness", ("raw.flights",), "freshness(raw.flights)")
    assert (check.warn.threshold, check.fail.threshold, check.for_s) == (1800, 7200, 300)
    assert check.options == {"by": "event"} and check.labels == {"team": "ops"}
    assert [check.level(v) for v in (None, 60, 1801, 7201)] == ["unknown", "ok", "warn", "fail"]


def test_options_get_their_defaults_and_arguments_their_forms(tmp_path):
    share = one_check(tmp_path, "checks: [{check: missing_share(raw.flights.arr_delay), fail: '> 5%'}]")
    assert share.args == ("raw.flights", "arr_delay") and share.options == {"window": 86400.0}
    assert share.name == "missing_share_raw_flights_arr_delay"
    volume = one_check(tmp_path, "checks: [{check: 'volume_change( raw.flights )', warn: '< -50%', window: 2h}]")
    assert volume.options == {"window": 7200.0, "baseline": 604800.0} and volume.expression == "volume_change(raw.flights)"
    job = one_check(tmp_path, "checks: [{check: job_failed(nightly_batch), name: nightly}]")
    assert (job.name, job.fail.text, job.warn, job.for_s) == ("nightly", "> 0", None, None)  # its kind's default level
    lag = one_check(tmp_path, "checks: [{check: stream_lag(), fail: '> 1000'}]")
    assert lag.args == () and lag.name == "stream_lag"


@pytest.mark.parametrize("text, message, hint", [
    ("checks: [{check: freshnes(raw.flights), fail: '> 1h'}]", r"m.yaml: check 1 \(freshnes\(raw.flights\)\): check: "
     "unknown check kind 'freshnes'", "did you mean 'freshness'"),
    ("checks: [{check: freshness(raw.flights), fail: '> 1h', windw: 1h}]", "check 1 .*: windw: unknown key for a "
     "freshness check", "allowed keys: check, name"),
    ("checks: [{check: reject_rate(flights), fail: '> 1%', windw: 1h}]", "windw: unknown key", "did you mean 'window'"),
    ("checks: [{check: reject_rate(flights), fail: '> 2h'}]", r"fail: '> 2h': unit 'h' does not fit values in %",
     '"> 5%"'),
    ("checks: [{check: freshness(raw.flights), warn: 2h}]", "warn: '2h' is not a level", '"> 1h"'),
    ("checks: [{check: freshness(raw.flights)}]", r"freshness\(raw.flights\) has no level", "add warn: and/or fail:"),
    ("checks: [{check: freshness(flights), fail: '> 1h'}]", "'flights' is not a catalog table zone.name", "kind"),
    ("checks: [{check: 'job_failed(a, b)'}]", "job_failed takes job", "kind"),
    ("checks: [{check: freshness(raw.flights), fail: '> 1h', for: soon}]", "for: 'soon' is not a duration", "0, 90s"),
    ("checks: [{check: freshness(raw.flights), fail: '> 1h', lables: {}}]", "lables: unknown key",
     "did you mean 'labels'"),
    ("checks: [{check: freshness(raw.flights), fail: '> 1h', name: Bad-Name}]", "name: String should match", "lower-case"),
    ("check: [{check: freshness(raw.flights)}]", "m.yaml: unknown key 'check'", "did you mean 'checks'"),
    ("checks:\n  - check: freshness(raw.flights)\n    fail: > 2h\n", r"m.yaml is not valid YAML \(line 3\)", "quote"),
])
def test_errors_name_the_file_the_check_and_the_key(tmp_path, text, message, hint):
    path = tmp_path / "m.yaml"
    path.write_text(text)
    with pytest.raises(MonitorDefinitionError, match=message) as caught:
        load_file(path, shown="m.yaml")
    if hint:
        assert hint in caught.value.hint


def test_unquoted_levels_are_explained(tmp_path):
    """YAML reads ``fail: > 2h`` as folded text: the level is then not a comparison."""
    path = tmp_path / "m.yaml"
    path.write_text("checks:\n  - check: freshness(raw.flights)\n    fail: > 2h\n")
    with pytest.raises(MonitorDefinitionError) as caught:
        load_file(path, shown="m.yaml")
    assert "quoted" in caught.value.hint or "quote" in caught.value.hint


@pytest.mark.parametrize("text, unit, threshold", [
    ("> 2h", "s", 7200), ("<= 90s", "s", 90), ("> 1d", "s", 86400), ("> 500ms", "s", 0.5), ("> 5%", "%", 5),
    ("> 5", "%", 5), ("> 500ms", "ms", 500), ("> 2s", "ms", 2000), ("< 100", "rows", 100), ("!= 0", "", 0),
    ("when >= -3.5", "%", -3.5),
])
def test_levels_are_read_in_the_kinds_unit(text, unit, threshold):
    assert parse_condition(text, unit).threshold == pytest.approx(threshold)


def test_levels_compare_as_written():
    assert parse_condition("> 5%", "%").holds(5.1) and not parse_condition("> 5%", "%").holds(5.0)
    assert parse_condition(">= 5", "").holds(5) and parse_condition("= 0", "").holds(0)
    assert parse_condition("< -50%", "%").holds(-60) and not parse_condition("< -50%", "%").holds(-10)
    with pytest.raises(ValueError, match="does not fit values in rows"):
        parse_condition("> 2h", "rows")
    assert parse_duration("0") == 0 and parse_duration("1w") == 604800


# -- the state machine -------------------------------------------------------------------------------
def run(levels: list[str], for_s: float | None = None, step_s: float = 60) -> list[CheckState]:
    states, state = [], None
    for i, level in enumerate(levels):
        state = advance(state, level, for_s, T0 + timedelta(seconds=i * step_s))
        states.append(state)
    return states


def test_a_check_fires_on_its_second_failing_evaluation_by_default_and_resolves_once():
    states = run(["ok", "fail", "fail", "fail", "ok", "ok"])
    assert [s.state for s in states] == ["ok", "pending", "firing", "firing", "ok", "ok"]
    assert [s.resolved for s in states] == [False, False, False, False, True, False]
    assert states[2].fired_at == T0 + timedelta(seconds=120) and states[3].fired_at == states[2].fired_at
    assert states[2].failing_since == T0 + timedelta(seconds=60) and states[3].failing_count == 3


def test_for_is_how_long_it_must_fail_and_zero_fires_at_once():
    assert [s.state for s in run(["fail", "fail", "fail", "fail"], for_s=150)] == ["pending", "pending", "pending",
                                                                                   "firing"]
    assert [s.state for s in run(["warn"], for_s=0)] == ["firing"]


def test_an_ok_evaluation_breaks_a_streak_and_unknown_keeps_it():
    assert [s.state for s in run(["fail", "ok", "fail", "fail"])] == ["pending", "ok", "pending", "firing"]
    states = run(["fail", "fail", "unknown", "error", "fail", "ok"])
    assert [s.state for s in states] == ["pending", "firing", "firing", "firing", "firing", "ok"]
    assert [s.resolved for s in states].count(True) == 1
    assert [s.state for s in run(["unknown", "unknown", "ok"])] == ["unknown", "unknown", "ok"]
    assert run(["unknown", "unknown"])[1].since == T0  # since it became unknown


def test_a_firing_check_takes_its_latest_level_as_severity():
    states = run(["warn", "warn", "fail", "warn"])
    assert [(s.state, s.severity) for s in states] == [("pending", "warn"), ("firing", "warn"), ("firing", "fail"),
                                                       ("firing", "warn")]
    # the alert of the level left behind ends (its labels hold its severity); a resolve keeps the last one
    assert [s.replaced_severity for s in states] == [None, None, "warn", "fail"]
    resolved = run(["fail", "fail", "ok"])[-1]
    assert (resolved.resolved, resolved.severity) == (True, "fail")


# -- the contracts' defaults -------------------------------------------------------------------------
def test_every_contract_gets_freshness_and_reject_rate_checks(workspace):
    checks = load_checks(workspace)
    assert list(checks.checks) == ["freshness_raw_flights", "reject_rate_flights", "freshness_raw_predictions",
                                   "reject_rate_predictions", "freshness_raw_weather", "reject_rate_weather"]
    fresh = checks.check("freshness_raw_flights")
    assert (fresh.warn.text, fresh.fail.text, fresh.origin, fresh.for_s) == ("> 6h", "> 24h", "contract flights", None)
    assert checks.check("reject_rate_weather").options == {"window": 3600.0}
    with pytest.raises(UnknownCheck, match="no check 'fresh'") as caught:
        checks.check("fresh")
    assert "checks: freshness_raw_flights" in caught.value.hint


def test_a_declared_check_replaces_a_default_and_a_default_can_be_turned_off(workspace_dir):
    monitors(workspace_dir, """
        checks:
          - {check: freshness(raw.flights), fail: "> 10m"}
          - {name: reject_rate_weather, enabled: false}
          - {check: row_count(raw.weather), fail: "< 1"}
    """)
    checks = load_checks(Workspace.load(workspace_dir))
    assert checks.check("freshness_raw_flights").fail.text == "> 10m"
    assert checks.check("freshness_raw_flights").origin == "monitors/checks.yaml"
    assert not checks.check("reject_rate_weather").enabled
    assert [c.name for c in checks.enabled] == ["freshness_raw_flights", "row_count_raw_weather", "reject_rate_flights",
                                                "freshness_raw_predictions", "reject_rate_predictions",
                                                "freshness_raw_weather"]


def test_without_defaults_or_with_a_bad_file_the_rest_still_loads(workspace_dir):
    (workspace_dir / "lakebook.yaml").write_text("name: test\nmonitor: {defaults: false}\n")
    monitors(workspace_dir, "checks: [{check: row_count(raw.weather), fail: '< 1'}]", "a.yaml")
    monitors(workspace_dir, "checks: [{check: row_count(raw.weather), fail: '< 1'}]", "b.yaml")
    monitors(workspace_dir, "checks: [{check: row_cnt(raw.weather)}]", "c.yaml")
    checks = load_checks(Workspace.load(workspace_dir))
    assert list(checks.checks) == ["row_count_raw_weather"]
    assert "declared twice (also in monitors/a.yaml)" in checks.problems["b.yaml:row_count_raw_weather"]
    assert "did you mean 'row_count'" in checks.problems["c.yaml"]
    with pytest.raises(MonitorDefinitionError, match="declared twice"):
        load_checks(Workspace.load(workspace_dir), strict=True)


def test_the_example_workspace_checks_load():
    from pathlib import Path

    example = Workspace.load(Path(__file__).resolve().parents[2])
    checks = load_checks(example, strict=True)
    assert {"freshness_raw_flights", "reject_rate_flights", "job_failed_nightly_batch"} <= set(checks.checks)
    assert checks.check("freshness_raw_flights").origin == "monitors/pipeline.yaml"


# -- evaluations over a real catalog -----------------------------------------------------------------
LAB = "name: test\nalerts: {channels: {lab: {type: lab}}}\nmonitor: {defaults: false}\n"


@pytest.fixture
def lab_ws(workspace_dir):
    (workspace_dir / "lakebook.yaml").write_text(LAB)
    return workspace_dir


def inbox(root) -> list[dict]:
    from lakebook.alerts import Inbox

    with Inbox(Workspace.load(root)) as box:
        return box.alerts()


def test_freshness_fires_resolves_and_alerts_through_the_channels(lab_ws):
    from lakebook.ingest import flush_ingest_log_to_raw
    from lakebook.monitor.engine import evaluate

    monitors(lab_ws, "checks: [{check: freshness(raw.flights), fail: '> 1h', labels: {team: ops}}]")
    ws = Workspace.load(lab_ws)
    log_events(ws, "flights", [flight(i) for i in range(20)])
    flush_ingest_log_to_raw(ws)
    now = datetime.now(timezone.utc)
    later = [evaluate(ws, now=now + timedelta(hours=2, minutes=m)) for m in (0, 1, 2)]
    assert [e.results[0][1].state for e in later] == ["pending", "firing", "firing"]
    assert later[0].results[0][1].detail.startswith("newest data 2h")
    assert [len(e.alerts) for e in later] == [0, 1, 1]  # every evaluation while it fires
    alert = later[1].alerts[0]
    assert (alert.status, alert.severity, alert.title) == ("firing", "critical", "freshness_raw_flights failing")
    assert alert.labels == {"alertname": "freshness_raw_flights", "check": "freshness(raw.flights)",
                            "kind": "freshness", "severity": "critical", "table": "raw.flights", "team": "ops"}
    monitors(lab_ws, "checks: [{check: freshness(raw.flights), fail: '> 3h', labels: {team: ops}}]")
    back = evaluate(ws, now=now + timedelta(hours=2, minutes=3))  # 2h 3m old is fine against > 3h
    assert back.results[0][1].state == "ok" and [a.status for a in back.alerts] == ["resolved"]
    assert evaluate(ws, now=now + timedelta(hours=2, minutes=4)).alerts == []
    # the alert manager sends the firing group once (not again within its repeat interval), then one resolve notice
    assert [(a["status"], a["title"]) for a in inbox(lab_ws)] == [
        ("resolved", "alertname=freshness_raw_flights: 1 alert resolved"),
        ("firing", "alertname=freshness_raw_flights: 1 alert firing")]


def test_reject_rate_and_missing_share_measure_the_flushed_events(lab_ws):
    from lakebook.ingest import flush_ingest_log_to_raw
    from lakebook.monitor.engine import evaluate

    monitors(lab_ws, """
        checks:
          - {check: reject_rate(flights), fail: "> 5%", for: 0}
          - {check: missing_share(raw.flights.arr_delay), warn: "> 10%", for: 0}
          - {check: row_count(raw.flights), fail: "< 1"}
    """)
    ws = Workspace.load(lab_ws)
    good = [flight(i) for i in range(6)] + [flight(i, arr_delay=None) for i in range(6, 7)]
    bad = [flight(i, origin="XXX") for i in range(7, 10)]
    log_events(ws, "flights", good + bad)
    flush_ingest_log_to_raw(ws)
    evaluation = evaluate(ws)
    results = {c.name: r for c, r, _ in evaluation.results}
    rejects, missing = results["reject_rate_flights"], results["missing_share_raw_flights_arr_delay"]
    assert rejects.value == pytest.approx(30.0) and rejects.state == "firing" and rejects.level == "fail"
    assert rejects.detail == "3 of 10 flights events rejected in the last 1h"
    assert missing.value == pytest.approx(100 / 7) and missing.state == "firing" and missing.level == "warn"
    assert results["row_count_raw_flights"].value == 7 and results["row_count_raw_flights"].state == "ok"
    assert evaluation.failed
    hour_later = evaluate(ws, now=datetime.now(timezone.utc) + timedelta(hours=1, seconds=1))
    assert {c.name: r.state for c, r, _ in hour_later.results}["reject_rate_flights"] == "firing"  # unknown keeps it


def test_schema_change_compares_with_the_schema_seen_before(lab_ws):
    from lakebook.catalog import ColumnInfo, open_catalog
    from lakebook.monitor.engine import evaluate

    monitors(lab_ws, "checks: [{check: schema_change(warehouse.weather_hourly), for: 0}]")
    ws = Workspace.load(lab_ws)
    catalog = open_catalog(ws, register=False)
    columns = [ColumnInfo("origin", "string"), ColumnInfo("temp", "double"), ColumnInfo("visib", "double")]
    build = lambda columns: catalog.register_table("warehouse", "weather_hourly", kind="table", columns=columns,  # noqa: E731
                                                   location=str(ws.lake.table_dir("warehouse", "weather_hourly")))
    build(columns)
    first = evaluate(ws).results[0][1]
    assert (first.value, first.state) == (0.0, "ok")
    build(columns[:2] + [ColumnInfo("snow", "double")])
    catalog.close()
    changed = evaluate(ws).results[0][1]
    assert (changed.value, changed.state) == (1.0, "firing")
    assert "added snow (double); dropped visib" in changed.detail
    assert evaluate(ws, now=datetime.now(timezone.utc) + timedelta(days=1, seconds=1)).results[0][1].state == "ok"


def test_a_check_that_raises_does_not_stop_the_others(lab_ws):
    from lakebook.monitor.engine import evaluate

    monitors(lab_ws, """
        checks:
          - {check: feature_drift(flight_stats), fail: "> 0.2"}
          - {check: missing_share(raw.flights.no_such), fail: "> 5%"}
          - {check: freshness(warehouse.nothing), fail: "> 1h"}
          - {check: row_count(raw.flights), fail: "< 0"}
    """)
    results = {c.name: r for c, r, _ in evaluate(Workspace.load(lab_ws)).results}
    drift = results["feature_drift_flight_stats"]
    assert drift.level == "error" and drift.detail.startswith("feature_drift takes one feature, not flight_stats")
    assert results["missing_share_raw_flights_no_such"].level == "error"
    assert "raw.flights has no column 'no_such'" in results["missing_share_raw_flights_no_such"].detail
    assert results["freshness_warehouse_nothing"].level == "unknown"  # not built yet
    assert "no table warehouse.nothing" in results["freshness_warehouse_nothing"].detail
    assert results["row_count_raw_flights"].level == "ok"


def test_history_is_bounded_and_status_shows_it(lab_ws):
    from lakebook.monitor.engine import evaluate
    from lakebook.monitor.status import check_status

    (lab_ws / "lakebook.yaml").write_text(LAB.replace("defaults: false", "defaults: false, history: 3"))
    monitors(lab_ws, "checks: [{check: row_count(raw.flights), fail: '< 1'}]")
    ws = Workspace.load(lab_ws)
    for i in range(5):
        evaluate(ws, now=T0 + timedelta(minutes=i))
    [row], problems = check_status(ws)
    assert problems == {} and row["state"] == "firing" and row["since"] == T0 + timedelta(minutes=1)
    assert [h["at"] for h in row["history"]] == [T0 + timedelta(minutes=i) for i in (4, 3, 2)]
    assert check_status(ws, limit=10)[0][0]["history"][-1]["at"] == T0 + timedelta(minutes=2)


# -- measurements from the services' status ----------------------------------------------------------
def test_stream_lag_comes_from_the_stream_status():
    from lakebook.monitor.pipeline import lag_from_status

    status = {"running": True, "group": "g", "sources": {"flights": {"committed": 10, "lag": 1200},
                                                         "weather": {"committed": 5, "lag": 30}}}
    total = lag_from_status(status, None)
    assert total.value == 1230 and total.detail == "1,230 events behind: flights 1,200, weather 30"
    assert lag_from_status(status, "weather").value == 30
    assert lag_from_status(status, "planes").value is None
    stopped = lag_from_status({"running": False, "sources": {"flights": {"lag": 7}}}, None)
    assert stopped.value == 7 and "not running" in stopped.detail


# -- the command ---------------------------------------------------------------------------------------
def test_the_commands_say_where_the_checks_come_from(tmp_path, workspace_dir):
    from click.testing import CliRunner

    from lakebook.cli import cli

    def lakebook(root, *args):
        return CliRunner().invoke(cli, ["-w", str(root), "monitor", *args], obj={})

    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "lakebook.yaml").write_text("name: bare\n")
    listed = lakebook(bare, "list")
    assert listed.exit_code == 0 and listed.output.splitlines()[0] == "no checks"
    assert "no checks: add monitors/*.yaml (README, Monitoring), or contracts for the defaults" in listed.output
    ran = lakebook(bare, "run")
    assert ran.exit_code == 0 and ran.output.startswith("no checks evaluated")

    defaults = lakebook(workspace_dir, "run", "--json")
    assert defaults.exit_code == 0
    assert {r["name"]: r["state"] for r in json.loads(defaults.output)["results"]}["reject_rate_flights"] == "unknown"
    shown = lakebook(workspace_dir, "list")
    assert "no monitors/*.yaml: the contracts' default checks only (freshness, reject rate)" in shown.output
    monitors(workspace_dir, "checks: [{check: row_count(raw.flights), fail: '< 1', for: 0}]")
    failing = lakebook(workspace_dir, "run", "row_count_raw_flights")
    assert failing.exit_code == 1 and "firing" in failing.output and "no monitors" not in failing.output
    status = lakebook(workspace_dir, "status", "row_count_raw_flights", "--json")
    assert [r["state"] for r in json.loads(status.output)] == ["firing"]


def test_volume_change_compares_the_last_window_with_the_baseline(lab_ws):
    from lakebook.ingest import flush_ingest_log_to_raw
    from lakebook.monitor.engine import evaluate

    monitors(lab_ws, "checks: [{check: volume_change(raw.flights), fail: '< -50%', window: 1h, baseline: 1d, for: 0}]")
    ws = Workspace.load(lab_ws)
    log_events(ws, "flights", [flight(i) for i in range(40)])
    flush_ingest_log_to_raw(ws)
    now = datetime.now(timezone.utc)
    young = evaluate(ws, now=now + timedelta(minutes=30)).results[0][1]
    assert young.state == "unknown" and "less than one window (1h) of history" in young.detail
    quiet = evaluate(ws, now=now + timedelta(hours=2)).results[0][1]  # 40 rows in the hour after the flush, none since
    assert (quiet.value, quiet.state) == (-100.0, "firing")
    assert quiet.detail == "0 rows in the last 1h vs 40 on average over 1h"


def test_job_late_measures_how_long_a_due_run_has_waited(lab_ws):
    from jobs_support import add_job, add_notebooks

    from lakebook.jobs import JobStore, load_jobs
    from lakebook.monitor.engine import evaluate

    add_notebooks(lab_ws)
    add_job(lab_ws, "nightly", "notebook: notebooks/ok.ipynb\n")
    monitors(lab_ws, "checks: [{check: job_late(nightly), for: 0}]")  # its kind's level: fail > 15m
    ws = Workspace.load(lab_ws)
    now = datetime.now(timezone.utc)
    with JobStore(ws) as store:
        [run_id] = store.enqueue(load_jobs(ws, strict=True).job("nightly"), "cron", [now - timedelta(minutes=20)])
        late = evaluate(ws, now=datetime.now(timezone.utc)).results[0][1]  # after it was queued
        assert late.state == "firing" and late.value == pytest.approx(1200, abs=1)
        assert late.detail == f"run {run_id} due 20m ago, not started (queued)"
        assert store.claim(run_id)
    started = evaluate(ws)
    assert started.results[0][1].state == "ok" and [a.status for a in started.alerts] == ["resolved"]
