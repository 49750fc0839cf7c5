"""`lakebook stream start | status | stop` as a real service: its own local Ray runtime, the
SQLite bus, Feast's online store; status, metrics and a clean stop."""

from __future__ import annotations

import json
import os
import signal
import time

import httpx
import pytest
from click.testing import CliRunner

from events import log_events, parse_metrics
from stream_support import synthetic_flights, synthetic_weather
from test_stream import LATER, STREAM_CONFIG, wait_until
from lakebook import features
from lakebook.cli import cli
from lakebook.query import LakeSession
from lakebook.services import start_service
from lakebook.workspace import Workspace

pytestmark = pytest.mark.integration


def lakebook(ws, *args) -> str:
    result = CliRunner().invoke(cli, ["-w", str(ws.root), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_the_stream_service_reports_offsets_lag_rate_and_pushes_and_stops_cleanly(flights_ws):
    config = flights_ws.root / "lakebook.yaml"
    config.write_text(config.read_text() + STREAM_CONFIG)
    ws = Workspace.load(flights_ws.root)
    features.apply(ws)
    service = start_service(ws, "stream")
    try:
        status = lambda: httpx.get(service.base_url + "/status", timeout=10).json()  # noqa: E731
        flights = synthetic_flights(600, seed=11, start=LATER)
        log_events(ws, "flights", flights)
        log_events(ws, "weather", synthetic_weather(30, seed=11, start=LATER))
        wait_until(lambda: [(s["events"], s["lag"]) for s in map(status()["sources"].get, ("flights", "weather"))]
                   == [(600, 0), (30, 0)], what="the service reading every event of both sources")
        shown = json.loads(lakebook(ws, "stream", "status", "--json"))
        assert shown["running"] and shown["group"] == "speed"
        assert shown["sources"]["flights"]["committed"] == shown["sources"]["flights"]["offset"]
        assert shown["sources"]["flights"]["events_per_s"] > 0
        assert shown["views"]["origin_delays"]["last_push_unix"] <= time.time()
        assert shown["views"]["origin_weather"]["pushed_rows"] >= 3
        table = lakebook(ws, "stream", "status")
        assert "stream running" in table and "origin_delays" in table and "s ago" in table
        samples = parse_metrics(httpx.get(service.base_url + "/metrics").text)
        flights_labels = (("group", "speed"), ("source", "flights"))
        assert samples[("lakebook_stream_events_total", flights_labels)] == 600
        assert samples[("lakebook_stream_lag_events", flights_labels)] == 0
        assert httpx.get(service.base_url + "/health").json() == {"status": "ok", "problems": {}}
        assert "stopped" in lakebook(ws, "stream", "stop")
        assert service.process.wait(30) == 0
    finally:
        service.stop()
    assert not (ws.stream_dir / "service.json").exists()
    after = json.loads(lakebook(ws, "stream", "status", "--json"))
    assert not after["running"] and after["sources"]["flights"]["lag"] == 0
    written = LakeSession(ws).query("SELECT count(*) AS n FROM speed.origin_delays").table.to_pylist()[0]["n"]
    assert written > 0  # the speed rows waiting at the stop were written


def test_a_paused_stream_fires_the_monitors_stream_lag_and_catching_up_resolves_it(flights_ws):
    """The stream's process stopped (SIGSTOP) while events arrive: its lag read from the bus's
    offsets passes the level and the alert reaches a webhook; SIGCONT: it catches up and the
    check resolves with one notice."""
    from lakebook.alerts.receiver import WebhookReceiver
    from lakebook.monitor.engine import evaluate

    receiver = WebhookReceiver()
    config = flights_ws.root / "lakebook.yaml"
    config.write_text(config.read_text() + STREAM_CONFIG + "monitor: {defaults: false}\nalerts: {channels: "
                      f"{{hook: {{type: webhook, url: '{receiver.url}', timeout_s: 5}}}}}}\n")
    (flights_ws.root / "monitors").mkdir()
    (flights_ws.root / "monitors" / "checks.yaml").write_text(
        "checks:\n  - {name: behind, check: stream_lag(flights), fail: '> 100', for: 0}\n")
    ws = Workspace.load(flights_ws.root)
    features.apply(ws)
    service = start_service(ws, "stream")
    status = lambda: httpx.get(service.base_url + "/status", timeout=10).json()  # noqa: E731

    def check():
        [(_, result, state)] = evaluate(ws, ["behind"]).results
        return result, state

    paused = False
    try:
        log_events(ws, "flights", synthetic_flights(100, seed=12, start=LATER))
        wait_until(lambda: status()["sources"]["flights"]["lag"] == 0, what="the stream reading the first events")
        ok, _ = check()
        assert (ok.value, ok.state) == (0, "ok"), ok.detail
        os.kill(service.process.pid, signal.SIGSTOP)
        paused = True
        log_events(ws, "flights", synthetic_flights(300, seed=13, start=LATER))
        started = time.monotonic()
        behind, state = check()  # the service does not answer: the lag comes from the bus's offsets
        assert (behind.value, behind.level, state.state) == (300, "fail", "firing"), behind.detail
        assert "300 events behind: flights 300" in behind.detail
        [(alert_status, alert)] = receiver.of("behind")
        assert (alert_status, alert["severity"]) == ("firing", "critical")
        assert "stream_lag(flights): 300 events behind" in alert["description"], alert
        os.kill(service.process.pid, signal.SIGCONT)
        paused = False
        wait_until(lambda: status()["sources"]["flights"]["lag"] == 0, 60, "the stream catching up")
        caught_up_s = time.monotonic() - started
        resolved, state = check()
        assert (resolved.value, resolved.state, state.resolved) == (0, "ok", True), resolved.detail
        assert check()[0].state == "ok"  # ok again: no second notice
        assert [s for s, _ in receiver.of("behind")] == ["firing", "resolved"]
    finally:
        if paused:
            os.kill(service.process.pid, signal.SIGCONT)
        service.stop()
        receiver.close()
    print(f"paused stream: 300 events behind, caught up {caught_up_s:.1f} s after they were logged")
