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
import time
from pathlib import Path

import duckdb
import httpx
import pytest
import yaml

from lakebook.catalog import open_catalog
from lakebook.services import free_port
from lakebook.workspace import Workspace

pytestmark = pytest.mark.integration

SPARK_HOME = Path(__import__("pyspark").__file__).parent
SPARK_CLASS = SPARK_HOME / "bin" / "spark-class"


def _daemon(args: list[str], log: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen([str(SPARK_CLASS), *args], stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)


def _wait_for(url: str, pattern: str, proc: subprocess.Popen, log: Path, timeout_s: float = 90) -> None:
    """Until the daemon's web page (JSON where it has it) matches ``pattern``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            if re.search(pattern, httpx.get(url, timeout=2).text):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} never showed {pattern!r}:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def spark_cluster(tmp_path_factory):
    """A standalone master and one worker (2 cores, 2 GiB) bound to 127.0.0.1: the master URL."""
    work = tmp_path_factory.mktemp("spark-cluster")
    env = {**os.environ, "SPARK_HOME": str(SPARK_HOME), "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOG_DIR": str(work),
           "SPARK_WORKER_DIR": str(work / "worker"), "PYSPARK_PYTHON": sys.executable}
    port, master_ui, worker_ui = free_port(), free_port(), free_port()
    master = _daemon(["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
                      "--webui-port", str(master_ui)], work / "master.log", env)
    url = f"spark://127.0.0.1:{port}"
    worker = None
    try:
        _wait_for(f"http://127.0.0.1:{master_ui}/json/", r'"status"\s*:\s*"ALIVE"', master, work / "master.log")
        worker = _daemon(["org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--cores", "2",
                          "--memory", "2g", "--webui-port", str(worker_ui), url], work / "worker.log", env)
        _wait_for(f"http://127.0.0.1:{master_ui}/json/", r'"aliveworkers"\s*:\s*1', worker, work / "worker.log")
        yield url, work
    finally:
        for proc in (worker, master):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, 15)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, 9)
                    proc.wait()


def _tables(ws: Workspace) -> dict[str, list[tuple]]:
    """Every transform output (warehouse and features zones), its rows sorted."""
    catalog = open_catalog(ws)
    con = duckdb.connect()
    out = {}
    for zone in ("warehouse", "features"):
        for table in catalog.tables(zone):
            files = catalog.files(zone, table.name)
            if not files:
                out[table.qualified_name] = []
                continue
            rows = con.execute("SELECT * FROM read_parquet(?, hive_partitioning = true, union_by_name = true)",
                               [files]).fetchall()
            out[table.qualified_name] = sorted(rows, key=repr)
    catalog.close()
    return out


def test_the_transforms_and_feature_jobs_on_a_standalone_cluster_equal_the_local_run(spark_cluster, flights_ws,
                                                                                    tmp_path):
    url, work = spark_cluster
    local = _tables(flights_ws)
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
    apps = httpx.get(f"http://127.0.0.1:{_master_ui_port(work)}/json/", timeout=5).json()
    ran = apps["completedapps"] + apps["activeapps"]
    assert any(app["name"].startswith("lakebook-") for app in ran), ran
    assert any((work / "worker").glob("app-*/*/stderr")), "the worker ran no executor"

    remote = _tables(Workspace.load(flights_ws.root))
    assert set(remote) == set(local)
    for name in local:
        assert remote[name] == local[name], f"{name}: {len(remote[name])} rows on the cluster, {len(local[name])} locally"


def _master_ui_port(work: Path) -> int:
    """The master's web UI port, from its log ("Bound MasterWebUI to 127.0.0.1, and started at …:PORT")."""
    found = re.search(r"MasterWebUI.*?:(\d+)\s*$", (work / "master.log").read_text(), re.M)
    assert found, (work / "master.log").read_text()[-2000:]
    return int(found.group(1))


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

    url, work = spark_cluster
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
        apps = httpx.get(f"http://127.0.0.1:{_master_ui_port(work)}/json/", timeout=5).json()
        assert any(app["name"] == "lakebook-t" for app in apps["completedapps"] + apps["activeapps"]), apps
        assert any((work / "worker").glob("app-*/*/stderr")), "the worker ran no executor"

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
