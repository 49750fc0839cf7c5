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


def refuse_s3_lake(workspace) -> None:
    """Spark (transforms, feature jobs, ``--engine spark`` queries) is refused on an S3 lake:
    it would read and write s3a:// paths, which need the hadoop-aws and AWS SDK jars on its
    classpath, and lakebook does not stage Spark's files through a local cache yet."""
    if workspace.lake_on_s3:
        raise NotOnS3Lake(f"Spark is not supported on an S3 lake yet: Spark reaches S3 through s3a://, which needs "
                          f"{S3A_JARS} on its classpath (pyspark ships neither), and lakebook does not yet pass "
                          f"s3a:// paths to Spark", hint="run SQL transforms on DuckDB (--engine duckdb, or batch.engine: "
                                                        "duckdb); README, \"The lake on S3-compatible storage\"")


def spark_session(workspace):
    """The process's Spark session, created on first use and reused after."""
    global _session
    refuse_s3_lake(workspace)
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
