"""The batch layer: Spark session factory, transforms (SQL and PySpark) and their runner."""

from .runner import TransformResult, plan, run_transforms
from .transforms import Transform, TransformError, discover, transform

__all__ = ["Transform", "TransformError", "TransformResult", "discover", "plan", "run_transforms", "transform",
           "spark_session"]


def spark_session(workspace):
    """The process's Spark session (pyspark is imported on first use)."""
    from .spark import spark_session as _spark_session

    return _spark_session(workspace)
