"""The Dashboards panel API's pieces that need no server or kernel: the list with its times and
the dashboard server's state, notebooks published as the Lab names them (refused outside the
Lab's root or the workspace), unpublish, share links with a chosen expiry, and the short-lived
link the Lab mints for its user, each recorded with that user and checked as the dashboard
server checks it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from dashboard_support import write_dashboard
from lakebook._proc import free_port
from lakebook.dashboards.store import DashboardStore
from lakebook.dashboards.tokens import check, share_secret
from lakebook.errors import BadRequest, DashboardError, NotFound, UnknownDashboard
from lakebook.server.dashboards import DashboardsAPI, PublishRequest, ShareRequest, server_answers
from lakebook.server.handlers import error_status


class Probe(list):
    """The dashboard server's health as the test sets it; the addresses asked about."""

    def __init__(self, answers: bool):
        super().__init__()
        self.answers = answers

    def __call__(self, url: str) -> bool:
        self.append(url)
        return self.answers


@pytest.fixture
def api(workspace) -> DashboardsAPI:
    write_dashboard(workspace.root)
    return DashboardsAPI(lambda: workspace, workspace.root, probe=Probe(False))


def _hours_left(link: dict) -> float:
    return (datetime.fromisoformat(link["expires_at"]) - datetime.now(timezone.utc)) / timedelta(hours=1)


def _check(ws, link: dict, dashboard: str = "delays") -> None:
    token = link["url"].split("share=", 1)[1]
    with DashboardStore(ws) as store:
        check(share_secret(ws.share_key_path), token, store.share(link["id"]), dashboard)


def test_publish_from_the_lab_path_lists_it_with_iso_times_and_the_server_state(api, workspace):
    row = api.publish(PublishRequest(notebook="notebooks/delays.ipynb"), "ada")
    assert (row["name"], row["notebook"], row["published_by"]) == ("delays", "notebooks/delays.ipynb", "lab:ada")
    assert row["published_at"].endswith("Z") and row["last_snapshot"] is None
    api.probe = Probe(True)
    answer = api.dashboards_json()
    port = workspace.settings.dashboards.port
    assert answer["server"] == {"url": f"http://127.0.0.1:{port}", "running": True}
    assert api.probe == [f"http://127.0.0.1:{port}"]
    [listed] = answer["dashboards"]
    assert (listed["name"], listed["url"]) == ("delays", f"http://127.0.0.1:{port}/d/delays")


def test_publish_under_a_name_of_ones_own(api):
    assert api.publish(PublishRequest(notebook="notebooks/delays.ipynb", name="airport_delays"), "ada")["name"] \
        == "airport_delays"
    with pytest.raises(DashboardError, match="not a dashboard name"):
        api.publish(PublishRequest(notebook="notebooks/delays.ipynb", name="Bad Name"), "ada")


def test_publish_refuses_a_missing_notebook_a_path_outside_the_lab_and_unknown_fields(api, workspace):
    with pytest.raises(NotFound, match="notebook: no .ipynb file notebooks/missing.ipynb"):
        api.publish(PublishRequest(notebook="notebooks/missing.ipynb"), "ada")
    write_dashboard(workspace.root.parent, "elsewhere.ipynb")
    with pytest.raises(BadRequest, match="outside the Jupyter server's folder"):
        api.publish(PublishRequest(notebook="../elsewhere.ipynb"), "ada")
    with pytest.raises(ValidationError):
        PublishRequest.model_validate({"notebook": "notebooks/delays.ipynb", "pool": 3})
    assert api.dashboards_json()["dashboards"] == []  # nothing published by a refused request


def test_a_notebook_of_the_lab_outside_the_workspace_is_refused(workspace):
    lab_root = workspace.root.parent
    write_dashboard(lab_root, "scratch/mine.ipynb")
    api = DashboardsAPI(lambda: workspace, lab_root, probe=Probe(False))
    with pytest.raises(DashboardError, match="is not a notebook of the workspace") as refused:
        api.publish(PublishRequest(notebook="scratch/mine.ipynb"), "ada")
    assert error_status(refused.value)[0] == 400


def test_unpublish_and_unknown_dashboards(api):
    api.publish(PublishRequest(notebook="notebooks/delays.ipynb"), "ada")
    assert api.unpublish("delays") == {"name": "delays", "unpublished": True}
    with pytest.raises(UnknownDashboard) as unknown:
        api.unpublish("delays")
    assert error_status(unknown.value)[:2] == (404, "no dashboard 'delays'")
    with pytest.raises(UnknownDashboard):
        api.open_link("delays", "ada")


def test_a_share_link_has_the_chosen_expiry_else_the_default_and_is_valid(api, workspace):
    api.publish(PublishRequest(notebook="notebooks/delays.ipynb"), "ada")
    week = api.share("delays", ShareRequest(), "ada")
    assert 7 * 24 - 0.1 < _hours_left(week) <= 7 * 24
    day = api.share("delays", ShareRequest(expires="1d"), "ada")
    assert 23.9 < _hours_left(day) <= 24 and day["expires_at"].endswith("Z")
    _check(workspace, day)
    with DashboardStore(workspace) as store:
        assert store.share(day["id"]).created_by == "lab:ada"
    with pytest.raises(DashboardError, match="is not a positive duration"):
        api.share("delays", ShareRequest(expires="soon"), "ada")


def test_the_labs_open_link_is_short_lived_for_its_user_and_configurable(api, workspace, monkeypatch):
    api.publish(PublishRequest(notebook="notebooks/delays.ipynb"), "ada")
    link = api.open_link("delays", "ada")
    assert 7.9 < _hours_left(link) <= 8
    assert link["url"].startswith(f"http://127.0.0.1:{workspace.settings.dashboards.port}/d/delays?share=lbs1.")
    _check(workspace, link)
    with DashboardStore(workspace) as store:
        assert store.share(link["id"]).created_by == "lab:ada"
    monkeypatch.setattr(workspace.settings.dashboards, "lab_link_expires", "30m")
    assert 0.45 < _hours_left(api.open_link("delays", "ada")) <= 0.5


def test_the_server_state_is_false_when_nothing_answers():
    assert server_answers(f"http://127.0.0.1:{free_port()}") is False
