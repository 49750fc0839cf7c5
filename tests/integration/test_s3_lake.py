"""The lake on S3-compatible storage (``lake.root: s3://bucket/lake``) against a real local
S3 server (moto's standalone server, tests/s3_support.py): events sent over HTTP to a real
ingest server are flushed into the bucket, and ``lakebook query``, the query engine and the
Lake panel's preview endpoint read them back from there; nothing is written to a local lake.
Endpoint, region and credentials reach every process through the environment only."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import orjson
import pytest
from traitlets.config import Config

from events import flight, weather
from ingest_support import NDJSON, flush, ingest_server, make_workspace, ndjson  # noqa: F401 (ingest_server is a fixture)
from s3_support import s3, s3_env  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

FLIGHTS, WEATHER = 30, 6
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def s3_ws(s3, s3_env, tmp_path) -> tuple[Path, str]:
    """A workspace whose lake is ``s3://<a fresh bucket>/lake``."""
    bucket = s3.create_bucket(f"lake-{uuid.uuid4().hex[:12]}")
    root = make_workspace(tmp_path / "ws", f"name: s3lake\nlake:\n  root: s3://{bucket}/lake\n")
    (root / "notebooks").mkdir()
    return root, bucket


def lakebook(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lakebook", *args], cwd=root, capture_output=True, text=True,
                          timeout=120)


def local_parquet(root: Path) -> list[Path]:
    return [p for p in root.rglob("*.parquet")]


def test_events_sent_over_http_are_flushed_into_the_bucket_and_queried_from_there(s3, s3_ws, ingest_server):
    root, bucket = s3_ws
    server = ingest_server(root, flush_interval_s=60)
    with server.client() as http:
        sent = http.post("/v1/events/flights", content=ndjson([flight(i) for i in range(FLIGHTS)]), headers=NDJSON)
        wx = http.post("/v1/events/weather", json=[weather(i) for i in range(WEATHER)])
        bad = http.post("/v1/events/flights", content=orjson.dumps([flight(99, carrier=None)]),
                        headers={"content-type": "application/json"})
    assert (sent.status_code, wx.status_code) == (200, 200), (sent.text, wx.text)
    assert bad.status_code in (200, 207, 422) and bad.json()["rejected"], bad.text

    report = flush(root)
    assert report.events == FLIGHTS + WEATHER and report.rejected == 1 and not report.failed
    keys = s3.keys(bucket)
    assert {k.split("/date=")[0] for k in keys} == {"lake/raw/flights", "lake/raw/weather", "lake/quarantine/flights"}
    assert all(k.startswith("lake/") and k.endswith(".parquet") for k in keys)
    assert flush(root).events == 0 and sorted(s3.keys(bucket)) == sorted(keys)  # nothing written twice
    assert local_parquet(root) == [] and not (root / ".lakebook" / "lake").exists()

    answer = lakebook(root, "query", "SELECT count(*) AS n, count(DISTINCT flight) AS f, min(date) AS d "
                                     "FROM raw.flights", "--format", "json")
    assert answer.returncode == 0, answer.stderr
    assert json.loads(answer.stdout) == [{"n": FLIGHTS, "f": FLIGHTS, "d": "2013-01-01T00:00:00.000"}]
    weather_rows = lakebook(root, "query", "SELECT count(*) AS n FROM raw.weather", "--format", "json")
    assert json.loads(weather_rows.stdout) == [{"n": WEATHER}], weather_rows.stderr
    quarantined = lakebook(root, "query", "SELECT count(*) AS n FROM quarantine.flights", "--format", "json")
    assert json.loads(quarantined.stdout) == [{"n": 1}], quarantined.stderr


def test_the_catalog_stores_lake_files_relative_to_the_bucket_root(s3_ws):
    from events import log_events
    from lakebook.catalog import open_catalog
    from lakebook.workspace import Workspace

    root, bucket = s3_ws
    ws = Workspace.load(root)
    assert not log_events(ws, "flights", [flight(i) for i in range(5)])["rejected"]
    flush(root)
    catalog = open_catalog(ws)
    try:
        files = catalog.files("raw", "flights")
        assert files == [f"s3://{bucket}/lake/raw/flights/date=2013-01-01/part-000000000001-000000000001.parquet"]
        with catalog.engine.connect() as con:
            stored = [r[0] for r in con.exec_driver_sql("SELECT path FROM files")]
        assert stored == ["raw/flights/date=2013-01-01/part-000000000001-000000000001.parquet"]
        assert catalog.table("raw.flights").row_count == 5
    finally:
        catalog.close()


def test_a_warm_query_asks_s3_about_a_lake_file_only_when_it_opens_it(s3, s3_ws):
    """DuckDB checks that each listed file exists and asks its size and its time before it
    opens it (pyarrow sends a HEAD request when it opens a file, too): ~8 HEAD requests per
    file and query here. The lake's Parquet keys never change once written, so lakebook answers
    the checks from what S3 said the first time; what is left are the opens."""
    from events import log_events
    from lakebook.query import LakeSession
    from lakebook.workspace import Workspace

    root, bucket = s3_ws
    ws = Workspace.load(root)
    for start in range(0, 40, 10):
        assert not log_events(ws, "flights", [flight(i) for i in range(start, start + 10)])["rejected"]
        flush(root)
    files = s3.keys(bucket, "lake/raw/flights/")
    assert len(files) == 4

    def heads() -> int:
        return sum(1 for line in s3.log.read_text().splitlines()
                   if f'"HEAD /{bucket}/lake/raw/flights/' in line)

    session = LakeSession(ws)
    sql = "SELECT count(*) AS n, count(DISTINCT flight) AS flights FROM raw.flights"
    assert session.query(sql).table.to_pylist() == [{"n": 40, "flights": 40}]
    before = heads()
    for _ in range(3):
        assert session.query(sql).table.to_pylist() == [{"n": 40, "flights": 40}]
    asked = heads() - before
    assert 0 < asked <= 3 * 3 * len(files), f"{asked} HEAD requests for 3 queries over {len(files)} files"


def test_a_missing_bucket_and_a_dead_endpoint_are_clear_errors_without_secrets(s3, s3_env, tmp_path, monkeypatch):
    from events import log_events
    from lakebook.errors import LakeUnavailable
    from lakebook.lake import store
    from lakebook.workspace import Workspace

    root = make_workspace(tmp_path / "ws", "name: s3lake\nlake:\n  root: s3://no-such-bucket-here/lake\n")
    ws = Workspace.load(root)
    assert not log_events(ws, "flights", [flight(0)])["rejected"]
    report = flush(root)
    assert report.events == 0 and [f.source for f in report.failed] == ["flights", "planes (blobs)"]
    assert all("bucket 'no-such-bucket-here' does not exist at " + s3.endpoint in f.error for f in report.failed)
    with pytest.raises(LakeUnavailable, match="does not answer") as info:
        store.check_bucket(store._make_filesystem(store.S3Options("http://127.0.0.1:9", "us-east-1")), "b",
                           store.S3Options("http://127.0.0.1:9", "us-east-1"))
    assert s3_env["AWS_SECRET_ACCESS_KEY"] not in str(info.value) and "AWS_ENDPOINT_URL" in info.value.hint


# -- the Lake panel's preview, on a real Jupyter server --------------------------------------
@pytest.fixture
def jp_root_dir(s3_ws) -> Path:
    from events import log_events
    from lakebook.workspace import Workspace

    root, _ = s3_ws
    ws = Workspace.load(root)
    assert not log_events(ws, "flights", [flight(i) for i in range(FLIGHTS)])["rejected"]
    flush(root)
    return root / "notebooks"


@pytest.fixture
def jp_server_config() -> Config:
    return Config({"ServerApp": {"jpserver_extensions": {"lakebook": True}}})


@pytest.mark.usefixtures("jp_server_cleanup")
async def test_the_preview_endpoint_reads_the_table_from_the_bucket(jp_fetch, jp_root_dir):
    response = await jp_fetch("lakebook", "api", "tables", "raw.flights", "preview", params={"limit": 1000})
    doc = json.loads(response.body)
    assert response.code == 200 and doc["row_count"] == len(doc["rows"]) == FLIGHTS
    detail = json.loads((await jp_fetch("lakebook", "api", "tables", "raw.flights")).body)
    assert detail["row_count"] == FLIGHTS and detail["bytes"] > 0
    assert local_parquet(jp_root_dir.parent) == []


# -- DuckDB transforms and seeds ----------------------------------------------------------------
SQL_TRANSFORMS = ["flights_clean", "weather_hourly", "prediction_outcomes", "prediction_quality"]


def _example_workspace(root: Path, lake_root: str | None, *, feature_jobs: bool = False) -> Path:
    import shutil

    config = "name: t\n" + (f"lake:\n  root: {lake_root}\n" if lake_root else "")
    make_workspace(root, config)
    (root / "transforms").mkdir()
    for name in SQL_TRANSFORMS:
        shutil.copy(REPO / "transforms" / f"{name}.sql", root / "transforms")
    if feature_jobs:  # the example's Spark feature jobs (Python transforms)
        shutil.copy(REPO / "transforms" / "features.py", root / "transforms")
        shutil.copytree(REPO / "feature_repo", root / "feature_repo")  # windows.yaml declares two of them
    shutil.copytree(REPO / "seeds", root / "seeds")
    return root


def _build(root: Path, first: int, count: int, engine: str = "duckdb", names=SQL_TRANSFORMS) -> list[tuple[str, str, int]]:
    """Log ``count`` flights (two months) and weather, flush, load the seeds, run the SQL transforms."""
    from events import log_events
    from lakebook.transform import load_seeds, run_transforms
    from lakebook.workspace import Workspace

    ws = Workspace.load(root)
    assert not log_events(ws, "flights", [flight(i, month=1 + i % 2) for i in range(first, first + count)])["rejected"]
    assert not log_events(ws, "weather", [weather(i) for i in range(first, first + count // 5)])["rejected"]
    assert not flush(root).failed
    load_seeds(ws)
    return [(r.name, r.status, r.rows) for r in run_transforms(ws, names, engine=engine)]


def _tables(root: Path, extra: tuple[str, ...] = ()) -> dict[str, list]:
    from lakebook.query import LakeSession
    from lakebook.workspace import Workspace

    session = LakeSession(Workspace.load(root))
    names = ["ref.airlines", "ref.airports", "ref.planes", *(f"warehouse.{n}" for n in SQL_TRANSFORMS), *extra]
    return {n: sorted(map(repr, session.query(f"SELECT * EXCLUDE (flight_id) FROM {n}" if n.endswith("flights_clean")
                                               else f"SELECT * FROM {n}").table.to_pylist())) for n in names}


def test_the_examples_duckdb_transforms_on_an_s3_lake_equal_those_on_a_local_lake(s3, s3_ws, tmp_path):
    _, bucket = s3_ws
    s3_root = _example_workspace(tmp_path / "on_s3", f"s3://{bucket}/lake")
    local_root = _example_workspace(tmp_path / "local", None)
    for first, count in ((0, 40), (40, 25)):  # the second run of flights_clean is incremental
        on_s3, local = _build(s3_root, first, count), _build(local_root, first, count)
        assert on_s3 == local and ("warehouse.flights_clean", "ok", count) in on_s3
    assert _tables(s3_root) == _tables(local_root)
    assert len(_tables(s3_root)["warehouse.flights_clean"]) == 65
    keys = s3.keys(bucket, "lake/")
    assert any(k.startswith("lake/warehouse/flights_clean/version-") for k in keys)
    assert any(k.startswith("lake/ref/airlines/version-") for k in keys)
    assert not any("/current" in k or ".tmp" in k for k in keys)
    assert local_parquet(s3_root) == []


def test_a_rollback_on_an_s3_lake_is_a_catalog_commit_and_spark_is_refused(s3, s3_ws, tmp_path):
    from lakebook.errors import NotOnS3Lake
    from lakebook.query import LakeSession
    from lakebook.transform import kept_versions, rollback, spark_session
    from lakebook.workspace import Workspace

    _, bucket = s3_ws
    root = _example_workspace(tmp_path / "on_s3", f"s3://{bucket}/lake")
    _build(root, 0, 40)
    _build(root, 40, 25)  # weather_hourly (a full transform) has two versions now: 8 rows, then 13
    ws = Workspace.load(root)
    kept = kept_versions(ws, "warehouse.weather_hourly")
    assert [(v.current, v.rows) for v in kept] == [(False, 8), (True, 13)]
    target = rollback(ws, "warehouse.weather_hourly")
    assert target.name == kept[0].name
    read = LakeSession(ws).query("SELECT count(*) AS n FROM warehouse.weather_hourly").table.to_pylist()
    assert read == [{"n": 8}]
    assert [v.current for v in kept_versions(ws, "warehouse.weather_hourly")] == [True, False]
    with pytest.raises(NotOnS3Lake, match="Spark is not supported on an S3 lake outside transforms.*hadoop-aws"):
        spark_session(ws)  # refused before a JVM starts


def test_the_lake_magic_reads_an_s3_lake(s3_ws, monkeypatch):
    from IPython.core.interactiveshell import InteractiveShell

    from events import log_events
    from lakebook.workspace import Workspace

    from lakebook.ingest.blobs import BlobStore

    root, _ = s3_ws
    ws = Workspace.load(root)
    assert not log_events(ws, "flights", [flight(i, origin=("EWR", "JFK")[i % 2]) for i in range(FLIGHTS)])["rejected"]
    BlobStore.of(ws).put("planes", "fleet.csv", b"tailnum,seats\nN1,5\nX,0\n", "text/csv")
    flush(root)
    monkeypatch.chdir(root)
    ip = InteractiveShell.instance()
    try:
        ip.run_line_magic("load_ext", "lakebook")
        result = ip.run_cell_magic("lake", "", "SELECT origin, count(*) AS n FROM raw.flights GROUP BY 1 ORDER BY 1")
        assert result.table.to_pylist() == [{"origin": "EWR", "n": FLIGHTS // 2}, {"origin": "JFK", "n": FLIGHTS // 2}]
        assert "raw.flights: last event" in repr(result)
        tables = ip.run_line_magic("lake", "tables")
        assert tables.set_index("table").loc["raw.flights", "rows"] == FLIGHTS
        blobs = ip.run_cell_magic("lake", "", "SELECT name, status, rows, rejected FROM blobs.planes").table
        assert blobs.to_pylist() == [{"name": "fleet.csv", "status": "partly rejected", "rows": 2, "rejected": 1}]
        assert ip.run_cell_magic("lake", "", "SELECT tailnum, _row FROM raw.planes").table.to_pylist() == [
            {"tailnum": "N1", "_row": 1}]
    finally:
        ip.user_ns.clear()
        InteractiveShell.clear_instance()


FEATURES = ("features.origin_delays", "features.origin_weather", "features.carrier_daily", "features.plane_stats")


def test_spark_transforms_and_feature_jobs_on_an_s3_lake_equal_those_on_a_local_lake(s3, s3_ws, tmp_path):
    """Spark reads local copies of the bucket's files and its output is uploaded under the
    version's key; the catalog commit publishes it (no s3a:// jars needed)."""
    _, bucket = s3_ws
    s3_root = _example_workspace(tmp_path / "on_s3", f"s3://{bucket}/lake", feature_jobs=True)
    local_root = _example_workspace(tmp_path / "local", None, feature_jobs=True)
    for first, count in ((0, 40), (40, 25)):  # the second run of flights_clean is incremental
        on_s3 = _build(s3_root, first, count, "spark", None)
        assert on_s3 == _build(local_root, first, count, "spark", None)
        assert ("warehouse.flights_clean", "ok", count) in on_s3 and len(on_s3) == len(SQL_TRANSFORMS) + len(FEATURES)
        # Feast over the example's feature views: the same training sets and online values;
        # after the second build, without `features apply`, the newly published versions
        entities = _entities(local_root)
        assert _features(s3_root, entities) == _features(local_root, entities)
        assert _features(s3_root, entities)["filled"] > 0  # not two empty frames
    assert _tables(s3_root, FEATURES) == _tables(local_root, FEATURES)
    keys = s3.keys(bucket, "lake/")
    assert {k.split("/")[1] + "." + k.split("/")[2] for k in keys if k.startswith("lake/features/")} == set(FEATURES)
    assert local_parquet(s3_root / "transforms") == [] and not (s3_root / ".lakebook" / "lake").exists()
    assert list((s3_root / ".lakebook" / "s3cache" / "_staging").rglob("*.parquet")) == []  # uploaded, then removed


def _entities(root: Path):
    from lakebook.query import LakeSession
    from lakebook.workspace import Workspace

    return LakeSession(Workspace.load(root)).query(
        "SELECT sched_dep_at AS event_timestamp, origin, carrier, tailnum, arr_late FROM warehouse.flights_clean "
        "WHERE tailnum IS NOT NULL ORDER BY ALL").df()


def _rows(frame) -> list[str]:
    return sorted(repr({k: (None if v != v else v) for k, v in row.items()})  # NaN and NaT as None
                  for row in frame.to_dict("records"))


def _features(root: Path, entities) -> dict:
    """What the example's feature views give: applied once (the first call), training sets by
    lakebook's ASOF join and by Feast, online values materialized by Feast and by lakebook."""
    from lakebook import features
    from lakebook.workspace import Workspace

    ws = Workspace.load(root)
    if not (ws.feast_dir / "registry.db").exists():
        assert features.apply(ws)["feature_views"]
    asof = features.training_set(entities, "flight_delay_v1", ws)
    by_feast = features.training_set(entities, "flight_delay_v1", ws, engine="feast")
    assert _rows(asof) == _rows(by_feast)
    keys = [{"origin": o, "carrier": c, "tailnum": t}
            for o, c, t in entities[["origin", "carrier", "tailnum"]].drop_duplicates().itertuples(index=False)]
    online = {}
    for engine in ("feast", "auto"):
        done = features.materialize(ws, engine=engine)
        assert set(done["engines"].values()) == ({"feast"} if engine == "feast" else {"lakebook"})
        online[engine] = features.online_features(ws, "flight_delay_v1", keys)
    assert online["feast"] == online["auto"]
    columns = [c for c in asof.columns if c not in entities.columns]
    return {"training": _rows(asof), "online": online["auto"], "filled": float(asof[columns].notna().to_numpy().mean())}


def test_mlflow_artifacts_go_beside_an_s3_lake(s3, s3_ws, tmp_path):
    import mlflow

    from lakebook.ml.tracking import artifact_location, setup_mlflow
    from lakebook.workspace import Workspace

    root, bucket = s3_ws
    ws = Workspace.load(root)
    assert artifact_location(ws) == f"s3://{bucket}/lake/_mlflow/artifacts"
    client = setup_mlflow(ws, "s3-artifacts")
    note = tmp_path / "note.txt"
    note.write_text("kept beside the lake")
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(note), "notes")
    assert any(k.startswith("lake/_mlflow/artifacts/s3-artifacts/") and k.endswith("notes/note.txt")
               for k in s3.keys(bucket))
    fetched = client.download_artifacts(run.info.run_id, "notes/note.txt", str(tmp_path / "back"))
    assert Path(fetched).read_text() == "kept beside the lake"
    assert not list((root / ".lakebook" / "mlflow").glob("artifacts*"))


def test_monitor_checks_measure_the_files_of_an_s3_lake(s3_ws):
    from events import log_events
    from lakebook.monitor.engine import evaluate
    from lakebook.workspace import Workspace

    root, _ = s3_ws
    (root / "monitors").mkdir()
    (root / "monitors" / "checks.yaml").write_text(
        "checks:\n"
        "  - {check: missing_share(raw.flights.arr_delay), warn: '> 10%', for: 0}\n"
        "  - {check: row_count(raw.flights), fail: '< 1'}\n")
    ws = Workspace.load(root)
    log_events(ws, "flights", [flight(i) for i in range(6)] + [flight(6, arr_delay=None)])
    flush(root)
    results = {c.name: r for c, r, _ in evaluate(ws).results}
    missing = results["missing_share_raw_flights_arr_delay"]
    assert missing.value == pytest.approx(100 / 7) and missing.state == "firing", missing.detail
    assert results["row_count_raw_flights"].value == 7
