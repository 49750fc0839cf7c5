"""The Lab's Alerts section API without a server: the open alerts as JSON (acked and silenced
marked, with the count for the badge), ack by id, an unknown id as a 404, and its routes."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from lakebook.alerts import Alert
from lakebook.errors import NotFound
from lakebook.monitor import AlertManager
from lakebook.monitor.alertstore import AlertStore
from lakebook.monitor.routing import parse_matcher
from lakebook.server.handlers import error_status
from lakebook.server.monitor_alerts import MonitorAlertsAPI, monitor_alert_handlers
from lakebook.workspace import Workspace


def firing(name: str) -> Alert:
    return Alert(title=f"{name} breached", text="newest event 3h ago", severity="critical", status="firing",
                 labels={"alertname": name, "check": f"freshness({name})", "kind": "freshness", "severity": "critical"})


@pytest.fixture
def ws(workspace_dir: Path) -> Workspace:
    ws = Workspace.load(workspace_dir)
    now = datetime.now(timezone.utc)
    AlertManager(ws).receive([firing("flights_fresh"), firing("weather_fresh"), firing("old")], now)
    AlertManager(ws).receive([Alert("old", "", "critical", firing("old").labels, "resolved")], now)
    with AlertStore(ws) as store:
        store.add_silence([parse_matcher("alertname=weather_fresh")], now, now + timedelta(hours=1), "known", "ana")
    return ws


def test_open_alerts_are_listed_with_acked_and_silenced_marked(ws):
    api = MonitorAlertsAPI(lambda: ws)
    doc = api.alerts_json()
    json.dumps(doc, allow_nan=False)
    assert (doc["open"], doc["unacked"]) == (2, 1)
    by_name = {a["labels"]["alertname"]: a for a in doc["alerts"]}
    assert by_name["weather_fresh"]["silenced"] and not by_name["flights_fresh"]["silenced"]
    assert by_name["flights_fresh"]["starts_at"].endswith("Z")
    acked = api.ack(by_name["flights_fresh"]["id"], "ana")
    assert (acked["acked"], acked["acked_by"]) == (True, "ana")
    assert api.alerts_json()["unacked"] == 0


def test_ack_of_an_unknown_alert_is_a_404(ws):
    with pytest.raises(NotFound) as info:
        MonitorAlertsAPI(lambda: ws).ack(999, "ana")
    assert error_status(info.value)[0] == 404


def test_routes_are_under_the_monitor_api():
    assert [pattern for pattern, _ in monitor_alert_handlers()] == [
        "/lakebook/api/monitor/alerts/?", "/lakebook/api/monitor/alerts/(?P<alert_id>[0-9]+)/ack/?"]
