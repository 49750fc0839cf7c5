"""``batch.master: spark://…``: the example transforms and feature jobs run on a real Spark
standalone cluster — a master and one worker started on loopback from the pyspark wheel
(``spark-class …deploy.master.Master`` / ``…deploy.worker.Worker``) — and give what the same
transforms gave on ``local[2]``.

The session's template workspace was built on ``local[2]`` (tests/workspace_templates.py). A
copy of it points ``batch.master`` at the cluster and rebuilds every transform with
``lakebook transform run --full-refresh`` in a process of its own (a driver JVM is one master
per process); each output table then holds the same rows as the template's."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import yaml

from cluster_support import output_tables
from cluster_support import spark_cluster as start_spark_cluster
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
