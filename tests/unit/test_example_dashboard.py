"""The example dashboard's logic (lakebook.dashboards.example) without a kernel: its queries on
DuckDB over a small lake built by the example transforms, the weather buckets, the freshness
table, the what-if request built from the form's values, and the note shown when the model
endpoint does not run."""

from __future__ import annotations

import shutil
from datetime import date, datetime, timezone
from pathlib import Path

import duckdb
import pytest

from events import flight, log_events, weather
from lakebook.dashboards.example import (
    BY_CARRIER, BY_HOUR, BY_WEATHER, PRECIPITATION, VEGALITE_V5, VISIBILITY, DelayDashboard, Filters,
    WhatIfForm, bucket_case, carrier_chart, endpoint_url, enable_vegalite_v5, freshness_frame, not_running_note, probe,
    what_if_request,
)
from lakebook.errors import BadRequest, EndpointUnavailable
from lakebook.ingest import flush_ingest_log_to_raw
from lakebook.query import LakeSession
from lakebook._proc import free_port
from lakebook.transform import load_seeds, run_transforms
from lakebook.workspace import Workspace
from test_prediction_quality import prediction

REPO = Path(__file__).resolve().parents[2]
JAN_1, JAN_2 = date(2013, 1, 1), date(2013, 1, 2)


def departure(i: int, origin: str, carrier: str, at: str, dep_delay: float | None, arr_delay: float | None,
              **changes) -> dict:
    moment = datetime.fromisoformat(at)
    return flight(i, origin=origin, carrier=carrier, dep_delay=dep_delay, arr_delay=arr_delay, year=moment.year,
                  month=moment.month, day=moment.day, hour=moment.hour, minute=0, sched_dep_at=at,
                  time_hour=at, **changes)


FLIGHTS = [
    departure(1, "JFK", "B6", "2013-01-01T14:00:00Z", 10.0, 20.0),  # 9:00 in New York, late
    departure(2, "JFK", "B6", "2013-01-01T14:00:00Z", 30.0, 40.0),  # late
    departure(3, "JFK", "AA", "2013-01-01T22:00:00Z", 60.0, 5.0),  # 17:00 in New York
    departure(4, "EWR", "UA", "2013-01-01T14:00:00Z", 0.0, 0.0),
    departure(5, "JFK", "B6", "2013-01-05T14:00:00Z", 100.0, 90.0),  # after the date range
    departure(6, "JFK", "AA", "2013-01-01T22:00:00Z", None, None, dep_time=None, arr_time=None, air_time=None),
]
WEATHER = [
    weather(0, origin="JFK", time_hour="2013-01-01T14:00:00Z", visib=0.5, precip=0.2),
    weather(1, origin="JFK", time_hour="2013-01-01T22:00:00Z", visib=10.0, precip=0.0),
    weather(2, origin="EWR", time_hour="2013-01-01T14:00:00Z", visib=3.0, precip=0.05),
]


def add_transforms(ws, *names: str) -> None:
    (ws.root / "transforms").mkdir(exist_ok=True)
    for name in names:
        shutil.copy(REPO / "transforms" / name, ws.root / "transforms")


@pytest.fixture
def lake(workspace):
    """Six departures (one cancelled, one after the range) and their weather, through the
    example transforms on DuckDB."""
    add_transforms(workspace, "flights_clean.sql", "weather_hourly.sql")
    shutil.copytree(REPO / "seeds", workspace.root / "seeds")
    load_seeds(workspace)
    log_events(workspace, "flights", FLIGHTS)
    log_events(workspace, "weather", WEATHER)
    flush_ingest_log_to_raw(workspace)
    run_transforms(workspace, engine="duckdb")
    return workspace


def rows(ws, sql: str, filters: Filters) -> list[dict]:
    return LakeSession(ws).query(sql, filters.params()).table.to_pylist()


# -- queries and buckets --------------------------------------------------------------------------
def test_each_value_falls_in_its_bucket_and_null_is_unknown():
    values = "(0.0), (0.005), (0.01), (0.09), (0.1), (2.0), (NULL)"
    found = duckdb.sql(f"SELECT {bucket_case('v', PRECIPITATION)} FROM (VALUES {values}) AS t(v)").fetchall()
    assert [r[0] for r in found] == ["dry", "dry", "light", "light", "heavy", "heavy", "unknown"]
    found = duckdb.sql(f"SELECT {bucket_case('v', VISIBILITY)} FROM (VALUES (0.25), (1), (4.9), (5), (10)) t(v)")
    assert [r[0] for r in found.fetchall()] == ["< 1 mile", "1-5 miles", "1-5 miles", "5+ miles", "5+ miles"]


def test_the_charts_queries_aggregate_the_flights_the_filters_select(lake):
    jfk = Filters("JFK", "all", JAN_1, JAN_2)
    assert rows(lake, BY_HOUR, jfk) == [
        {"local_hour": 9, "flights": 2, "avg_dep_delay": 20.0, "late_share": 1.0},
        {"local_hour": 17, "flights": 1, "avg_dep_delay": 60.0, "late_share": 0.0}]
    assert [(r["carrier"], r["carrier_name"], r["flights"]) for r in rows(lake, BY_CARRIER, jfk)] == [
        ("B6", "JetBlue Airways", 2), ("AA", "American Airlines Inc.", 1)]
    assert rows(lake, BY_WEATHER, jfk) == [
        {"visibility": "5+ miles", "precipitation": "dry", "flights": 1, "avg_dep_delay": 60.0},
        {"visibility": "< 1 mile", "precipitation": "heavy", "flights": 2, "avg_dep_delay": 20.0}]
    united = Filters("all", "UA", JAN_1, JAN_2)
    assert rows(lake, BY_WEATHER, united) == [
        {"visibility": "1-5 miles", "precipitation": "light", "flights": 1, "avg_dep_delay": 0.0}]
    later = Filters("all", "B6", JAN_1, date(2013, 1, 31))
    assert [(r["local_hour"], r["flights"]) for r in rows(lake, BY_HOUR, later)] == [(9, 3)]


def test_dates_the_wrong_way_round_or_missing_and_an_unknown_airport_are_clear_errors():
    for filters, words in ((Filters(start=JAN_2, end=JAN_1), "before it starts"),
                           (Filters(start=None), "a start and an end"), (Filters(airport="BOS"), "BOS")):
        with pytest.raises(BadRequest, match=words) as caught:
            filters.params()
        assert caught.value.hint


# -- the dashboard over the lake ------------------------------------------------------------------
def test_the_dashboard_charts_small_data_and_its_freshness_lists_every_table_it_read(lake):
    board = DelayDashboard(lake, Filters("JFK", "all", JAN_1, JAN_2), endpoint="delay")
    fresh = freshness_frame(board.sources.values())
    assert list(fresh.table) == ["warehouse.flights_clean", "warehouse.weather_hourly"]
    assert list(fresh.rows) == ["6", "3"] and list(fresh["last event (UTC)"]) == ["2013-01-05 14:00", "2013-01-01 22:00"]
    spec = carrier_chart(board.query(BY_CARRIER, board.filters.params()).df()).to_dict()
    assert [r["carrier"] for r in next(iter(spec["datasets"].values()))] == ["B6", "AA"]
    assert "No predictions with outcomes yet" in board.predicted_vs_actual(board.filters.params()).data
    board.start.value = date(2013, 1, 3)  # after the end: the widget says so and nothing is queried
    assert "before it starts" in board.message.value


def test_predicted_against_actual_once_predictions_have_outcomes(lake):
    log_events(lake, "predictions", [prediction(FLIGHTS[0], 0.82), prediction(FLIGHTS[1], 0.88),
                                     prediction(FLIGHTS[2], 0.31), prediction(FLIGHTS[2], 0.5, endpoint="other")])
    flush_ingest_log_to_raw(lake)
    add_transforms(lake, "prediction_outcomes.sql")
    run_transforms(lake, engine="duckdb")
    board = DelayDashboard(lake, Filters("JFK", "all", JAN_1, JAN_2), endpoint="delay")
    spec = board.predicted_vs_actual(board.filters.params()).to_dict()
    binned = [r for data in spec["datasets"].values() for r in data if "predictions" in r]
    assert [(r["p_late_from"], r["predictions"], r["actual"]) for r in binned] == [(0.3, 1, 0.0), (0.8, 2, 1.0)]
    assert binned[1]["predicted"] == pytest.approx(0.85)
    assert "warehouse.prediction_outcomes" in board.sources
    none = {**board.filters.params(), "airport": "EWR"}
    assert "No predictions of endpoint `delay`" in board.predicted_vs_actual(none).data


def test_charts_display_as_vega_lite_5_which_jupyterlab_and_voila_render(lake):
    import altair as alt

    enable_vegalite_v5()
    try:
        chart = carrier_chart(LakeSession(lake).query(BY_CARRIER, Filters().params()).df())
        bundle = chart._repr_mimebundle_()
        bundle = bundle[0] if isinstance(bundle, tuple) else bundle
        assert set(bundle) == {VEGALITE_V5, "text/plain"}
        assert "/vega-lite/v5." in bundle[VEGALITE_V5]["$schema"]
    finally:
        alt.renderers.enable("default")


# -- the what-if form and the endpoint ------------------------------------------------------------
def test_the_what_if_request_has_the_schedule_features_the_model_was_trained_on():
    winter = what_if_request("JFK", "B6", "BOS", " n625jb ", datetime(2013, 12, 3, 9, 30), 187)
    assert winter == {"origin": "JFK", "carrier": "B6", "dest": "BOS", "tailnum": "N625JB", "distance": 187.0,
                      "sched_hour_local": 9, "sched_weekday": 2, "sched_dep_at": "2013-12-03T09:30:00-05:00"}
    # a UTC time is converted to New York's (summer time); Sunday is 0, as DuckDB's dayofweek
    summer = what_if_request("LGA", "DL", "ATL", "N1", datetime(2013, 7, 7, 1, 0, tzinfo=timezone.utc), 762)
    assert (summer["sched_hour_local"], summer["sched_weekday"]) == (21, 6)
    assert summer["sched_dep_at"] == "2013-07-06T21:00:00-04:00"
    assert duckdb.sql("SELECT dayofweek(TIMESTAMP '2013-12-03 09:30')").fetchall() == [(2,)]


@pytest.mark.parametrize("changes, words", [({"tailnum": " "}, "needs tailnum"), ({"dest": ""}, "needs dest"),
                                            ({"distance": 0}, "distance must be a positive")])
def test_an_incomplete_what_if_form_is_a_clear_error(changes, words):
    form = {"origin": "JFK", "carrier": "B6", "dest": "BOS", "tailnum": "N1", "departure": datetime(2013, 1, 1),
            "distance": 187.0} | changes
    with pytest.raises(BadRequest, match=words) as caught:
        what_if_request(**form)
    assert caught.value.hint


def test_an_endpoint_that_does_not_run_is_a_one_line_note_naming_what_to_do(workspace_dir):
    port = free_port()
    (workspace_dir / "lakebook.yaml").write_text(
        f"name: test\nserving:\n  host: 0.0.0.0\n  port: {port}\n  endpoints:\n"
        "    delay: {model: 'models:/flight_delay@champion'}\n")
    ws = Workspace.load(workspace_dir)
    assert endpoint_url(ws, "delay") == f"http://127.0.0.1:{port}/delay"
    with pytest.raises(EndpointUnavailable, match="does not answer"):
        probe(endpoint_url(ws, "delay"), "delay", timeout_s=1)
    declared = not_running_note(ws, "delay")
    assert "'delay' is not running" in declared and "lakebook serve start" in declared and "\n" not in declared
    assert "declare serving.endpoints.canary in lakebook.yaml" in not_running_note(ws, "canary")


def test_the_dashboard_shows_the_note_instead_of_the_form_when_the_endpoint_does_not_run(lake):
    board = DelayDashboard(lake, Filters(), endpoint="delay")
    note = board.what_if(url=f"http://127.0.0.1:{free_port()}/delay")
    assert note.data.startswith("No what-if: this workspace has no model endpoint 'delay'")


def test_the_what_if_form_offers_the_origins_carriers_and_routes_and_builds_the_request(lake):
    board = DelayDashboard(lake, Filters(end=JAN_2), endpoint="delay")
    form = WhatIfForm(board, "http://127.0.0.1:9/delay", "models:/flight_delay/1")
    assert form.carrier.options == (("JetBlue Airways", "B6"), ("American Airlines Inc.", "AA"))  # busiest first
    assert (form.dest.value, form.distance.value, form.tailnum.value) == ("IAH", 1400.0, "N14228")
    form.hour.value = 17
    assert form.request() == what_if_request("JFK", "B6", "IAH", "N14228", datetime(2013, 1, 2, 17), 1400.0)
    form.origin.value = "EWR"
    assert [code for _, code in form.carrier.options] == ["UA"] and form.dest.options == ("IAH",)
