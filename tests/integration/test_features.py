"""Feast on the lake: point-in-time training sets, SQLite and Redis online stores (real servers)."""

import math

import duckdb
import pandas as pd
import pytest

from lakebook import features
from lakebook.errors import FeatureStoreError
from lakebook.query import LakeSession

pytestmark = pytest.mark.integration

VIEWS = {  # view: (entity column, features, ttl)
    "origin_delays": ("origin", ["departures_1h", "avg_dep_delay_1h", "avg_dep_delay_3h", "late_share_3h",
                                 "avg_dep_delay_24h", "late_share_24h"], "6 hours"),
    "origin_weather": ("origin", ["temp_c", "humid", "wind_speed", "precip", "visib_km"], "3 hours"),
    "carrier_daily": ("carrier", ["flights_1d", "avg_dep_delay_1d", "late_share_1d", "avg_dep_delay_7d"], "3 days"),
    "plane_stats": ("tailnum", ["plane_age_years", "plane_seats", "plane_engines"], "400 days"),
}


def entity_rows(ws, n=3000):
    return LakeSession(ws).query(
        f"SELECT flight_id, sched_dep_at AS event_timestamp, origin, carrier, tailnum, arr_late "
        f"FROM warehouse.flights_clean WHERE tailnum IS NOT NULL ORDER BY hash(flight_id) LIMIT {n}").df()


def asof_join(ws, entities):
    """The hand-written point-in-time join: per view, the latest row at or before the
    entity's time, dropped if older than the view's TTL."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("entities", entities)
    selects, joins = [], []
    for view, (key, cols, ttl) in VIEWS.items():
        path = ws.lake.table_dir("features", view) / "current" / "*.parquet"
        con.execute(f"CREATE VIEW {view} AS SELECT * FROM read_parquet('{path}')")
        joins.append(f"ASOF LEFT JOIN {view} ON {view}.{key} = e.{key} AND {view}.event_timestamp <= e.event_timestamp")
        fresh = f"{view}.event_timestamp >= e.event_timestamp - INTERVAL {ttl}"
        selects += [f"CASE WHEN {fresh} THEN {view}.{c} END AS {c}" for c in cols]
        selects.append(f"{view}.event_timestamp AS {view}_ts")
    sql = f"SELECT e.flight_id, e.event_timestamp, {', '.join(selects)} FROM entities e {' '.join(joins)}"
    return con.execute(sql).df().set_index("flight_id")


def same(a, b) -> bool:
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b is None or (isinstance(b, float) and math.isnan(b))
    return b is not None and not (isinstance(b, float) and math.isnan(b)) and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def test_training_sets_are_point_in_time_correct(flights_ws):
    features.apply(flights_ws)
    entities = entity_rows(flights_ws)
    training = features.training_set(entities, "flight_delay_v1", flights_ws).set_index("flight_id")
    expected = asof_join(flights_ws, entities)
    assert len(training) == len(entities) == 3000
    labels = entities.set_index("flight_id")["arr_late"]
    pd.testing.assert_series_equal(training["arr_late"].sort_index(), labels.sort_index(),
                                   check_dtype=False, check_names=False)  # labels pass through unchanged
    # No leakage: every feature row joined was knowable at the flight's scheduled departure.
    for view in VIEWS:
        joined = expected[f"{view}_ts"].notna()
        assert joined.sum() > 0
        assert (expected.loc[joined, f"{view}_ts"] <= expected.loc[joined, "event_timestamp"]).all()
    # And Feast's training set is exactly the hand-written ASOF join.
    mismatches = [(fid, col, training.at[fid, col], expected.at[fid, col])
                  for view, (_, cols, _) in VIEWS.items() for col in cols for fid in expected.index
                  if not same(_value(training.at[fid, col]), _value(expected.at[fid, col]))]
    assert mismatches == []
    filled = training[[c for _, cols, _ in VIEWS.values() for c in cols]].notna().mean()
    assert filled.min() > 0.5, filled.to_dict()  # the comparison is not between two empty frames


def _value(v):
    try:
        return None if v is None or (v != v) else float(v)
    except TypeError:
        return None


def test_training_set_mistakes_are_clear(flights_ws):
    features.apply(flights_ws)
    entities = entity_rows(flights_ws, 5)
    with pytest.raises(FeatureStoreError, match="no feature service 'flight_delay_v2'.*flight_delay_v1"):
        features.training_set(entities, "flight_delay_v2", flights_ws)
    with pytest.raises(FeatureStoreError, match="event_timestamp"):
        features.training_set(entities.drop(columns=["event_timestamp"]), "flight_delay_v1", flights_ws)


def latest_offline(ws, view, key, value):
    path = ws.lake.table_dir("features", view) / "current" / "*.parquet"
    return duckdb.sql(f"SELECT * FROM read_parquet('{path}') WHERE {key} = '{value}' "
                      f"ORDER BY event_timestamp DESC LIMIT 1").df().iloc[0]


def online_matches_offline(ws):
    features.apply(ws)
    done = features.materialize(ws)
    assert set(done["views"]) == set(VIEWS)
    row = {"origin": "JFK", "carrier": "UA", "tailnum": "N14228"}
    online = features.online_features(ws, "flight_delay_v1", [row])
    for view, (key, cols, _) in VIEWS.items():
        latest = latest_offline(ws, view, key, row[key])
        for col in cols:
            assert same(_value(online[col][0]), _value(latest[col])), (view, col, online[col][0], latest[col])
    return online


def test_materialize_to_the_sqlite_online_store(flights_ws):
    online = online_matches_offline(flights_ws)
    assert (flights_ws.feast_dir / "online.db").exists()
    assert online["plane_seats"][0] is not None


def test_materialize_to_a_real_redis_online_store(flights_ws, redis_server):
    config = flights_ws.root / "lakebook.yaml"
    config.write_text(config.read_text() + f"features:\n  online_store:\n    type: redis\n"
                      f"    connection_string: 127.0.0.1:{redis_server}\n")
    from lakebook.workspace import Workspace

    ws = Workspace.load(flights_ws.root)
    assert ws.settings.features.online_store.type == "redis"
    online_matches_offline(ws)
    import redis

    assert redis.Redis(port=redis_server).dbsize() > 0  # the values really live in Redis
    assert not (ws.feast_dir / "online.db").exists()


def test_the_spark_offline_store_gives_the_same_training_set(flights_ws):
    from lakebook.workspace import Workspace

    features.apply(flights_ws)
    entities = entity_rows(flights_ws, 400)
    on_duckdb = features.training_set(entities, "flight_delay_v1", flights_ws).set_index("flight_id").sort_index()
    config = flights_ws.root / "lakebook.yaml"
    config.write_text(config.read_text() + "features:\n  offline_store:\n    type: spark\n")
    spark_ws = Workspace.load(flights_ws.root)
    applied = features.apply(spark_ws)
    assert "features_origin_delays" in applied["sources"]
    on_spark = features.training_set(entities, "flight_delay_v1", spark_ws).set_index("flight_id").sort_index()
    columns = [c for _, cols, _ in VIEWS.values() for c in cols]
    assert on_spark.index.equals(on_duckdb.index)
    for col in columns:
        assert all(same(_value(a), _value(b)) for a, b in zip(on_spark[col], on_duckdb[col])), col
    assert on_spark[columns].notna().mean().min() > 0.5


def test_the_asof_path_equals_feasts_own_historical_retrieval(flights_ws):
    features.apply(flights_ws)
    entities = entity_rows(flights_ws, 2000)
    fast = features.training_set(entities, "flight_delay_v1", flights_ws).set_index("flight_id").sort_index()
    store = features.feature_store(flights_ws)
    feast_own = store.get_historical_features(
        entity_df=entities, features=store.get_feature_service("flight_delay_v1")).to_df()
    feast_own = feast_own.set_index("flight_id").sort_index()
    assert list(fast.index) == list(feast_own.index) and len(fast) == 2000
    columns = [c for _, cols, _ in VIEWS.values() for c in cols]
    assert set(columns) <= set(fast.columns) and set(columns) <= set(feast_own.columns)
    for col in columns:
        assert all(same(_value(a), _value(b)) for a, b in zip(fast[col], feast_own[col])), col
    assert fast[columns].notna().mean().min() > 0.5
    forced = features.training_set(entities, "flight_delay_v1", flights_ws, engine="feast")
    assert len(forced) == 2000


def test_features_commands(flights_ws):
    from click.testing import CliRunner

    from lakebook.cli import cli

    def run(*args):
        result = CliRunner().invoke(cli, ["-w", str(flights_ws.root), "features", *args], obj={}, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    applied = run("apply")
    assert "feature_services: flight_delay_v1" in applied
    listed = run("list")
    assert "service flight_delay_v1: origin_delays, origin_weather, carrier_daily, plane_stats" in listed
    assert "view plane_stats (plane; ttl 400 days" in listed
    done = run("materialize", "--view", "plane_stats")
    assert "materialized plane_stats from 2013-01-01 00:00" in done
    online = features.online_features(flights_ws, "flight_delay_v1", [{"origin": "JFK", "carrier": "UA", "tailnum": "N14228"}])
    assert online["plane_seats"][0] is not None
    env = run("env")
    assert f"export LAKEBOOK_LAKE_DIR={flights_ws.lake.root}" in env
