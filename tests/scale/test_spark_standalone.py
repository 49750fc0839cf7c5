"""``batch.master: spark://…``: the example transforms and feature jobs run on a real Spark
standalone cluster — a master and one worker started on loopback from the pyspark wheel
(``spark-class …deploy.master.Master`` / ``…deploy.worker.Worker``) — and give what the same
transforms gave on ``local[2]``.

The session's template workspace was built on ``local[2]`` (tests/workspace_templates.py). A
copy of it points ``batch.master`` at the cluster and rebuilds every transform with
``lakebook transform run --full-refresh`` in a process of its own (a driver JVM is one master
per process); each output table then holds the same rows as the template's.

On an S3 lake (moto's server), the same cluster runs them with ``batch.s3_staging: shared``
(its worker is on the driver's host, so it reads the driver's local copies of the bucket's
files) and gives what ``local[2]`` gives over a local lake; without the setting, it is refused."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import yaml

from cluster_support import output_tables
from cluster_support import spark_cluster as start_spark_cluster
from lakebook.catalog import open_catalog
from lakebook.workspace import Workspace

pytestmark = pytest.mark.integration

@pytest.fixture(scope="module")
def spark_cluster(tmp_path_factory):
    """A standalone master and one worker bound to 127.0.0.1 (cluster_support.spark_cluster)."""
    with start_spark_cluster(tmp_path_factory.mktemp("spark-cluster")) as cluster:
        yield cluster


def test_the_transforms_and_feature_jobs_on_a_standalone_cluster_equal_the_local_run(spark_cluster, flights_ws,
                                                                                    tmp_path):
    url = spark_cluster.url
    local = output_tables(flights_ws)
    assert {"warehouse.flights_clean", "features.origin_delays"} <= set(local), sorted(local)
    assert all(local[name] for name in ("warehouse.flights_clean", "features.origin_delays"))

    config = yaml.safe_load((flights_ws.root / "lakebook.yaml").read_text())
    config["batch"].update(master=url, conf={"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1",
                                             "spark.executor.memory": "1g", "spark.cores.max": "2"})
    (flights_ws.root / "lakebook.yaml").write_text(yaml.safe_dump(config))
    done = subprocess.run([sys.executable, "-m", "lakebook", "-w", str(flights_ws.root), "transform", "run",
                           "--full-refresh"], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYSPARK_PYTHON": sys.executable, "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for name in ("warehouse.flights_clean", "features.origin_delays"):
        assert re.search(rf"^{re.escape(name)}: ok \(full, spark\)", done.stdout, re.M), done.stdout

    # the work ran on the cluster: the master lists the application as finished, the worker ran executors
    ran = spark_cluster.applications()
    assert any(app["name"].startswith("lakebook-") for app in ran), ran
    assert spark_cluster.executors_ran(), "the worker ran no executor"

    remote = output_tables(Workspace.load(flights_ws.root))
    assert set(remote) == set(local)
    for name in local:
        assert remote[name] == local[name], f"{name}: {len(remote[name])} rows on the cluster, {len(local[name])} locally"


# -- an S3 lake, staged on a cluster whose worker shares the driver's filesystem ---------------
SQL_TRANSFORMS = ["flights_clean", "weather_hourly", "prediction_outcomes", "prediction_quality"]


def _example(root: Path, config: dict) -> Workspace:
    """A workspace of the example's transforms, seeds and feature jobs, with 60 flights and
    12 weather events flushed into its lake and the seeds loaded."""
    import shutil

    from events import flight, log_events, weather
    from lakebook.ingest import flush_ingest_log_to_raw
    from lakebook.transform import load_seeds

    repo = Path(__file__).resolve().parents[2]
    root.mkdir(parents=True)
    (root / "lakebook.yaml").write_text(yaml.safe_dump({"name": "t", **config}))
    shutil.copytree(repo / "contracts", root / "contracts", ignore=shutil.ignore_patterns("airport_status.yaml"))
    (root / "transforms").mkdir()
    for name in SQL_TRANSFORMS:
        shutil.copy(repo / "transforms" / f"{name}.sql", root / "transforms")
    shutil.copy(repo / "transforms" / "features.py", root / "transforms")
    shutil.copytree(repo / "feature_repo", root / "feature_repo")
    shutil.copytree(repo / "seeds", root / "seeds")
    ws = Workspace.load(root)
    assert not log_events(ws, "flights", [flight(i, month=1 + i % 2) for i in range(60)])["rejected"]
    assert not log_events(ws, "weather", [weather(i) for i in range(12)])["rejected"]
    assert not flush_ingest_log_to_raw(ws).failed
    load_seeds(ws)
    return ws


def _run_transforms(ws: Workspace, home: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "lakebook", "-w", str(ws.root), "transform", "run", "--engine", "spark"],
                          capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYSPARK_PYTHON": sys.executable, "HOME": str(home)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def _lake_tables(ws: Workspace) -> dict[str, list[tuple]]:
    """_tables, for a lake on S3 as well (read through the lake's filesystem)."""
    from lakebook.lake.store import register_with_duckdb

    catalog = open_catalog(ws)
    con = duckdb.connect()
    register_with_duckdb(con, ws.lake.root)
    out = {}
    for zone in ("warehouse", "features"):
        for table in catalog.tables(zone):
            files = catalog.files(zone, table.name)
            rows = con.execute("SELECT * EXCLUDE (flight_id) FROM read_parquet(?, hive_partitioning = true, "
                               "union_by_name = true)" if table.name == "flights_clean" else
                               "SELECT * FROM read_parquet(?, hive_partitioning = true, union_by_name = true)",
                               [files]).fetchall() if files else []
            out[table.qualified_name] = sorted(rows, key=repr)
    catalog.close()
    return out


def test_spark_on_an_s3_lake_runs_on_a_cluster_that_shares_the_drivers_filesystem(spark_cluster, tmp_path,
                                                                                   monkeypatch):
    """``batch.s3_staging: shared``: the worker (on this host) reads the driver's local copies
    of the bucket's files and writes into its staging folder; the driver uploads the output."""
    from s3_support import start_s3_server

    url = spark_cluster.url
    s3 = start_s3_server(tmp_path / "moto")
    try:
        for name, value in s3.env.items():
            monkeypatch.setenv(name, value)
        for name in ("AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
            monkeypatch.delenv(name, raising=False)
        bucket = s3.create_bucket("lake-on-a-cluster")
        batch = {"master": url, "conf": {"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1",
                                         "spark.executor.memory": "1g", "spark.cores.max": "2"}}
        on_s3 = _example(tmp_path / "on_s3", {"lake": {"root": f"s3://{bucket}/lake"}, "batch": batch})
        local = _example(tmp_path / "local", {"batch": {"master": "local[2]"}})

        refused = subprocess.run([sys.executable, "-m", "lakebook", "-w", str(on_s3.root), "transform", "run",
                                  "--engine", "spark"], capture_output=True, text=True, timeout=300,
                                 env={**os.environ, "HOME": str(tmp_path)})
        assert refused.returncode != 0 and "batch.s3_staging: shared" in refused.stdout + refused.stderr

        config = yaml.safe_load((on_s3.root / "lakebook.yaml").read_text())
        config["batch"]["s3_staging"] = "shared"
        (on_s3.root / "lakebook.yaml").write_text(yaml.safe_dump(config))
        ran = _run_transforms(Workspace.load(on_s3.root), tmp_path)
        for name in ("warehouse.flights_clean", "features.origin_delays"):
            assert re.search(rf"^{re.escape(name)}: ok \(full, spark\)", ran, re.M), ran
        apps = spark_cluster.applications()
        assert any(app["name"] == "lakebook-t" for app in apps), apps
        assert spark_cluster.executors_ran(), "the worker ran no executor"

        _run_transforms(local, tmp_path)
        remote, here = _lake_tables(Workspace.load(on_s3.root)), _lake_tables(local)
        assert set(remote) == set(here) and here["features.origin_delays"]
        for name in here:
            assert remote[name] == here[name], f"{name}: {len(remote[name])} rows on S3, {len(here[name])} locally"
        keys = s3.keys(bucket, "lake/")
        assert any(k.startswith("lake/features/origin_delays/version-") for k in keys)
        assert not (on_s3.root / ".lakebook" / "lake").exists()
    finally:
        s3.stop()
