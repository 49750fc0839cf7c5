"""The Alerts panel in a real browser: `lakebook up` on a workspace whose monitor service is off,
so the one alert is the one this test puts in the catalog database through the alert manager
(no check involved); its sidebar tab counts it, the panel lists it, and "Ack" acknowledges it
through the Lab's REST API: the badge goes, and the alert (under "all") is marked acked."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest

from browser_support import ARTIFACTS, lab_environment, lakebook_up, open_lab, open_side_panel
from ingest_support import make_workspace
from lakebook.alerts import Alert
from lakebook.monitor import AlertManager
from lakebook.workspace import Workspace

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

PANEL = "lakebook-alerts-panel"
TITLE = "freshness(raw.flights) is 3 h, above 2 h"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """`lakebook up` (no sample data, no monitor service: no check raises an alert of its own):
    (base URL, token, root)."""
    root = make_workspace(tmp_path_factory.mktemp("alerts-browser") / "ws", "name: alerts\nmonitor:\n  enabled: false\n")
    with lakebook_up(root, lab_environment(tmp_path_factory.mktemp("home")), options=("--no-sample",)) as (base, token):
        yield base, token, root


def fire(root) -> None:
    """A firing alert, as the monitor engine hands one to the alert manager after an evaluation."""
    now = datetime.now(timezone.utc)
    manager = AlertManager(Workspace.load(root))
    manager.receive([Alert(title=TITLE, text="The newest flight event arrived 3 h ago.", severity="critical",
                           status="firing", labels={"alertname": "flights_fresh", "check": "freshness(raw.flights)",
                                                    "kind": "freshness", "severity": "critical"})], now)
    manager.dispatch(now)


def test_the_tab_counts_the_open_alert_and_ack_acknowledges_it(lab, page):
    base, token, root = lab
    fire(root)
    open_lab(page, base, token)
    badge = page.locator(f'.jp-SideBar [data-id="{PANEL}"] .lakebook-alerts-badge')
    badge.wait_for()  # the Lab reads the alerts every 5 s, shown or not
    assert badge.inner_text() == "1"

    panel = open_side_panel(page, PANEL)
    row = panel.locator('[data-alertname="flights_fresh"]')
    row.wait_for()
    assert row.get_attribute("data-open") == "true"
    assert row.get_attribute("data-severity") == "critical"
    assert row.locator('[data-cell="title"]').inner_text() == TITLE
    assert re.fullmatch(r"started (just now|\d+ min ago)", row.locator('[data-cell="since"]').inner_text())
    assert row.locator(".lakebook-alert-label").all_inner_texts() == ["check=freshness(raw.flights)", "kind=freshness"]
    assert panel.locator('[data-cell="count"]').inner_text() == "1 open of 1"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "alerts-panel.png"))

    row.locator(".lakebook-alert-ack").click()
    badge.wait_for(state="detached")  # acked: no longer open, so no badge at all
    assert row.count() == 0  # gone from the "open" list
    assert panel.locator(".lakebook-empty").inner_text().startswith("No open alert (1 acked, silenced or resolved")

    panel.locator('[data-filter="all"]').click()
    row.wait_for()
    acked = row.locator('[data-mark="acked"]')
    assert acked.inner_text().startswith("acked by "), acked.inner_text()
    assert row.get_attribute("data-open") == "false"
    assert row.locator(".lakebook-alert-ack").count() == 0
    assert page.locator(f'.jp-SideBar [data-id="{PANEL}"]').get_attribute("data-open-alerts") == "0"
