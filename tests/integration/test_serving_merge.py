"""The serving layer merge: the online store holds each entity's newest value whichever layer
wrote it. A materialize of the batch layer's (older) rows never replaces a fresher value the
speed layer pushed, and a late push never replaces a newer value; on SQLite and on a real
Redis, through lakebook's bulk materialize and through Feast's own. The stream's own stamps
keep its revision of a bucket the batch layer also holds (stream/operators.py)."""

from datetime import timedelta

import duckdb
import pandas as pd
import pytest

from events import flight
from lakebook import features
from lakebook.catalog import open_catalog
from lakebook.features.windows import feature_definition
from lakebook.stream.inputs import InputRows
from lakebook.stream.operators import operator_for
from lakebook.stream.sink import PushSink
from stream_support import events_table

pytestmark = pytest.mark.integration

VIEW = "origin_delays"
FEATURES = ["departures_1h", "avg_dep_delay_1h", "avg_dep_delay_3h", "late_share_3h", "avg_dep_delay_24h",
            "late_share_24h"]


def newest_batch_row(ws, origin: str) -> dict:
    path = ws.lake.table_dir("features", VIEW) / "current" / "*.parquet"
    return duckdb.sql(f"SELECT * FROM read_parquet('{path}') WHERE origin = '{origin}' "
                      "ORDER BY event_timestamp DESC LIMIT 1").df().iloc[0].to_dict()


def push(ws, origin: str, at, value: float) -> None:
    from feast.data_source import PushMode

    row = {"origin": [origin], "event_timestamp": [pd.Timestamp(at).tz_convert("UTC")],
           **{f: [value] for f in FEATURES}}
    features.feature_store(ws).push(f"{VIEW}_push", pd.DataFrame(row), to=PushMode.ONLINE)


def online(ws, origin: str) -> dict:
    store = features.feature_store(ws)
    found = store.get_online_features(features=[f"{VIEW}:{f}" for f in FEATURES], entity_rows=[{"origin": origin}])
    return {f: values[0] for f, values in found.to_dict().items() if f in FEATURES}


def with_redis(ws, port: int):
    from lakebook.workspace import Workspace

    config = ws.root / "lakebook.yaml"
    config.write_text(config.read_text() + f"features:\n  online_store:\n    type: redis\n"
                      f"    connection_string: 127.0.0.1:{port}\n")
    return Workspace.load(ws.root)


@pytest.fixture(params=["sqlite", "redis"])
def store_ws(request, flights_ws):
    if request.param == "sqlite":
        return flights_ws
    return with_redis(flights_ws, request.getfixturevalue("redis_server"))


@pytest.mark.parametrize("engine", ["auto", "feast"])
def test_a_materialize_never_replaces_a_fresher_speed_value(store_ws, engine):
    features.apply(store_ws)
    jfk, lga = newest_batch_row(store_ws, "JFK"), newest_batch_row(store_ws, "LGA")
    push(store_ws, "JFK", jfk["event_timestamp"] + timedelta(minutes=30), 999.0)  # the speed layer, ahead
    push(store_ws, "LGA", lga["event_timestamp"] - timedelta(hours=2), 555.0)  # behind the batch layer
    done = features.materialize(store_ws, views=[VIEW], engine=engine)
    assert done["engines"][VIEW] == ("lakebook" if engine == "auto" else "feast")
    assert online(store_ws, "JFK") == {f: 999.0 for f in FEATURES}
    assert online(store_ws, "LGA") == pytest.approx({f: lga[f] for f in FEATURES})  # the batch's newer row won


def test_a_late_push_never_replaces_a_newer_value(store_ws):
    features.apply(store_ws)
    features.materialize(store_ws, views=[VIEW])
    ewr = newest_batch_row(store_ws, "EWR")
    push(store_ws, "EWR", ewr["event_timestamp"] - timedelta(seconds=1), 111.0)
    assert online(store_ws, "EWR") == pytest.approx({f: ewr[f] for f in FEATURES})
    push(store_ws, "EWR", ewr["event_timestamp"] + timedelta(seconds=1), 222.0)
    assert online(store_ws, "EWR") == {f: 222.0 for f in FEATURES}


def stream_over_the_lake(ws):
    """The stream's input rows and operator, fed every flight the lake holds: its windows are
    the batch layer's."""
    definition, catalog = feature_definition(ws, VIEW), open_catalog(ws)
    rows = InputRows(ws, definition)
    try:
        rows.bind_lake(catalog)
        lake = rows.rows()
    finally:
        catalog.close()
    operator = operator_for(definition, lake.schema, lateness_us=86_400 * 10**6)
    operator.apply(lake, 0)
    return rows, operator


@pytest.mark.parametrize("engine", ["auto", "feast"])
def test_the_streams_revision_of_a_bucket_the_batch_holds_outlives_a_materialize(store_ws, engine):
    """A late event revises the bucket of the batch layer's newest row after the batch was
    built (as when a batch is built before its last bucket closed): the stream pushes the
    revision, a materialize of the batch's row of that same bucket comes later, and the
    revision is still what the store serves."""
    features.apply(store_ws)
    jfk = newest_batch_row(store_ws, "JFK")
    rows, operator = stream_over_the_lake(store_ws)
    departs = (jfk["event_timestamp"] - timedelta(minutes=20)).tz_convert("UTC")
    late = flight(9001, origin="JFK", dep_delay=240.0, sched_dep_at=f"{departs - timedelta(hours=4):%Y-%m-%dT%H:%M:%SZ}")
    change = operator.apply(rows.from_events(events_table(store_ws, "flights", [late])), 0)
    revised = change.online.to_pylist()
    assert [r["origin"] for r in revised] == ["JFK"] and revised[0]["departures_1h"] == jfk["departures_1h"] + 1
    PushSink(store_ws).push({VIEW: change.online})
    features.materialize(store_ws, views=[VIEW], engine=engine)
    assert online(store_ws, "JFK") == pytest.approx({f: revised[0][f] for f in FEATURES})
