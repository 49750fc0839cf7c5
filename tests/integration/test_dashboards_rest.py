"""The Dashboards panel's REST API on a real Jupyter server (pytest-jupyter) whose root is a
workspace: publish a notebook as the Lab names it, list it, take a snapshot (Papermill on a
real kernel, off the server's event loop), mint share links (the Lab user's short-lived one
and one with a chosen expiry), unpublish; errors in lakebook's one shape; and the server
checks its token and XSRF on writes."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timezone

import pytest
from tornado.httpclient import HTTPClientError
from traitlets.config import Config

from dashboard_support import MARKER, write_dashboard
from lakebook._proc import free_port
from lakebook.dashboards.store import DashboardStore

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("jp_server_cleanup"), pytest.mark.timeout(300)]


@pytest.fixture
def jp_root_dir(workspace):
    """The Lab runs in the workspace, as `lakebook up` starts it; its dashboard server's port is
    one that nothing listens on."""
    write_dashboard(workspace.root)
    with open(workspace.root / "lakebook.yaml", "a") as settings:
        settings.write(f"\ndashboards:\n  port: {free_port()}\n")
    return workspace.root


@pytest.fixture
def jp_server_config(workspace) -> Config:
    return Config({"ServerApp": {"jpserver_extensions": {"lakebook": True}},
                   "LakebookApp": {"workspace": str(workspace.root)}})


async def call(jp_fetch, *parts, body=None, method=None, **kwargs) -> tuple[int, dict]:
    """(status, JSON body) of a request to /lakebook/api/dashboards/...; POST when there is a body."""
    if body is not None:
        kwargs.update(method="POST", body=json.dumps(body))
    if method:
        kwargs["method"] = method
    try:
        response = await jp_fetch("lakebook", "api", "dashboards", *parts, **kwargs)
    except HTTPClientError as exc:
        return exc.code, json.loads(exc.response.body)
    assert response.headers["Content-Type"].startswith("application/json")
    return response.code, json.loads(response.body)


def _hours_left(link: dict) -> float:
    return (datetime.fromisoformat(link["expires_at"]) - datetime.now(timezone.utc)).total_seconds() / 3600


async def test_publish_list_snapshot_share_open_and_unpublish(jp_fetch, workspace):
    status, row = await call(jp_fetch, body={"notebook": "notebooks/delays.ipynb"})
    assert status == 201 and (row["name"], row["notebook"]) == ("delays", "notebooks/delays.ipynb"), row
    status, listing = await call(jp_fetch)
    assert status == 200 and [d["name"] for d in listing["dashboards"]] == ["delays"]
    assert listing["dashboards"][0]["last_snapshot"] is None
    assert listing["server"]["running"] is False  # no dashboard server in this test

    ticks = 0

    async def tick():  # the server's loop stays free while the snapshot's kernel runs
        nonlocal ticks
        while True:
            await asyncio.sleep(0.1)
            ticks += 1

    ticker = asyncio.ensure_future(tick())
    started = time.monotonic()
    status, taken = await call(jp_fetch, "delays", "snapshot", body={}, request_timeout=240)
    took_s = time.monotonic() - started
    ticker.cancel()
    assert status == 200, taken
    assert taken["snapshot"]["url_path"].startswith("/snapshots/delays/") and taken["last_snapshot"].endswith("Z")
    assert ticks >= took_s / 0.1 * 0.5, (ticks, took_s)
    with DashboardStore(workspace) as store:
        [shot] = store.snapshots("delays")
        assert MARKER in open(shot.html_path).read() and shot.created_by.startswith("lab:")
    status, listing = await call(jp_fetch)
    assert listing["dashboards"][0]["last_snapshot"] == taken["last_snapshot"]

    status, opened = await call(jp_fetch, "delays", "open", body={})
    assert status == 201 and 7.9 < _hours_left(opened) <= 8 and "/d/delays?share=lbs1." in opened["url"]
    status, shared = await call(jp_fetch, "delays", "share", body={"expires": "1d"})
    assert status == 201 and 23.9 < _hours_left(shared) <= 24
    status, default = await call(jp_fetch, "delays", "share", body={})
    assert status == 201 and 7 * 24 - 0.1 < _hours_left(default) <= 7 * 24

    status, gone = await call(jp_fetch, "delays", method="DELETE")
    assert (status, gone) == (200, {"name": "delays", "unpublished": True})
    with DashboardStore(workspace) as store:
        assert all(store.share(link["id"]).revoked for link in (opened, shared, default))
    status, listing = await call(jp_fetch)
    assert listing["dashboards"] == []


async def test_errors_are_lakebooks_json_with_a_hint(jp_fetch):
    status, answer = await call(jp_fetch, body={"notebook": "notebooks/missing.ipynb"})
    assert status == 404 and answer["error"]["message"] == "notebook: no .ipynb file notebooks/missing.ipynb"
    assert answer["error"]["hint"]
    status, answer = await call(jp_fetch, body={"notebook": "notebooks/delays.ipynb", "name": "Bad Name"})
    assert status == 400 and "is not a dashboard name" in answer["error"]["message"]
    status, answer = await call(jp_fetch, body={"notebook": "notebooks/delays.ipynb", "pool": 2})
    assert status == 422 and answer["error"]["message"].startswith("invalid parameters: pool")
    status, answer = await call(jp_fetch, "nope", "open", body={})
    assert status == 404 and answer["error"]["message"] == "no dashboard 'nope'"
    status, answer = await call(jp_fetch, body={"notebook": "notebooks/delays.ipynb"})
    assert status == 201
    status, answer = await call(jp_fetch, "delays", "share", body={"expires": "soon"})
    assert status == 400 and answer["error"]["hint"].startswith("write a duration")


async def test_without_the_servers_token_or_xsrf_nothing_is_published(jp_fetch, workspace):
    for headers in ({"Authorization": ""}, {"Authorization": "", "Cookie": "_xsrf=x"}):
        status, _ = await call(jp_fetch, body={"notebook": "notebooks/delays.ipynb"}, headers=headers)
        assert status == 403
    with DashboardStore(workspace) as store:
        assert store.dashboards() == []
