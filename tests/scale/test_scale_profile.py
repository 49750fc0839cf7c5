"""The scale profile end to end: ``lakebook -p scale demo`` on every server twin at once, and
what it built equal to the same demo on the embedded defaults.

Started for real on loopback, each on a free port, for the module: PostgreSQL (the catalog and
job history; MLflow's backend store in a database of its own), Redis (Feast's online store and
the event bus), a Spark standalone master and worker (the batch layer), a Ray head and worker
node (the stream, the model endpoints, the notebook jobs), moto's S3 server and an MLflow
tracking server that keeps its artifacts in a bucket of it (``--artifacts-destination``: the
clients never see the bucket). The copy of the example workspace keeps the shipped
lakebook.scale.yaml with each address pointed at these servers' ports.

The lake is in moto's S3 server too (the profile's ``lake.root: s3://lakebook/nycflights``):
the demo process and every Ray node get the endpoint and credentials from their environment,
as a deployment gives them to its hosts; Spark's workers read the lake through the state
dir's copies (``batch.s3_staging: shared``: they run on this host)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from cluster_support import RayCluster, SparkCluster, output_tables, ray_cluster, spark_cluster
from s3_support import S3Server, start_s3_server
from server_support import MlflowServer, create_database, mlflow_server, postgres_server, redis_server
from lakebook.ml.tracking import tracking_uri
from lakebook.workspace import Workspace

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from test_demo import assert_job_step, assert_live_step, assert_monitor_step  # noqa: E402

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SAMPLE = 3000  # flights replayed, and the training set's size at most
BUCKET = "lakebook-mlflow"
DEMO_TIMEOUT_S = 900
AUC = re.compile(r"holdout ROC AUC: (\w+) (0\.\d{4}), logistic baseline (0\.\d{4})")


@dataclass
class Twins:
    catalog_url: str
    redis_port: int
    spark: SparkCluster
    ray: RayCluster
    s3: S3Server
    mlflow: MlflowServer


@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    """Every server twin, up for the module and torn down after it (in the reverse order)."""
    folder = tmp_path_factory.mktemp("twins")
    started = time.monotonic()
    with ExitStack() as stack:
        host, port = stack.enter_context(postgres_server())
        catalog_url = create_database(host, port, "lakebook")
        mlflow_store = create_database(host, port, "mlflow")
        redis_port = stack.enter_context(redis_server(folder))
        spark = stack.enter_context(spark_cluster(folder))
        s3 = start_s3_server(folder / "s3")
        stack.callback(s3.stop)
        s3.create_bucket(BUCKET)
        (folder / "ray").mkdir()
        ray = stack.enter_context(ray_cluster(folder / "ray", node_env=s3.env))
        mlflow = stack.enter_context(mlflow_server(folder, mlflow_store, f"s3://{BUCKET}/mlflow",
                                                   env={**s3.env, "MLFLOW_S3_ENDPOINT_URL": s3.endpoint}))
        print(f"twins up in {time.monotonic() - started:.0f} s")
        yield Twins(catalog_url, redis_port, spark, ray, s3, mlflow)


def example_copy(root: Path) -> Path:
    """The example workspace as `make demo` runs it: lakebook.yaml, its scale profile and folders."""
    root.mkdir()
    for name in ("lakebook.yaml", "lakebook.scale.yaml"):
        shutil.copy(REPO / name, root)
    for folder in ("contracts", "seeds", "transforms", "feature_repo", "notebooks", "jobs", "monitors", "imports"):
        shutil.copytree(REPO / folder, root / folder)
    return root


def point_profile_at(root: Path, twins: Twins) -> dict:
    """The copy's lakebook.scale.yaml with every address the shipped one names moved to the
    twins' ports (the file's other settings kept); the profile as written."""
    path = root / "lakebook.scale.yaml"
    profile = yaml.safe_load(path.read_text())
    assert profile["lake"]["root"].startswith("s3://")  # the lake in the object store: its bucket is made here
    twins.s3.create_bucket(profile["lake"]["root"][len("s3://"):].split("/")[0])
    profile["catalog"]["url"] = twins.catalog_url
    profile["batch"]["master"] = twins.spark.url
    profile["features"]["online_store"]["connection_string"] = f"127.0.0.1:{twins.redis_port}"
    profile["stream"]["bus"]["url"] = f"redis://127.0.0.1:{twins.redis_port}/0"
    for section in ("stream", "serving", "jobs"):
        profile[section]["ray_address"] = twins.ray.address
    profile["ml"]["tracking_uri"] = twins.mlflow.uri
    path.write_text(yaml.safe_dump(profile))
    return profile


def run_demo(root: Path, env: dict[str, str], *profile: str) -> str:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "lakebook", "-w", str(root), *profile, "demo", "--sample",
                           str(SAMPLE), "--train-sample", str(SAMPLE)], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=DEMO_TIMEOUT_S,
                          env={**env, "COLUMNS": "120", "PYSPARK_PYTHON": sys.executable})
    print(f"demo {' '.join(profile) or '(embedded)'}: {time.monotonic() - started:.0f} s")
    assert done.returncode == 0, done.stdout[-5000:]
    return done.stdout


def without_ray_or_aws(environ) -> dict[str, str]:
    return {k: v for k, v in environ.items() if not k.startswith(("RAY_", "AWS_", "MLFLOW_", "LAKEBOOK_"))}


@pytest.mark.timeout(2 * DEMO_TIMEOUT_S + 300)  # two demos (about 4 and 5 minutes on an idle machine of 2 cores)
def test_the_demo_on_every_twin_builds_what_it_builds_embedded(twins, tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    embedded_root = example_copy(tmp_path / "embedded")
    embedded_out = run_demo(embedded_root, {**without_ray_or_aws(os.environ), "HOME": str(home)})

    scale_root = example_copy(tmp_path / "scale")
    profile = point_profile_at(scale_root, twins)
    # the demo gets the Ray cluster's token and the object store's endpoint and credentials
    # (the lake's); MLflow's artifacts it never sees: the tracking server proxies their bucket
    scale_env = twins.ray.environment(HOME=str(home))
    scale_env = {k: v for k, v in scale_env.items() if not k.startswith(("AWS_", "MLFLOW_", "LAKEBOOK_"))}
    scale_out = run_demo(scale_root, {**scale_env, **twins.s3.env}, "-p", "scale")

    for name, value in twins.s3.env.items():  # this process reads the lake's bucket below
        monkeypatch.setenv(name, value)
    ws = Workspace.load(scale_root, environ={}, profile="scale")
    embedded = Workspace.load(embedded_root, environ={})
    assert "(Feast: DuckDB offline, Redis online)" in scale_out and f"MLflow at {twins.mlflow.uri}" in scale_out
    for out, root in ((scale_out, scale_root), (embedded_out, embedded_root)):
        assert f"flights: sent {SAMPLE:,}, accepted {SAMPLE:,}, rejected 0" in out
        assert_live_step(out)
        assert_job_step(out, root)
        assert_monitor_step(out)
    _check_catalog_in_postgres(ws, twins)
    _check_features_and_bus_in_redis(ws, twins)
    _check_batch_on_spark(scale_out, twins)
    _check_ray_cluster_ran_the_work(ws, twins)
    _check_mlflow_server_and_bucket(ws, scale_out, twins)
    _check_lake_in_the_bucket(ws, profile["lake"]["root"], twins)

    # the same pipeline on the same sample built the same tables, and trained the same models
    assert not (ws.state_dir / "catalog.sqlite").exists()
    built, expected = output_tables(ws), output_tables(embedded)
    assert set(built) == set(expected) and {"warehouse.flights_clean", "features.origin_delays"} <= set(built)
    for name in expected:
        assert len(built[name]) == len(expected[name]), name
        assert built[name] == expected[name], f"{name}: the twins' rows differ from the embedded run's"
    assert _transform_lines(scale_out) == _transform_lines(embedded_out)
    # the logistic baseline and scikit-learn's model are deterministic; PyTorch's within a tolerance
    trained, embedded_trained = _holdout_scores(twins.mlflow.uri), _holdout_scores(tracking_uri(embedded))
    assert set(trained) == set(embedded_trained) == {"baseline", "sklearn", "torch"}, (trained, embedded_trained)
    assert trained["baseline"] == pytest.approx(embedded_trained["baseline"], abs=1e-9)
    assert trained["sklearn"] == pytest.approx(embedded_trained["sklearn"], abs=1e-6)
    assert trained["torch"] == pytest.approx(embedded_trained["torch"], abs=0.02)
    assert AUC.search(scale_out) and AUC.search(embedded_out)


def _holdout_scores(uri: str) -> dict[str, float]:
    """The holdout ROC AUC of the latest training's baseline and of each kind of model."""
    from mlflow import MlflowClient

    client = MlflowClient(uri, uri)
    experiment = client.get_experiment_by_name("lakebook")
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])
    parent = next(r for r in runs if r.info.run_name == "train flight_delay")
    scores = {"baseline": parent.data.metrics["baseline_holdout_roc_auc"]}
    for run in runs:
        if run.data.tags.get("mlflow.parentRunId") == parent.info.run_id:
            scores[run.info.run_name] = run.data.metrics["holdout_roc_auc"]
    return scores


def _transform_lines(out: str) -> list[str]:
    """``warehouse.flights_clean (duckdb, full): ok, 3,000 rows`` without the seconds."""
    return [re.sub(r" in [\d.]+ s$", "", line) for line in out.splitlines()
            if re.match(r"^  (warehouse|features)\.\w+ \(\w+, (full|incremental)\): ", line)]


def _check_lake_in_the_bucket(ws: Workspace, root: str, twins: Twins) -> None:
    """Every zone the demo writes is in the bucket; no lake file was written locally (the state
    dir holds Spark's staging copies, ``s3cache/``, and nothing else of the lake)."""
    bucket, _, prefix = root[len("s3://"):].partition("/")
    keys = twins.s3.keys(bucket, prefix + "/")
    zones = {key[len(prefix) + 1:].split("/")[0] for key in keys}
    assert {"raw", "quarantine", "warehouse", "features", "speed", "blobs"} <= zones, sorted(zones)
    assert any(k.startswith(f"{prefix}/blobs/planes/") for k in keys), "the planes blob is not in the bucket"
    local = [p for p in ws.state_dir.rglob("*.parquet") if "s3cache" not in p.parts]
    assert local == [], local[:10]


def _check_catalog_in_postgres(ws: Workspace, twins: Twins) -> None:
    import psycopg

    from lakebook.catalog import open_catalog

    catalog = open_catalog(ws)
    try:
        assert catalog.engine.dialect.name == "postgresql"
        assert catalog.table("warehouse.flights_clean").row_count == SAMPLE
    finally:
        catalog.close()
    with psycopg.connect(twins.catalog_url.replace("postgresql+psycopg", "postgresql")) as con:
        tables = {row[0] for row in con.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert tables, "the catalog database holds no table"
        rows = {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
    assert sum(rows.values()) > 0, rows
    assert any(name.startswith("job") and count for name, count in rows.items()), rows  # the jobs' history too


def _check_features_and_bus_in_redis(ws: Workspace, twins: Twins) -> None:
    import redis

    client = redis.Redis(port=twins.redis_port)
    keys = [k.decode(errors="replace") for k in client.scan_iter(count=1000)]
    assert client.xlen("lakebook:events:flights") > 0, keys[:20]  # the bus
    feast_keys = [k for k in keys if not k.startswith("lakebook:")]
    assert feast_keys, keys[:20]  # Feast's online store: entity keys
    assert not list(ws.feast_dir.glob("*online*.db")), list(ws.feast_dir.iterdir())


def _check_batch_on_spark(out: str, twins: Twins) -> None:
    assert re.search(r"^  features\.origin_delays \(spark, full\): ok", out, re.M), out
    assert any(app["name"].startswith("lakebook-") for app in twins.spark.applications())
    assert twins.spark.executors_ran(), "the worker ran no executor"


def _check_ray_cluster_ran_the_work(ws: Workspace, twins: Twins) -> None:
    assert twins.ray.alive_nodes() == 2
    assert not list(ws.ray_dir.rglob("session_2*")), "a local Ray runtime was started"
    address = twins.ray.address
    assert f"(group speed, {address}; views" in ws.log_path("demo-stream").read_text()
    assert f"({address})" in ws.log_path("demo-serve").read_text()
    runner_logs = list(ws.job_runs_dir.glob("delay_report/*/runner.log"))
    assert runner_logs and all("a Ray task in worker" in p.read_text() for p in runner_logs), runner_logs


def _check_mlflow_server_and_bucket(ws: Workspace, out: str, twins: Twins) -> None:
    from mlflow import MlflowClient

    assert not (ws.mlflow_dir / "mlflow.db").exists() and not (ws.mlflow_dir / "artifacts").exists()
    client = MlflowClient(twins.mlflow.uri, twins.mlflow.uri)
    experiment = client.get_experiment_by_name("lakebook")
    runs = client.search_runs([experiment.experiment_id])
    assert {"train flight_delay", "sklearn", "torch"} <= {r.info.run_name for r in runs}
    keys = twins.s3.keys(BUCKET, "mlflow/")
    models = [k for k in keys if k.endswith("/MLmodel")]
    assert len(models) >= 2, keys[:20]  # scikit-learn's and PyTorch's models, proxied into the bucket
    registered = re.search(r"registered flight_delay v(\d+)", out)
    assert registered, "training registered no model on this sample"
    version = client.get_model_version("flight_delay", registered[1])
    model_id = getattr(version, "model_id", None) or version.source.rstrip("/").rsplit("/", 1)[-1]
    files = [k for k in keys if f"/{model_id}/" in k]
    assert any(k.endswith("/MLmodel") for k in files), (version.source, models)
    assert len(files) >= 3, files  # the model's files, not only its description
