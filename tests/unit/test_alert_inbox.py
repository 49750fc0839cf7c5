"""The ``lab`` alert channel: its settings, and the inbox it writes in the catalog database
(SQLite here): insert, the cap per channel, reading after an id, marking read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lakebook.alerts import Alert, Inbox, notify
from lakebook.config import load_settings
from lakebook.errors import ConfigError, NotFound
from lakebook.workspace import Workspace

LAB = "alerts:\n  channels:\n    lab: {type: lab}\n    bell: {type: lab, keep: 3}\n"


def alert(n: int, severity: str = "critical", **fields) -> Alert:
    return Alert(title=f"job report: run {n} failure", text=f"ValueError: boom {n}", severity=severity,
                 labels={"job": "report", "run": str(n), "event": "failure"}, status="firing", **fields)


@pytest.fixture
def lab_ws(workspace_dir: Path) -> Workspace:
    config = workspace_dir / "lakebook.yaml"
    config.write_text(config.read_text() + "\n" + LAB)
    return Workspace.load(workspace_dir)


@pytest.fixture
def inbox(lab_ws):
    with Inbox(lab_ws) as inbox:
        yield inbox


def test_a_lab_channel_validates_with_a_default_cap(tmp_path):
    (tmp_path / "lakebook.yaml").write_text(LAB + "    short: lab\n")
    channels = load_settings(tmp_path / "lakebook.yaml", environ={}).alerts.channels
    assert [(c.type, c.keep) for c in (channels["lab"], channels["bell"], channels["short"])] == [
        ("lab", 1000), ("lab", 3), ("lab", 1000)]


@pytest.mark.parametrize("channel, expected", [
    ("{type: lab, kep: 10}", "alerts.channels.lab: unknown key 'kep' for type lab; did you mean 'keep'? "
                             "(allowed keys: keep)"),
    ("{type: lab, keep: 0}", "alerts.channels.lab: keep: Input should be greater than or equal to 1"),
])
def test_a_bad_lab_channel_is_an_error_naming_the_key(tmp_path, channel, expected):
    (tmp_path / "lakebook.yaml").write_text(f"alerts:\n  channels:\n    lab: {channel}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path / "lakebook.yaml", environ={})
    assert expected in str(info.value)


def test_notify_records_the_alert_in_the_inbox(lab_ws, inbox):
    assert notify(lab_ws, ["lab"], alert(7, url="http://127.0.0.1:8888/lab/tree/x.ipynb")) == {"lab": None}
    [entry] = inbox.alerts()
    assert (entry["channel"], entry["severity"], entry["title"], entry["text"], entry["status"], entry["read"]) == (
        "lab", "critical", "job report: run 7 failure", "ValueError: boom 7", "firing", False)
    assert entry["labels"] == {"job": "report", "run": "7", "event": "failure"}
    assert entry["url"] == "http://127.0.0.1:8888/lab/tree/x.ipynb"
    assert entry["created_at"].tzinfo is not None


def test_each_channel_keeps_only_its_newest_alerts(inbox):
    bell = [inbox.add("bell", alert(n), keep=3) for n in range(5)]
    lab = [inbox.add("lab", alert(n), keep=1000) for n in range(2)]
    assert [a["id"] for a in inbox.alerts()] == [*reversed(lab), *reversed(bell[2:])]
    inbox.add("bell", alert(5), keep=3)
    assert [a["title"] for a in inbox.alerts() if a["channel"] == "bell"] == [
        "job report: run 5 failure", "job report: run 4 failure", "job report: run 3 failure"]


def test_alerts_after_an_id_come_newest_first_within_the_limit(inbox):
    ids = [inbox.add("lab", alert(n), keep=1000) for n in range(6)]
    assert [a["id"] for a in inbox.alerts(after=ids[2])] == ids[:2:-1]
    assert [a["id"] for a in inbox.alerts(after=ids[2], limit=2)] == [ids[5], ids[4]]
    assert inbox.alerts(after=ids[-1]) == []


def test_marking_read_one_alert_or_all(inbox):
    ids = [inbox.add("lab", alert(n), keep=1000) for n in range(3)]
    assert inbox.mark_read(ids[1]) == 1
    assert inbox.mark_read(ids[1]) == 0  # already read: nothing changes
    assert [a["id"] for a in inbox.alerts(unread_only=True)] == [ids[2], ids[0]]
    assert inbox.unread_count() == 2
    assert inbox.mark_read() == 2
    assert inbox.alerts(unread_only=True) == [] and len(inbox.alerts()) == 3


def test_marking_an_unknown_alert_read_is_a_not_found_with_a_hint(inbox):
    with pytest.raises(NotFound) as info:
        inbox.mark_read(42)
    assert info.value.message == "no alert 42 in the inbox" and "lakebook alerts inbox --all" in info.value.hint


def lakebook(ws: Workspace, *args: str):
    from click.testing import CliRunner

    from lakebook.cli import cli

    return CliRunner().invoke(cli, ["-w", str(ws.root), *args], obj={}, catch_exceptions=False)


def test_the_cli_lists_unread_alerts_and_marks_them_read(lab_ws, inbox):
    first, second = inbox.add("lab", alert(1), keep=1000), inbox.add("lab", alert(2, "warning"), keep=1000)
    listed = json.loads(lakebook(lab_ws, "alerts", "inbox", "--json").output)
    assert [(a["id"], a["severity"], a["title"]) for a in listed] == [
        (second, "warning", "job report: run 2 failure"), (first, "critical", "job report: run 1 failure")]
    assert lakebook(lab_ws, "alerts", "read", str(first)).output == f"alert {first} marked read\n"
    assert [a["id"] for a in json.loads(lakebook(lab_ws, "alerts", "inbox", "--json").output)] == [second]
    assert [a["id"] for a in json.loads(lakebook(lab_ws, "alerts", "inbox", "--json", "--all").output)] == [second, first]
    assert lakebook(lab_ws, "alerts", "read").output == "1 alerts marked read\n"
    assert lakebook(lab_ws, "alerts", "inbox").output == "no unread alerts\n"
    table = lakebook(lab_ws, "alerts", "inbox", "--all").output
    assert "job report: run 2 failure" in table and "critical" in table
