"""One Spark session per process, built from the workspace's ``batch`` settings.

Embedded default: ``local[*]`` bound to loopback with the UI off. Any master URL (standalone,
YARN, Kubernetes) by configuration. Timestamps are UTC and written as microseconds, which
is what every Parquet file in the lake holds.
"""

from __future__ import annotations

import logging
import threading

from ..config import set_library_defaults
from ..errors import MissingDependency

log = logging.getLogger("lakebook.transform.spark")
_lock = threading.Lock()
_session = None


def spark_conf(workspace) -> dict[str, str]:
    settings = workspace.settings.batch
    conf = {
        "spark.master": settings.master,
        "spark.app.name": f"lakebook-{workspace.settings.name}",
        "spark.driver.memory": settings.driver_memory,
        "spark.sql.shuffle.partitions": str(settings.shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        "spark.sql.sources.partitionOverwriteMode": "dynamic",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.warehouse.dir": str(workspace.spark_dir / "warehouse"),
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={workspace.spark_dir / 'derby'}",
    }
    if settings.master.startswith("local"):
        conf["spark.driver.host"] = "127.0.0.1"
        conf["spark.driver.bindAddress"] = "127.0.0.1"
    conf.update(settings.conf)
    return conf


def spark_session(workspace):
    """The process's Spark session, created on first use and reused after."""
    global _session
    with _lock:
        if _session is not None and _session._jsc is not None and not _session._jsc.sc().isStopped():
            return _session
        try:
            from pyspark.sql import SparkSession
        except ImportError:
            raise MissingDependency("pyspark", "batch") from None
        conf = spark_conf(workspace)
        if conf["spark.master"].startswith("local"):
            set_library_defaults("SPARK_LOCAL_IP")
        builder = SparkSession.builder
        for key, value in conf.items():
            builder = builder.config(key, value)
        log.info("starting Spark (%s)", conf["spark.master"])
        _session = builder.getOrCreate()
        _session.sparkContext.setLogLevel("ERROR")
        return _session


def stop_spark() -> None:
    global _session
    with _lock:
        if _session is not None:
            _session.stop()
            _session = None
