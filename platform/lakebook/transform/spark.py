"""One Spark session per process, built from the workspace's ``batch`` settings.

Embedded default: ``local[*]`` bound to loopback with the UI off. Any master URL (standalone,
YARN, Kubernetes) by configuration. Timestamps are UTC and written as microseconds, which
is what every Parquet file in the lake holds. The driver JVM's own output (launcher notices,
log4j) goes to the workspace's ``logs/spark.log``: Spark's errors reach Python as exceptions.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from ..config import set_library_defaults
from ..errors import MissingDependency, NotOnS3Lake, TransformError

log = logging.getLogger("lakebook.transform.spark")
_lock = threading.Lock()
_session = None
_gateway = None  # the driver JVM: started once per process, reused by every later session


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


# What Spark needs on its classpath to read and write s3a:// paths; the pyspark wheel ships neither.
S3A_JARS = "org.apache.hadoop:hadoop-aws and com.amazonaws:aws-java-sdk-bundle"


def can_stage(workspace) -> bool:
    """Whether Spark can work on local copies of an S3 lake's files: when its executors share
    the driver's disk (a ``local`` master), or are declared to see the driver's state dir at
    the same path (``batch.s3_staging: shared``: a cluster on one host, or on a shared mount)."""
    batch = workspace.settings.batch
    return batch.master.startswith("local") or batch.s3_staging == "shared"


def refuse_s3_lake(workspace, *, staged: bool = False) -> None:
    """Spark on an S3 lake outside the transform engine's staging (``staged``: the engine hands
    Spark local copies of the files, and uploads what it wrote) is refused: Spark would read
    and write s3a:// paths, which need the hadoop-aws and AWS SDK jars on its classpath."""
    if workspace.lake_on_s3 and not (staged and can_stage(workspace)):
        if staged:
            raise NotOnS3Lake(
                "Spark with a cluster master is not supported on an S3 lake unless its workers share the driver's "
                "filesystem: they read local copies of the lake's files (in the state dir), as without s3a:// "
                f"Spark cannot reach S3 ({S3A_JARS} are not on its classpath; pyspark ships neither)",
                hint="if the workers see the state dir at the same path (one host, a shared mount), set "
                     "batch.s3_staging: shared; else use batch.master: local[*] or --engine duckdb; README, "
                     "\"The lake on S3-compatible storage\"")
        raise NotOnS3Lake(f"Spark is not supported on an S3 lake outside transforms, and Spark reaches S3 through "
                          f"s3a:// only, which needs {S3A_JARS} on its classpath (pyspark ships neither)",
                          hint="run transforms with batch.master: local[*], or on DuckDB (--engine duckdb); README, "
                               "\"The lake on S3-compatible storage\"")


def spark_session(workspace, *, staged: bool = False):
    """The process's Spark session, created on first use and reused after. On an S3 lake only
    for a caller that stages the lake's files locally (``staged``: the transform engine)."""
    global _session
    refuse_s3_lake(workspace, staged=staged)
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
        _start_jvm(conf, workspace.log_path("spark"))
        _session = builder.getOrCreate()
        _session.sparkContext.setLogLevel("ERROR")
        return _session


def _start_jvm(conf: dict[str, str], log_path: Path) -> None:
    """Start the driver JVM with its stdout and stderr in ``log_path``, and a SparkContext on it."""
    global _gateway
    if _gateway is not None:
        return
    from pyspark import SparkConf, SparkContext
    from pyspark.java_gateway import launch_gateway

    spark_conf = SparkConf(loadDefaults=False).setAll(conf.items())
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as output:
        try:
            _gateway = launch_gateway(spark_conf, popen_kwargs={"stdout": output, "stderr": output})
        except Exception as exc:
            raise TransformError(f"Spark did not start: {str(exc).strip().splitlines()[0]}",
                                 hint=f"its output is in {log_path}; Spark needs Java 17 (java -version)") from None
    SparkContext(conf=spark_conf, gateway=_gateway)


def stop_spark() -> None:
    global _session
    with _lock:
        if _session is not None:
            _session.stop()
            _session = None
_gateway = None  # the driver JVM: started once per process, reused by every later session
