"""lakebook's bulk materialization against Feast's own, on real SQLite and Redis online stores.

Two copies of one workspace (feature tables built by lakebook's DuckDB transforms) run the
same materializations, one through Feast's ``FeatureStore.materialize`` and one through
``lakebook.features.materialize``; after every step the online stores hold the same bytes,
``get_online_features`` answers the same, and Feast's registry records the same intervals.
The rows are crafted for the edges: missing values (NULL, NaN), rows before, at and after the
window's ends, an entity only outside the window, event times at and past the TTL before the
window's end, sub-second times, a big integer in a column with nulls, a two-key entity with a
negative integer key, and a later window, then an older one, over rows already written.
"""

from __future__ import annotations

import math
import shutil
import sqlite3
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from lakebook import features

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2024, 5, 1, tzinfo=timezone.utc)
VIEWS = ["sensor_stats", "line_stats", "sensor_audit"]  # sensor_audit has a created-timestamp column: Feast's
SENSOR_FEATURES = ["reading", "ratio", "hits", "level", "ok", "label", "seen_at", "big"]
BIG = 2 ** 53 + 1  # not a float64: Feast's pandas step rounds it when its column has nulls


def at(hours: float, seconds: float = 0, micros: int = 0) -> datetime:
    return T0 + timedelta(hours=hours, seconds=seconds, microseconds=micros)


WINDOWS = [  # the materializations each test runs, in order
    (at(1), at(10)),   # the first load
    (at(1), at(14)),   # a later end: entities with newer rows change
    (at(0), at(2.5)),  # an older window: SQLite takes the older rows, Redis keeps the newer
]
# sensor_id, event time, reading, ratio, hits, level, ok, label, seen_at, big
SENSOR_ROWS = [
    ("s_two", at(2), 1.5, 0.25, 3, 7, True, "a", at(-24), 1),
    ("s_two", at(5), 2.5, 0.5, -4, -8, False, "b", at(-12), BIG),
    ("s_two", at(12), 3.5, 0.75, 5, 9, True, "c", at(-1), 3),
    ("s_missing", at(3), 4.0, 1.0, 1, 1, True, "full", at(-2), 4),
    ("s_missing", at(6), math.nan, None, None, None, None, None, None, None),
    ("s_before", at(0.5), 5.0, 2.0, 2, 2, False, "early", at(-3), 5),
    ("s_start", at(1), 6.0, 3.0, 3, 3, True, "", at(-4), 6),
    ("s_end", at(10), -0.0, -4.5, -9, -10, False, "Zürich 🌡", at(-5), -7),
    ("s_after", at(3), 7.0, 5.0, 4, 4, True, "kept", at(-6), 8),
    ("s_after", at(10, micros=1), 8.0, 6.0, 5, 5, False, "too late", at(-7), 9),
    ("s_ttl_edge", at(8), 9.0, 7.0, 6, 6, True, "edge", at(-8), 10),
    ("s_ttl_out", at(7, seconds=3599), 10.0, 8.0, 7, 7, False, "out", at(-9), 11),
    ("s_frac", at(4, seconds=0.75), 1e-300, 1e30, 2 ** 62, 2 ** 31 - 1, True, "frac", at(-10, seconds=0.5), 12),
]
SENSORS = sorted({row[0] for row in SENSOR_ROWS}) + ["g00007", "g00420", "g01111", "nobody"]

SENSOR_SQL = """\
-- zone: features
-- description: Sensor readings crafted for materialization tests.
-- owner: test@example.org
-- event_time: event_timestamp
SELECT sensor_id, event_timestamp, CAST(reading AS DOUBLE) AS reading, CAST(ratio AS FLOAT) AS ratio,
       CAST(hits AS BIGINT) AS hits, CAST(level AS INTEGER) AS level, CAST(ok AS BOOLEAN) AS ok,
       CAST(label AS VARCHAR) AS label, CAST(seen_at AS TIMESTAMPTZ) AS seen_at, CAST(big AS BIGINT) AS big,
       event_timestamp - INTERVAL 1 MINUTE AS ingested_at
FROM (VALUES {values}) AS t(sensor_id, event_timestamp, reading, ratio, hits, level, ok, label, seen_at, big)
UNION ALL
{generated}
"""
GENERATED_SQL = """\
SELECT '{prefix}' || lpad(CAST(i AS VARCHAR), 5, '0') AS sensor_id,
       TIMESTAMPTZ '2024-05-01 00:00:00+00' + to_seconds(CAST(3600 + j * 9000 + hash(i, j) % 3600 AS BIGINT))
           AS event_timestamp,
       CAST(hash(i, j, 1) % 100000 AS DOUBLE) / 100 AS reading, CAST(CAST(hash(i, j, 2) % 1000 AS DOUBLE) / 7 AS FLOAT) AS ratio,
       CAST(hash(i, j, 3) % 500 AS BIGINT) - 250 AS hits, CAST(hash(i, j, 4) % 100 AS INTEGER) AS level,
       hash(i, j, 5) % 2 = 0 AS ok,
       CASE WHEN hash(i, j, 6) % 5 = 0 THEN NULL ELSE 'L' || CAST(hash(i, j, 6) % 97 AS VARCHAR) END AS label,
       TIMESTAMPTZ '2024-01-01 00:00:00+00' + to_seconds(CAST(hash(i, j, 7) % 86400 AS BIGINT)) AS seen_at,
       CAST(hash(i, j, 8) % 1000 AS BIGINT) AS big,
       TIMESTAMPTZ '2024-05-01 00:00:00+00' + to_seconds(CAST(3600 + j * 9000 + hash(i, j) % 3600 AS BIGINT))
           - INTERVAL 1 MINUTE AS ingested_at
FROM (SELECT unnest(range({entities})) AS i) AS a, (SELECT unnest(range({days})) AS j) AS b"""
LINE_SQL = """\
-- zone: features
-- description: Throughput per production line and site (two-key entity).
-- owner: test@example.org
-- event_time: event_timestamp
SELECT CAST(i % 7 AS BIGINT) - 3 AS line, CASE i % 3 WHEN 0 THEN 'north' WHEN 1 THEN 'süd' ELSE '' END AS site,
       TIMESTAMPTZ '2024-05-01 00:00:00+00' + to_seconds(CAST(1800 + i * 97 AS BIGINT)) AS event_timestamp,
       i * 1.25 AS throughput
FROM (SELECT unnest(range(400)) AS i) AS n
"""
DEFINITIONS = '''\
from datetime import timedelta

from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.data_format import ParquetFormat
from feast.types import Bool, Float32, Float64, Int32, Int64, String, UnixTimestamp

from lakebook.features import lake_source

sensor = Entity(name="sensor", join_keys=["sensor_id"], value_type=ValueType.STRING)
line = Entity(name="line", join_keys=["line"], value_type=ValueType.INT64)
site = Entity(name="site", join_keys=["site"], value_type=ValueType.STRING)
readings = lake_source("features.sensor_stats")

sensor_stats = FeatureView(name="sensor_stats", entities=[sensor], ttl=timedelta(hours=2), source=readings, schema=[
    Field(name="reading", dtype=Float64), Field(name="ratio", dtype=Float32), Field(name="hits", dtype=Int64),
    Field(name="level", dtype=Int32), Field(name="ok", dtype=Bool), Field(name="label", dtype=String),
    Field(name="seen_at", dtype=UnixTimestamp), Field(name="big", dtype=Int64)])
line_stats = FeatureView(name="line_stats", entities=[line, site], ttl=timedelta(days=1),
                         schema=[Field(name="throughput", dtype=Float64)], source=lake_source("features.line_stats"))
sensor_audit = FeatureView(
    name="sensor_audit", entities=[sensor], ttl=timedelta(hours=2),
    schema=[Field(name="reading", dtype=Float64), Field(name="label", dtype=String)],
    source=FileSource(name="sensor_stats_audited", path=readings.path, timestamp_field="event_timestamp",
                      created_timestamp_column="ingested_at", file_format=ParquetFormat()))
bulk_stats = FeatureView(name="bulk_stats", entities=[sensor], ttl=timedelta(days=1), source=lake_source("features.bulk_stats"),
                         schema=[Field(name="reading", dtype=Float64), Field(name="hits", dtype=Int64),
                                 Field(name="label", dtype=String)])
'''


def _literal(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, datetime):
        return f"TIMESTAMPTZ '{value.isoformat()}'"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "CAST('NaN' AS DOUBLE)" if math.isnan(value) else f"CAST({value!r} AS DOUBLE)"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return str(value)


def _sensor_sql() -> str:
    values = ", ".join("(" + ", ".join(map(_literal, row)) + ")" for row in SENSOR_ROWS)
    return SENSOR_SQL.format(values=values, generated=GENERATED_SQL.format(prefix="g", entities=1500, days=5))


def _bulk_sql(entities: int, days: int) -> str:
    header = "-- zone: features\n-- description: Bulk sensor readings.\n-- event_time: event_timestamp\n"
    body = GENERATED_SQL.format(prefix="b", entities=entities, days=days)
    return header + body.replace("SELECT '", "SELECT reading, hits, label, sensor_id, event_timestamp FROM (SELECT '", 1) + ")"


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A workspace whose feature tables are built by lakebook's DuckDB transforms (no Spark)."""
    from lakebook.transform import run_transforms
    from lakebook.workspace import Workspace

    root = tmp_path_factory.mktemp("materialize") / "ws"
    shutil.copytree(REPO / "contracts", root / "contracts", ignore=shutil.ignore_patterns("airport_status.yaml"))
    (root / "lakebook.yaml").write_text("name: mat\n")
    (root / "transforms").mkdir()
    (root / "transforms" / "sensor_stats.sql").write_text(_sensor_sql())
    (root / "transforms" / "line_stats.sql").write_text(LINE_SQL)
    (root / "transforms" / "bulk_stats.sql").write_text(_bulk_sql(20_000, 5))
    (root / "feature_repo").mkdir()
    (root / "feature_repo" / "feature_store.yaml").write_text(
        (REPO / "feature_repo" / "feature_store.yaml").read_text().replace("project: nycflights", "project: mat"))
    (root / "feature_repo" / "definitions.py").write_text(DEFINITIONS)
    results = run_transforms(Workspace.load(root), engine="duckdb")
    assert {r.rows for r in results} >= {len(SENSOR_ROWS) + 1500 * 5, 400, 100_000}
    return root


def workspace_copy(template: Path, folder: Path, online: str = ""):
    """A copy of the template with its own state; Feast's repository applied to it."""
    from lakebook.workspace import Workspace

    shutil.copytree(template, folder, symlinks=True)
    if online:
        (folder / "lakebook.yaml").write_text((folder / "lakebook.yaml").read_text() + online)
    ws = Workspace.load(folder)
    features.apply(ws)
    return ws


@pytest.fixture
def pair(template, tmp_path):
    """(a workspace Feast materializes, a workspace lakebook materializes), SQLite online stores."""
    return workspace_copy(template, tmp_path / "feast"), workspace_copy(template, tmp_path / "lakebook")


def feast_materialize(ws, start, end, views=VIEWS):
    """Feast's own path, as a Feast user runs it."""
    features.feature_store(ws).materialize(start_date=start, end_date=end, feature_views=views)


def lakebook_materialize(ws, start, end, views=VIEWS):
    done = features.materialize(ws, start, end, views)
    assert done["engines"] == {v: "feast" if v == "sensor_audit" else "lakebook" for v in views}
    return done


def online_answers(ws) -> dict:
    """``get_online_features`` for the sampled entities of every view, with event times."""
    store = features.feature_store(ws)
    sensors = store.get_online_features(
        features=[f"sensor_stats:{f}" for f in SENSOR_FEATURES] + ["sensor_audit:reading", "sensor_audit:label"],
        entity_rows=[{"sensor_id": s} for s in SENSORS], full_feature_names=True).to_dict(include_event_timestamps=True)
    lines = store.get_online_features(
        features=["line_stats:throughput"], entity_rows=[{"line": line, "site": site} for line in (-3, 0, 3, 9)
                                                         for site in ("north", "süd", "", "west")]
    ).to_dict(include_event_timestamps=True)
    return {"sensors": sensors, "lines": lines}


def sqlite_rows(ws) -> dict:
    con = sqlite3.connect(ws.feast_dir / "online.db")
    try:
        tables = [name for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {t: con.execute(f'SELECT * FROM "{t}" ORDER BY entity_key, feature_name').fetchall() for t in tables}
    finally:
        con.close()


def registry_record(ws) -> dict:
    store = features.feature_store(ws)
    return {v.name: (v.materialization_intervals, v.state) for v in store.list_feature_views() if v.name in VIEWS}


def check_answers(answers: dict, step: int, older_overwrites: bool) -> None:
    """The answers hold what the windows say (so the comparison is not between two empty stores)."""
    sensors = answers["sensors"]
    row = dict(zip(sensors["sensor_id"], range(len(SENSORS))))
    reading = sensors["sensor_stats__reading"]
    assert reading[row["s_before"]] == (5.0 if step == 2 else None)
    assert reading[row["nobody"]] is None
    assert reading[row["s_two"]] == [2.5, 3.5, 1.5 if older_overwrites else 3.5][step]
    assert [sensors[f"sensor_stats__{f}"][row["s_missing"]] for f in SENSOR_FEATURES] == [None] * 8
    assert reading[row["s_start"]] == 6.0 and reading[row["s_end"]] == 0.0
    assert reading[row["s_after"]] == (8.0 if step else 7.0)
    assert reading[row["s_ttl_edge"]] == 9.0 and reading[row["s_ttl_out"]] == 10.0
    assert sum(v is not None for v in answers["lines"]["throughput"]) >= 9


def run_both(by_feast, by_lakebook, snapshot, older_overwrites: bool, between=lambda: None) -> None:
    """Every window through Feast and through lakebook; the stores and answers agree after each."""
    for step, (start, end) in enumerate(WINDOWS):
        feast_materialize(by_feast, start, end)
        expected, answers = snapshot(by_feast), online_answers(by_feast)
        between()
        lakebook_materialize(by_lakebook, start, end)
        assert snapshot(by_lakebook) == expected, f"step {step}"
        check_answers(answers, step, older_overwrites)
        assert online_answers(by_lakebook) == answers, f"step {step}"
    assert registry_record(by_lakebook) == registry_record(by_feast)


def test_sqlite_online_store_holds_what_feast_writes(pair):
    # both stores were applied by lakebook: their SQLite tables keep the newest value (features/newest_wins.py)
    run_both(*pair, sqlite_rows, older_overwrites=False)
    assert sum(map(len, sqlite_rows(pair[1]).values())) > 7000


@pytest.fixture
def new_york_time():
    """The machine's time zone set to America/New_York (Feast's SQLite store writes event
    times through Python's local-time conversion)."""
    import os

    saved = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    yield
    if saved is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = saved
    time.tzset()


def test_sqlite_event_times_match_in_another_time_zone(pair, new_york_time):
    assert time.timezone != 0
    run_both(*pair, sqlite_rows, older_overwrites=False)


def test_redis_online_store_holds_what_feast_writes(template, tmp_path, redis_server):
    import redis

    def online(db: int) -> str:
        return (f"features:\n  online_store:\n    type: redis\n    connection_string: 127.0.0.1:{redis_server},db={db}\n"
                "    key_ttl_seconds: 86400\n")

    by_feast = workspace_copy(template, tmp_path / "feast", online(0))
    by_lakebook = workspace_copy(template, tmp_path / "lakebook", online(1))
    clients = {id(by_feast): redis.Redis(port=redis_server, db=0), id(by_lakebook): redis.Redis(port=redis_server, db=1)}

    def hashes(ws) -> dict:
        """Every key's hash fields, and whether it expires (key_ttl_seconds)."""
        client = clients[id(ws)]
        return {key: (client.hgetall(key), 0 < client.ttl(key) <= 86400) for key in client.scan_iter()}

    run_both(by_feast, by_lakebook, hashes, older_overwrites=False)
    assert len(hashes(by_lakebook)) > 1500
    assert not (by_lakebook.feast_dir / "online.db").exists()


def test_views_lakebook_cannot_load_go_to_feast(pair):
    by_feast, by_lakebook = pair
    start, end = WINDOWS[0]
    done = features.materialize(by_lakebook, start, end, ["sensor_audit", "line_stats"])
    assert done["engines"] == {"line_stats": "lakebook", "sensor_audit": "feast"}  # a created-timestamp column
    assert set(done["lakebook"]) == {"line_stats"}
    forced = features.materialize(by_lakebook, start, end, ["sensor_stats"], engine="feast")
    assert forced["engines"] == {"sensor_stats": "feast"} and forced["lakebook"] == {}
    feast_materialize(by_feast, start, end, ["sensor_audit", "line_stats", "sensor_stats"])
    assert sqlite_rows(by_lakebook) == sqlite_rows(by_feast)


def test_materialize_mistakes_are_clear(pair):
    from lakebook.errors import FeatureStoreError

    ws = pair[1]
    with pytest.raises(FeatureStoreError, match="unknown engine 'spark'.*auto, feast"):
        features.materialize(ws, *WINDOWS[0], engine="spark")
    with pytest.raises(FeatureStoreError, match="starts after it ends"):
        features.materialize(ws, WINDOWS[0][1], WINDOWS[0][0])
    (ws.feast_dir / "online.db").unlink()  # the online tables are gone: lakebook says how to get them back
    with pytest.raises(FeatureStoreError, match="no such table.*lakebook features apply"):
        features.materialize(ws, *WINDOWS[0], ["line_stats"])
    assert features.feature_store(ws).get_feature_view("line_stats").materialization_intervals == []


def test_materialize_command_names_the_engine(pair):
    from click.testing import CliRunner

    from lakebook.cli import cli

    def run(*args):
        result = CliRunner().invoke(cli, ["-w", str(pair[1].root), "features", "materialize", "--start",
                                          "2024-05-01 01:00:00", "--end", "2024-05-01 10:00:00", *args],
                                    obj={}, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    assert "line_stats: lakebook, 21 entities in" in run("--view", "line_stats")
    assert "line_stats: feast" in run("--view", "line_stats", "--engine", "feast")


def _feast_input(column):
    """The numpy values Feast's materialization hands its converter (after its pandas step)."""
    import pyarrow as pa

    return pa.Table.from_pandas(pa.table({"c": column}).to_pandas()).column(0).to_numpy(zero_copy_only=False)


def test_column_encoders_give_feasts_bytes():
    """Edge values straight against Feast's per-row code: values and value_text, entity keys of
    one and two keys, and Redis event times (before 1970 too)."""
    import numpy as np
    import pyarrow as pa
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.infra.online_stores.helpers import extract_text_and_num
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.type_map import python_values_to_proto_values
    from feast.value_type import ValueType
    from google.protobuf.timestamp_pb2 import Timestamp

    from lakebook.features import encoding

    columns = [
        (ValueType.DOUBLE, pa.array([0.0, -0.0, 1.5, None, math.nan, math.inf, 1e20, 1e-300, -2.5], pa.float64())),
        (ValueType.FLOAT, pa.array([0.0, 0.1, None, math.nan, -3.25, 1e30, 7.0, -0.0], pa.float32())),
        (ValueType.INT64, pa.array([0, 1, -1, 127, 128, 300, BIG, 2 ** 62, -2 ** 63, 2 ** 63 - 1], pa.int64())),
        (ValueType.INT64, pa.array([0, None, -1, 2 ** 53, -2 ** 53, 5], pa.int64())),
        (ValueType.INT64, pa.array([BIG, None, -2 ** 60], pa.int64())),  # through float64, as Feast does
        (ValueType.INT32, pa.array([0, 1, -1, 127, 128, None, 2 ** 31 - 1, -2 ** 31, 16384], pa.int32())),
        (ValueType.BOOL, pa.array([True, False, None, True])),
        (ValueType.STRING, pa.array(["", "a", None, "é€😀", "x" * 200, "0", "None", "\x00", "b" * 127])),
        (ValueType.STRING, pa.array([1, None, -7], pa.int64())),  # a type Feast converts itself
    ]
    for value_type, column in columns:
        column = encoding.as_feast_sees(column, column.null_count > 0)
        protos = python_values_to_proto_values(_feast_input(column), value_type)
        assert encoding.value_protos(column, value_type.value) == [p.SerializeToString() for p in protos], value_type
        assert encoding.value_texts(column, value_type.value) == [extract_text_and_num(p, False)[0] for p in protos]
    assert (encoding.STRING, encoding.INT32, encoding.INT64, encoding.DOUBLE, encoding.FLOAT, encoding.BOOL) == tuple(
        ValueType[n].value for n in ("STRING", "INT32", "INT64", "DOUBLE", "FLOAT", "BOOL"))

    names = pa.array(["C1", "é", "", "x" * 300])
    for keys, types in [({"customer_id": names}, {"customer_id": ValueType.STRING}),
                        ({"b": pa.array([1, -5, 2 ** 40, 0]), "a": names}, {"b": ValueType.INT64, "a": ValueType.STRING}),
                        ({"z": pa.array([1, -5, 7, 0], pa.int32())}, {"z": ValueType.INT32}),
                        ({"x": pa.array([1, -5, 7, 0])}, {"x": ValueType.STRING})]:
        values = [python_values_to_proto_values(_feast_input(keys[k]), types[k]) for k in keys]
        feasts = [serialize_entity_key(EntityKey(join_keys=list(keys), entity_values=list(row)), 3) for row in zip(*values)]
        assert encoding.entity_keys(keys, {k: t.value for k, t in types.items()}) == feasts

    micros = np.array([0, 1, 999_999, 1_000_000, 1_714_539_600_123_456, -1, -1_500_000, 253_402_300_799_999_999])
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    stamps = [Timestamp() for _ in micros]
    for stamp, us in zip(stamps, micros.tolist()):
        stamp.FromDatetime(epoch + timedelta(microseconds=us))
    assert encoding.timestamp_protos(micros) == [s.SerializeToString() for s in stamps]
