"""Windowed feature declarations (feature_repo/windows.yaml): the format, its mistakes, and the
batch table they define, checked against the batch job they replaced, written out by hand."""

import math

import pandas as pd
import pytest

from stream_support import events_table, sorted_rows, synthetic_flights, synthetic_weather, with_feature_repo
from lakebook.errors import FeatureStoreError
from lakebook.features.windows import feature_definition, feature_definitions, parse_definitions
from lakebook.stream.inputs import InputRows

FEATURES = ["departures_1h", "avg_dep_delay_1h", "avg_dep_delay_3h", "late_share_3h", "avg_dep_delay_24h",
            "late_share_24h"]


def test_the_example_declares_origin_delays_and_origin_weather(workspace):
    defs = feature_definitions(with_feature_repo(workspace, seeds=False))
    delays, weather = defs["origin_delays"], defs["origin_weather"]
    assert (delays.kind, delays.input, delays.keys, delays.bucket_us) == ("windows", "warehouse.flights_clean",
                                                                          ("origin",), 3600 * 10**6)
    assert list(delays.features) == FEATURES
    assert delays.windows_us == [h * 3600 * 10**6 for h in (1, 3, 24)]
    assert len(delays.partials) == 2  # dep_delay's sum and count, and whether it is over 15, shared by the windows
    assert (weather.kind, weather.latest) == ("latest", ("temp_c", "humid", "wind_speed", "precip", "visib_km"))


BASE = {"input": "raw.flights", "keys": ["origin"], "event_time": "sched_dep_at", "bucket": "1h",
        "features": {"n": {"agg": "count", "window": "1h"}}}


@pytest.mark.parametrize("change, message", [
    ({"bucket": "1 hour"}, "bucket.*not a duration"),
    ({"features": {"n": {"agg": "count", "window": "90m"}}}, "window 90m is not a whole number of 1h buckets"),
    ({"features": {"n": {"agg": "share", "window": "1h"}}}, "share takes 'when"),
    ({"features": {"n": {"agg": "mean", "window": "1h"}}}, "mean takes 'of: column'"),
    ({"features": {"n": {"agg": "share", "when": {"dep_delay": {"gte": 15}}, "window": "1h"}}},
     "unknown condition 'gte'; did you mean 'gt'"),
    ({"where": {"dep_delay": {"not_null": False}}}, "write not_null: true"),
    ({"input": "flights"}, "must be a table with its zone"),
    ({"latest": ["dep_delay"]}, "either 'bucket' and 'features'"),
    ({"windw": "1h"}, "windw: unknown key"),
    ({"keys": ["origin; DROP"]}, "must be"),
])
def test_declaration_mistakes_name_the_table_and_the_problem(change, message):
    with pytest.raises(FeatureStoreError, match=message) as caught:
        parse_definitions({"bad": {**BASE, **change}}, "feature_repo/windows.yaml")
    assert caught.value.message.startswith("feature_repo/windows.yaml: bad: ")
    assert caught.value.hint


def test_an_unknown_view_suggests_the_declared_ones(workspace):
    with pytest.raises(FeatureStoreError, match="no windowed feature definition 'origin_delay'") as caught:
        feature_definition(with_feature_repo(workspace, seeds=False), "origin_delay")
    assert caught.value.hint == "did you mean 'origin_delays'?"


def the_batch_job_it_replaced(events: list[dict]) -> list[dict]:
    """transforms/features.py's origin_delays as it was written before the declaration (hourly
    groups of departed flights by actual departure, then trailing 3 and 24 hour windows), in pandas."""
    df = pd.DataFrame(events)
    departed = df[df.dep_time.notna() & df.dep_delay.notna()].copy()
    dep_at = pd.to_datetime(departed.sched_dep_at, utc=True) + pd.to_timedelta(departed.dep_delay.astype(int), unit="min")
    departed["hour"], departed["late"] = dep_at.dt.floor("h"), departed.dep_delay > 15
    hourly = departed.groupby(["origin", "hour"]).agg(departures=("dep_delay", "size"), delay_sum=("dep_delay", "sum"),
                                                      late=("late", "sum")).reset_index()
    rows = []
    for r in hourly.itertuples():
        same = hourly[hourly.origin == r.origin]
        row = {"origin": r.origin, "event_timestamp": (r.hour + pd.Timedelta(hours=1)).to_pydatetime(),
               "departures_1h": float(r.departures), "avg_dep_delay_1h": r.delay_sum / r.departures}
        for hours in (3, 24):
            window = same[(same.hour > r.hour - pd.Timedelta(hours=hours)) & (same.hour <= r.hour)]
            row[f"avg_dep_delay_{hours}h"] = window.delay_sum.sum() / window.departures.sum()
            row[f"late_share_{hours}h"] = window.late.sum() / window.departures.sum()
        rows.append(row)
    return sorted(rows, key=lambda r: (r["origin"], r["event_timestamp"]))


def test_the_declared_origin_delays_is_the_batch_job_it_replaced(workspace):
    ws = with_feature_repo(workspace)
    events = synthetic_flights(4000)
    rows = InputRows(ws, feature_definition(ws, "origin_delays"))
    rows.bind_events(events_table(ws, "flights", events))
    table = rows.table()
    assert table.column_names == ["origin", "event_timestamp", *FEATURES]
    got, expected = sorted_rows(table), the_batch_job_it_replaced(events)
    assert len(got) == len(expected) > 100
    for a, b in zip(got, expected):
        assert (a["origin"], a["event_timestamp"]) == (b["origin"], b["event_timestamp"])
        assert all(math.isclose(a[f], b[f], rel_tol=1e-12) for f in FEATURES), (a, b)


def test_the_declared_origin_weather_is_each_observation_with_celsius_and_kilometres(workspace):
    ws = with_feature_repo(workspace)
    events = synthetic_weather(30)
    rows = InputRows(ws, feature_definition(ws, "origin_weather"))
    rows.bind_events(events_table(ws, "weather", events))
    got = sorted_rows(rows.table())
    assert len(got) == 30
    first = min(events, key=lambda e: (e["origin"], e["time_hour"]))
    assert got[0]["temp_c"] == round((first["temp"] - 32) * 5 / 9, 2)
    assert got[0]["visib_km"] == round(first["visib"] * 1.609, 2)
    assert got[0]["event_timestamp"].isoformat().replace("+00:00", "Z") == first["time_hour"]


def test_an_input_that_is_not_made_row_by_row_is_refused(workspace):
    ws = with_feature_repo(workspace, seeds=False)
    (ws.transforms_dir / "daily.sql").write_text(
        "-- description: flights per origin and day\nSELECT origin, count(*) AS n, max(sched_dep_at) AS sched_dep_at "
        "FROM raw.flights GROUP BY origin\n")
    definition = parse_definitions({"per_day": {**BASE, "input": "warehouse.daily"}}, "windows.yaml")["per_day"]
    with pytest.raises(FeatureStoreError, match="cannot compute its input warehouse.daily event by event: "
                                                "it groups or deduplicates rows") as caught:
        InputRows(ws, definition)
    assert "row by row" in caught.value.hint
