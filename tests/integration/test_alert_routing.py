"""The alert manager delivering to real receivers on 127.0.0.1 (an aiosmtpd SMTP server and an
HTTP receiver, as test_alert_delivery.py starts them) through a routing table: critical alerts to
both, warnings to the webhook only; once, not again within repeat_interval, again after it, one
resolve notice; silenced and acked alerts not sent; ``lakebook alerts …`` as subprocesses. And
``lakebook catalog impact`` on a workspace with real lineage."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from email import message_from_bytes
from email.policy import default

import pytest

from lakebook.alerts import Alert
from lakebook.monitor import AlertManager
from lakebook.workspace import Workspace
from test_alert_delivery import PASSWORD, receiver, smtp  # noqa: F401 - the receivers are fixtures

pytestmark = pytest.mark.integration
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def ws(tmp_path, receiver, smtp, monkeypatch):
    receiver.requests.clear()
    smtp[0].messages.clear()
    monkeypatch.setenv("LAKEBOOK_ALERTS__CHANNELS__ONCALL__PASSWORD", PASSWORD)
    (tmp_path / "lakebook.yaml").write_text(f"""\
alerts:
  channels:
    hook: {{type: webhook, url: '{receiver.url}', timeout_s: 5}}
    oncall: {{type: email, host: 127.0.0.1, port: {smtp[1]}, from: lakebook@example.com,
              to: [ops@example.com], username: lakebook, timeout_s: 5}}
  routes:
    - {{match: {{severity: critical}}, channels: [hook, oncall], repeat_interval: 1h}}
    - {{match: {{severity: warning}}, channels: [hook], repeat_interval: 1h}}
""")
    return Workspace.load(tmp_path)


def check(name: str, severity: str, status: str = "firing") -> Alert:
    return Alert(title=f"{name} breached", text=f"{name}: newest event 3h 5m ago", severity=severity, status=status,
                 labels={"alertname": name, "check": f"freshness({name})", "kind": "freshness", "severity": severity})


def evaluate(ws, now: datetime, *alerts: Alert) -> None:
    manager = AlertManager(ws)
    manager.receive(list(alerts), now)
    manager.dispatch(now)


def hooks(receiver) -> list[tuple[str, str]]:
    return [(body["status"], body["title"]) for body in (json.loads(r["body"]) for r in receiver.requests)]


def subjects(smtp) -> list[str]:
    return [message_from_bytes(content, policy=default)["Subject"] for _, _, content in smtp[0].messages]


def lakebook(ws, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lakebook", "-w", str(ws.root), *args], capture_output=True,
                          text=True, timeout=180)


def test_routed_alerts_arrive_once_repeat_after_the_interval_and_resolve_once(ws, receiver, smtp):
    for minutes in (0, 5, 30, 55):
        evaluate(ws, T0 + timedelta(minutes=minutes), check("flights_fresh", "critical"), check("rows", "warning"))
    assert sorted(hooks(receiver)) == [("firing", "alertname=flights_fresh: 1 alert firing"),
                                       ("firing", "alertname=rows: 1 alert firing")]
    assert subjects(smtp) == ["[lakebook] critical alertname=flights_fresh: 1 alert firing"]  # warnings: no mail
    evaluate(ws, T0 + timedelta(minutes=61), check("flights_fresh", "critical"), check("rows", "warning"))
    assert len(receiver.requests) == 4 and len(smtp[0].messages) == 2
    for minutes in (70, 75, 80):
        evaluate(ws, T0 + timedelta(minutes=minutes), check("flights_fresh", "critical", "resolved"),
                 check("rows", "warning", "resolved"))
    assert sorted(hooks(receiver)[4:]) == [("resolved", "alertname=flights_fresh: 1 alert resolved"),
                                           ("resolved", "alertname=rows: 1 alert resolved")]
    assert subjects(smtp)[2:] == ["[lakebook] critical alertname=flights_fresh: 1 alert resolved"]


def test_the_cli_silences_and_acks_and_what_it_covers_is_not_sent(ws, receiver, smtp):
    evaluate(ws, T0, check("flights_fresh", "critical"))
    assert len(receiver.requests) == 1
    listed = json.loads(lakebook(ws, "alerts", "list", "--json").stdout)
    [flights] = listed
    acked = lakebook(ws, "alerts", "ack", str(flights["id"]), "--by", "ana")
    assert acked.returncode == 0 and acked.stdout == f"alert {flights['id']} acknowledged by ana\n"
    silenced = lakebook(ws, "alerts", "silence", "--match", "alertname=weather_fresh", "--for", "2h",
                        "--comment", "station maintenance")
    assert silenced.returncode == 0, silenced.stderr
    now = datetime.now(timezone.utc)
    evaluate(ws, now, check("flights_fresh", "critical"), check("weather_fresh", "warning"))
    evaluate(ws, now + timedelta(minutes=90), check("flights_fresh", "critical"),  # past repeat_interval: acked,
             check("weather_fresh", "warning"))  # and silenced for 2h
    assert len(receiver.requests) == 1 and len(smtp[0].messages) == 1
    table = lakebook(ws, "alerts", "list").stdout
    assert "acked by ana" in table and "silenced" in table
    bad = lakebook(ws, "alerts", "ack", "999")
    assert bad.returncode != 0 and "no alert 999" in bad.stderr and "lakebook alerts list" in bad.stderr


def test_catalog_impact_lists_the_downstream_tables_and_feature_views(flights_ws):
    from lakebook.catalog import open_catalog

    ws = flights_ws  # a Workspace
    catalog = open_catalog(ws)
    # Read upwards, table by table: every table with raw.flights among its upstream is downstream of it.
    below = sorted(t.qualified_name for t in catalog.tables()
                   if any(e["upstream"] == "raw.flights" for e in catalog.lineage(t.qualified_name)))
    assert below and any(name.startswith("features.") for name in below)
    shown = lakebook(ws, "catalog", "impact", "raw.flights", "--json")
    assert shown.returncode == 0, shown.stderr
    found = json.loads(shown.stdout)
    assert [t for t in found["tables"] if not t.startswith("job:")] == found["tables"]
    assert set(below) <= set(found["tables"])
    views = {"origin_delays": "features.origin_delays", "carrier_daily": "features.carrier_daily",
             "plane_stats": "features.plane_stats", "origin_weather": "features.origin_weather"}
    assert {view for view, table in views.items() if table in below} == set(found["feature_views"]) & set(views)
    assert {"origin_delays", "carrier_daily"} <= set(found["feature_views"])
    assert found["feature_services"] == ["flight_delay_v1"]
    text = lakebook(ws, "catalog", "impact", "flights").stdout
    assert text.startswith("downstream of raw.flights:\n") and "feature views: " in text
    unknown = lakebook(ws, "catalog", "impact", "raw.flight")
    assert unknown.returncode != 0 and "did you mean raw.flights?" in unknown.stderr
