"""Transforms: SQL and PySpark jobs that build warehouse and feature tables from the lake,
run in dependency order on DuckDB or Spark, published atomically, rolled back to a kept version;
seeds load reference CSVs."""

from .definitions import Transform, discover, transform
from .rollback import kept_versions, rollback
from .runner import TransformResult, plan, run_transforms
from .seeds import SeedResult, load_seeds

__all__ = ["SeedResult", "Transform", "TransformResult", "discover", "kept_versions", "load_seeds", "plan", "rollback",
           "run_transforms", "spark_session", "stop_spark", "transform"]


def spark_session(workspace):
    """The process's Spark session (pyspark is imported on first use)."""
    from .spark import spark_session as _spark_session

    return _spark_session(workspace)


def stop_spark() -> None:
    from .spark import stop_spark as _stop_spark

    _stop_spark()
