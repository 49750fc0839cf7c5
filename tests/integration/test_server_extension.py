"""The Lake panel's REST API on a real Jupyter server (pytest-jupyter), over a real workspace:
events go through the ingest log and the flusher into the lake, a DuckDB transform builds
a warehouse table (a lineage edge), and the API reads it all back."""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

import pytest
from tornado.httpclient import HTTPClientError
from traitlets.config import Config

from events import flight, log_events, weather
from ingest_support import make_workspace

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("jp_server_cleanup"), pytest.mark.timeout(180)]

REPO = Path(__file__).resolve().parents[2]
FLIGHTS, WEATHER = 40, 30


def _fill(root: Path, first_flight: int = 0, flights: int = FLIGHTS, weathers: int = WEATHER) -> None:
    """Log events as the ingest server does, then flush them to the lake with the real flusher."""
    from lakebook.ingest import flush_ingest_log_to_raw
    from lakebook.workspace import Workspace

    ws = Workspace.load(root)
    assert not log_events(ws, "flights", [flight(i) for i in range(first_flight, first_flight + flights)])["rejected"]
    if weathers:
        assert not log_events(ws, "weather", [weather(i) for i in range(weathers)])["rejected"]
    flush_ingest_log_to_raw(ws)


@pytest.fixture(scope="module")
def lake_template(tmp_path_factory) -> Path:
    """A workspace with flights and weather in the raw lake and warehouse.weather_hourly
    built from raw.weather by the DuckDB engine."""
    from lakebook.transform import run_transforms
    from lakebook.workspace import Workspace

    root = make_workspace(tmp_path_factory.mktemp("lake") / "ws", "name: panel\n")
    (root / "transforms").mkdir()
    shutil.copy(REPO / "transforms" / "weather_hourly.sql", root / "transforms")
    (root / "notebooks").mkdir()
    _fill(root)
    results = run_transforms(Workspace.load(root), engine="duckdb")
    assert [(r.name, r.status) for r in results] == [("warehouse.weather_hourly", "ok")]
    return root


@pytest.fixture
def lake_ws(lake_template, tmp_path) -> Path:
    root = tmp_path / "ws"
    shutil.copytree(lake_template, root, symlinks=True)
    return root


@pytest.fixture
def jp_root_dir(lake_ws) -> Path:
    """The server starts in the workspace's notebooks/ folder: the workspace is found upwards."""
    return lake_ws / "notebooks"


@pytest.fixture
def jp_server_config() -> Config:
    return Config({"ServerApp": {"jpserver_extensions": {"lakebook": True}}})


async def get_json(jp_fetch, *parts, **kwargs) -> dict:
    response = await jp_fetch("lakebook", "api", *parts, **kwargs)
    assert response.code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    return json.loads(response.body)


async def get_error(jp_fetch, *parts, **kwargs) -> tuple[int, dict]:
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch("lakebook", "api", *parts, **kwargs)
    return caught.value.code, json.loads(caught.value.response.body)


def _iso(text: str) -> datetime:
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text)


async def test_catalog_lists_zones_tables_columns_rows_and_freshness(jp_fetch):
    doc = await get_json(jp_fetch, "catalog")
    assert doc["workspace"] == "panel"
    _iso(doc["generated_at"])
    assert [z["name"] for z in doc["zones"]] == ["blobs", "quarantine", "raw", "warehouse"]
    raw = {t["name"]: t for z in doc["zones"] if z["name"] == "raw" for t in z["tables"]}
    assert list(raw) == ["raw.flights", "raw.planes", "raw.predictions", "raw.weather"]
    for zone in doc["zones"]:
        names = [t["name"] for t in zone["tables"]]
        assert names == sorted(names) and all(t["zone"] == zone["name"] for t in zone["tables"])

    flights = raw["raw.flights"]
    assert flights["table"] == "flights" and flights["row_count"] == FLIGHTS and flights["bytes"] > 0
    assert flights["description"] and flights["owner"] == "flight-ops@example.org"
    assert _iso(flights["last_event_time"]) == datetime.fromisoformat(flight(FLIGHTS - 1)["sched_dep_at"])
    assert (datetime.now(_iso(flights["last_updated"]).tzinfo) - _iso(flights["last_updated"])).total_seconds() < 600
    columns = {c["name"]: c for c in flights["columns"]}
    assert columns["origin"]["type"] == "string" and columns["dep_delay"]["type"] == "double"
    assert columns["sched_dep_at"]["type"] == "timestamp[us, tz=UTC]"
    assert set(columns["origin"]) == {"name", "type", "description", "nullable", "pii"}
    assert isinstance(columns["origin"]["nullable"], bool) and columns["origin"]["pii"] is False

    assert raw["raw.weather"]["row_count"] == WEATHER
    assert raw["raw.weather"]["lineage"] == {"upstream": [], "downstream": ["warehouse.weather_hourly"]}
    hourly = next(t for z in doc["zones"] if z["name"] == "warehouse" for t in z["tables"])
    assert hourly["name"] == "warehouse.weather_hourly" and hourly["row_count"] == WEATHER
    assert hourly["lineage"] == {"upstream": ["raw.weather"], "downstream": []}
    assert hourly["last_updated"] is not None
    assert "temp_c" in {c["name"] for c in hourly["columns"]}


async def test_catalog_follows_the_flusher(jp_fetch, lake_ws):
    before = await get_json(jp_fetch, "tables", "raw.flights")
    _fill(lake_ws, first_flight=1000, flights=25, weathers=0)
    after = await get_json(jp_fetch, "tables", "raw.flights")
    assert after["row_count"] == before["row_count"] + 25
    assert _iso(after["last_updated"]) > _iso(before["last_updated"])
    preview = await get_json(jp_fetch, "tables", "raw.flights", "preview", params={"limit": 1000})
    assert len(preview["rows"]) == preview["row_count"] == FLIGHTS + 25


async def test_table_detail(jp_fetch):
    doc = await get_json(jp_fetch, "tables", "warehouse.weather_hourly")
    assert doc["name"] == "warehouse.weather_hourly" and doc["zone"] == "warehouse"
    assert doc["description"].startswith("Hourly weather at each origin airport")
    assert doc["lineage"]["upstream"] == ["raw.weather"]
    quarantine = await get_json(jp_fetch, "tables", "quarantine.flights")
    assert quarantine["row_count"] == 0 and quarantine["last_event_time"] is None
    assert [c["name"] for c in quarantine["columns"]][:2] == ["_received_at", "request_id"]


async def test_preview_returns_json_safe_rows(jp_fetch):
    doc = await get_json(jp_fetch, "tables", "raw.flights", "preview", params={"limit": 7})
    assert doc["name"] == "raw.flights" and doc["limit"] == 7 and doc["row_count"] == FLIGHTS
    assert len(doc["rows"]) == 7
    names = [c["name"] for c in doc["columns"]]
    assert {"origin", "dep_delay", "sched_dep_at", "_event_id"} <= set(names)
    assert all(len(row) == len(names) for row in doc["rows"])
    row = dict(zip(names, doc["rows"][0]))
    assert row["origin"] == "EWR" and row["dep_delay"] == 2.0
    _iso(row["sched_dep_at"])

    default = await get_json(jp_fetch, "tables", "raw.weather", "preview")
    assert default["limit"] == 100 and len(default["rows"]) == WEATHER
    gusts = default["rows"][0][[c["name"] for c in default["columns"]].index("wind_gust")]
    assert gusts is None


async def test_unknown_table_is_404_with_the_closest_name(jp_fetch):
    status, body = await get_error(jp_fetch, "tables", "raw.flight")
    assert status == 404
    assert body["error"]["status"] == 404
    assert "raw.flight" in body["error"]["message"]
    assert body["error"]["hint"] == "did you mean raw.flights?"
    status, body = await get_error(jp_fetch, "tables", "raw.wether", "preview")
    assert status == 404 and body["error"]["hint"] == "did you mean raw.weather?"


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 1001}, {"limit": "many"}, {"rows": 5}])
async def test_bad_preview_parameters_are_422(jp_fetch, params):
    status, body = await get_error(jp_fetch, "tables", "raw.flights", "preview", params=params)
    assert status == 422 and body["error"]["status"] == 422
    assert body["error"]["message"].startswith("invalid parameters:")
    assert next(iter(params)) in body["error"]["message"]


async def test_the_cache_buster_of_jupyterlab_requests_is_ignored(jp_fetch):
    """JupyterLab's request helper appends a bare timestamp to every GET; a bare number with a
    value is still an unknown parameter."""
    doc = await get_json(jp_fetch, "tables", "raw.flights", "preview", params={"limit": 3, "1795678300655": ""})
    assert len(doc["rows"]) == 3
    status, _ = await get_error(jp_fetch, "tables", "raw.flights", "preview", params={"limit": 3, "17": "x"})
    assert status == 422


async def test_the_servers_own_metrics_hold_lakebooks_gauges(jp_fetch):
    from prometheus_client.parser import text_string_to_metric_families

    response = await jp_fetch("metrics")
    found = {s.name: s.value for f in text_string_to_metric_families(response.body.decode()) for s in f.samples}
    assert found["lakebook_lab_workspace_ok"] == 1 and found["lakebook_lab_alerts_unread"] == 0
    assert "jupyter_server_started_timestamp_seconds" in found  # jupyter_server's own, beside them


@pytest.mark.parametrize("authorization", ["", "token not-the-token"])
async def test_requests_without_the_token_are_refused(jp_fetch, authorization):
    for parts in (("catalog",), ("tables", "raw.flights"), ("tables", "raw.flights", "preview")):
        status, body = await get_error(jp_fetch, *parts, headers={"Authorization": authorization})
        assert status == 403 and body["error"]["status"] == 403


def test_the_install_enables_both_extensions():
    """pip install (editable or wheel) puts the server extension's jupyter-config and the built
    Lake panel where Jupyter finds them: enabled with no `jupyter ... enable` step."""
    import re
    import subprocess
    import sys

    jupyter = [sys.executable, "-m", "jupyter"]
    plain = lambda text: re.sub(r"\x1b\[[0-9;]*m", "", text)  # noqa: E731 - drop terminal colours
    server = subprocess.run([*jupyter, "server", "extension", "list"], capture_output=True, text=True, timeout=120)
    listing = plain(server.stdout + server.stderr)
    assert re.search(r"^\s*lakebook enabled", listing, re.M), listing
    assert re.search(r"lakebook [\d.]+ OK", listing), listing
    lab = subprocess.run([*jupyter, "labextension", "list"], capture_output=True, text=True, timeout=120)
    listing = plain(lab.stdout + lab.stderr)
    assert re.search(r"lakebook-lab v[\d.]+ enabled OK", listing), listing
