"""The alert manager on a real SQLite catalog, driving ``now`` by hand: routes and matchers,
grouping, repeat_interval, resolve notices, silences, acks, failed channels tried again, and
the routing table's config errors. Messages go to ``lab`` channels, read back from the inbox."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from lakebook.alerts import Alert, Inbox
from lakebook.config import load_settings
from lakebook.errors import AlertError, ConfigError, NotFound
from lakebook.monitor import AlertManager
from lakebook.monitor.alertstore import AlertStore
from lakebook.monitor.impact import downstream
from lakebook.monitor.routing import parse_matcher
from lakebook.workspace import Workspace

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
ROUTES = """alerts:
  channels:
    pager: {type: lab}
    chat: {type: lab}
  routes:
    - {match: {severity: critical}, channels: [pager, chat], repeat_interval: 1h, continue: false}
    - {match_re: {alertname: 'job_.*'}, channels: [chat], group_by: [], repeat_interval: 2h}
    - {channels: [chat], repeat_interval: 30m}
"""


def check(name: str, severity: str = "warning", status: str = "firing", **labels) -> Alert:
    return Alert(title=f"{name} breached", text=f"{name}: measured 3h", severity=severity, status=status,
                 labels={"alertname": name, "check": f"freshness({name})", "kind": "freshness",
                         "severity": severity, **labels})


@pytest.fixture
def ws(workspace_dir: Path) -> Workspace:
    config = workspace_dir / "lakebook.yaml"
    config.write_text(config.read_text() + "\n" + ROUTES)
    return Workspace.load(workspace_dir)


def inbox_titles(ws, channel: str) -> list[str]:
    with Inbox(ws) as inbox:
        return [f"{a['status']}: {a['title']}" for a in reversed(inbox.alerts(limit=500)) if a["channel"] == channel]


def evaluate(ws, now: datetime, *alerts: Alert) -> dict:
    manager = AlertManager(ws)
    manager.receive(list(alerts), now)
    return manager.dispatch(now)


def test_a_firing_alert_goes_once_to_its_route_then_again_after_repeat_interval(ws):
    for minutes in (0, 5, 10, 59):
        evaluate(ws, T0 + timedelta(minutes=minutes), check("flights_fresh", "critical", table="raw.flights"))
    assert inbox_titles(ws, "pager") == ["firing: alertname=flights_fresh: 1 alert firing"]
    evaluate(ws, T0 + timedelta(minutes=60), check("flights_fresh", "critical", table="raw.flights"))
    assert len(inbox_titles(ws, "pager")) == 2
    assert inbox_titles(ws, "chat") == inbox_titles(ws, "pager")  # the first route names both
    with Inbox(ws) as inbox:
        text = inbox.alerts()[0]["text"]
    assert "flights_fresh: measured 3h" in text and "impact (downstream of raw.flights):" in text


def test_one_resolve_notice_when_the_group_has_resolved(ws):
    evaluate(ws, T0, check("flights_fresh", "critical"))
    evaluate(ws, T0 + timedelta(minutes=5), check("flights_fresh", "critical", status="resolved"))
    evaluate(ws, T0 + timedelta(minutes=10))
    evaluate(ws, T0 + timedelta(hours=3))
    assert inbox_titles(ws, "pager") == ["firing: alertname=flights_fresh: 1 alert firing",
                                         "resolved: alertname=flights_fresh: 1 alert resolved"]
    evaluate(ws, T0 + timedelta(hours=4), check("flights_fresh", "critical"))  # fires anew: sent at once
    assert len(inbox_titles(ws, "pager")) == 3


def test_first_matching_route_takes_the_alert_and_group_by_makes_one_message(ws):
    evaluate(ws, T0, check("job_nightly", job="nightly"), check("job_report", job="report"),
             check("weather_fresh", table="raw.weather"))
    assert inbox_titles(ws, "pager") == []
    assert inbox_titles(ws, "chat") == ["firing: all alerts: 2 alerts firing",
                                        "firing: alertname=weather_fresh: 1 alert firing"]
    with Inbox(ws) as inbox:
        grouped = next(a for a in inbox.alerts() if a["title"].startswith("all alerts"))
    assert "job_nightly breached" in grouped["text"] and "job_report breached" in grouped["text"]
    # no group labels (group_by: []); the labels both alerts share, as Alertmanager's commonLabels
    assert grouped["labels"] == {"kind": "freshness", "severity": "warning"} and grouped["severity"] == "warning"


def test_an_alert_joining_a_group_sends_it_again_at_once(ws):
    evaluate(ws, T0, check("job_nightly", job="nightly"))
    evaluate(ws, T0 + timedelta(minutes=5), check("job_nightly", job="nightly"), check("job_report", job="report"))
    evaluate(ws, T0 + timedelta(minutes=10), check("job_nightly", job="nightly"), check("job_report", job="report"))
    assert inbox_titles(ws, "chat") == ["firing: all alerts: 1 alert firing", "firing: all alerts: 2 alerts firing"]


def test_a_silenced_alert_is_not_sent_and_its_group_is_recorded_suppressed(ws):
    with AlertStore(ws) as store:
        store.add_silence([parse_matcher("alertname=~weather_.*")], T0, T0 + timedelta(hours=1), "maintenance", "ana")
    evaluate(ws, T0, check("weather_fresh"))
    evaluate(ws, T0 + timedelta(minutes=30), check("weather_fresh"))
    assert inbox_titles(ws, "chat") == []
    with AlertStore(ws) as store:
        assert [n["status"] for n in store.notifications()] == ["suppressed"]
    evaluate(ws, T0 + timedelta(hours=1), check("weather_fresh"))  # the silence has ended
    assert inbox_titles(ws, "chat") == ["firing: alertname=weather_fresh: 1 alert firing"]


def test_an_acked_alert_is_not_repeated_until_it_fires_anew(ws):
    evaluate(ws, T0, check("flights_fresh", "critical"))
    with AlertStore(ws) as store:
        [row] = store.alerts()
    assert AlertManager(ws).ack(row["id"], "ana", T0)["acked_by"] == "ana"
    evaluate(ws, T0 + timedelta(hours=2), check("flights_fresh", "critical"))
    assert len(inbox_titles(ws, "pager")) == 1
    evaluate(ws, T0 + timedelta(hours=3), check("flights_fresh", "critical", status="resolved"))
    evaluate(ws, T0 + timedelta(hours=4), check("flights_fresh", "critical"))
    assert [t.split(":")[0] for t in inbox_titles(ws, "pager")] == ["firing", "resolved", "firing"]
    with AlertStore(ws) as store:
        assert store.alerts()[0]["acked_at"] is None


def test_ack_of_an_unknown_alert_names_the_list_command(ws):
    with pytest.raises(NotFound, match="no alert 42") as info:
        AlertManager(ws).ack(42, "ana", T0)
    assert "lakebook alerts list" in info.value.hint


def test_a_failed_channel_is_tried_again_at_the_next_dispatch(ws, workspace_dir):
    config = workspace_dir / "lakebook.yaml"
    config.write_text(config.read_text().replace("chat: {type: lab}",
                                                 "chat: {type: webhook, url: 'http://127.0.0.1:9/hook', timeout_s: 1}"))
    broken = Workspace.load(workspace_dir)
    sent = evaluate(broken, T0, check("flights_fresh", "critical"))
    [errors] = sent.values()
    assert errors["pager"] is None and errors["chat"]
    with AlertStore(broken) as store:
        assert store.notifications()[0]["pending"] == ["chat"]
    again = evaluate(broken, T0 + timedelta(minutes=1), check("flights_fresh", "critical"))
    assert [sorted(e) for e in again.values()] == [["chat"]]  # only the failed channel, not the pager again
    assert len(inbox_titles(broken, "pager")) == 1


def test_without_routes_every_alert_goes_to_every_channel(workspace_dir):
    config = workspace_dir / "lakebook.yaml"
    config.write_text(config.read_text() + "\nalerts:\n  channels:\n    a: {type: lab}\n    b: {type: lab}\n")
    ws = Workspace.load(workspace_dir)
    evaluate(ws, T0, check("flights_fresh"))
    assert inbox_titles(ws, "a") == inbox_titles(ws, "b") == ["firing: alertname=flights_fresh: 1 alert firing"]


def test_two_managers_dispatching_the_same_decision_send_it_once(ws):
    first, second = AlertManager(ws), AlertManager(ws)
    first.receive([check("flights_fresh", "critical")], T0)
    with AlertStore(ws) as store:
        seen = store.notifications()
    assert seen == []
    assert first.dispatch(T0) and second.dispatch(T0) == {}
    assert len(inbox_titles(ws, "pager")) == 1


@pytest.mark.parametrize("route, expected", [
    ("{channels: [pagr]}", "routes[0].channels: unknown channel 'pagr' (did you mean 'pager'?"),
    ("{channels: [pager], matchh: {a: b}}", "alerts.routes.0.matchh: unknown key; did you mean 'match'?"),
    ("{channels: [pager], match_re: {a: '('}}", "match_re.a: '(' is not a regular expression"),
    ("{channels: []}", "alerts.routes.0.channels: List should have at least 1 item"),
])
def test_a_bad_route_is_an_error_naming_the_key(tmp_path, route, expected):
    (tmp_path / "lakebook.yaml").write_text(f"alerts:\n  channels:\n    pager: {{type: lab}}\n  routes:\n    - {route}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path / "lakebook.yaml", environ={})
    assert expected in str(info.value)


def test_route_durations_read_units(tmp_path):
    (tmp_path / "lakebook.yaml").write_text(
        "alerts:\n  channels:\n    p: {type: lab}\n  routes:\n    - {channels: [p], repeat_interval: 30m, group_wait: 10s}\n")
    [route] = load_settings(tmp_path / "lakebook.yaml", environ={}).alerts.routes
    assert (route.repeat_interval, route.group_wait, route.send_resolved, route.continue_) == (1800, 10, True, False)


@pytest.mark.parametrize("text, expected", [
    ("table=raw.flights", ("table", "=", "raw.flights")),
    ("alertname=~job_.*", ("alertname", "=~", "job_.*")),
    ("severity!=info", ("severity", "!=", "info")),
])
def test_matchers_parse(text, expected):
    assert parse_matcher(text) == expected


def test_a_bad_matcher_says_how_to_write_one():
    with pytest.raises(AlertError, match="is not label=value"):
        parse_matcher("just-a-word")


def test_downstream_follows_tables_and_job_nodes_transitively():
    edges = [("raw.flights", "warehouse.flights"), ("warehouse.flights", "job:report"),
             ("job:report", "warehouse.report"), ("raw.weather", "warehouse.weather")]
    assert downstream(edges, "raw.flights") == ["warehouse.flights", "job:report", "warehouse.report"]


def lakebook(ws: Workspace, *args: str):
    from click.testing import CliRunner

    from lakebook.cli import cli

    return CliRunner().invoke(cli, ["-w", str(ws.root), *args], obj={}, catch_exceptions=False)


def test_the_cli_lists_acks_and_silences_alerts(ws):
    AlertManager(ws).receive([check("flights_fresh", "critical", table="raw.flights"), check("weather_fresh")],
                             datetime.now(timezone.utc))
    listed = json.loads(lakebook(ws, "alerts", "list", "--json").output)
    assert {a["labels"]["alertname"]: a["state"] for a in listed} == {"flights_fresh": "firing",
                                                                      "weather_fresh": "firing"}
    flights = next(a["id"] for a in listed if a["labels"]["alertname"] == "flights_fresh")
    assert lakebook(ws, "alerts", "ack", str(flights), "--by", "ana").output == f"alert {flights} acknowledged by ana\n"
    out = lakebook(ws, "alerts", "silence", "--match", "alertname=weather_fresh", "--for", "2h",
                   "--comment", "known outage", "--by", "bo").output
    assert out.startswith("silence 1 until ") and out.endswith("alertname=weather_fresh\n")
    table = lakebook(ws, "alerts", "list").output
    assert "acked by ana" in table and "silenced" in table
    [silence] = json.loads(lakebook(ws, "alerts", "silences", "--json").output)
    assert (silence["comment"], silence["created_by"]) == ("known outage", "bo")
    assert lakebook(ws, "alerts", "unsilence", "1").output == "silence 1 ended\n"
    assert lakebook(ws, "alerts", "silences").output == "no silences\n"
    assert len(json.loads(lakebook(ws, "alerts", "silences", "--json", "--all").output)) == 1
