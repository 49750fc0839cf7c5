"""The lake: its layout, atomic Parquet writers, version publishing, and the DuckDB SQL that
reads its tables. The writers (numpy, pyarrow.compute) are imported on first use: a process
that only reads the lake does not pay for them."""

import importlib

from .layout import APPEND_ONLY_ZONES, PARTITION_KEY, ZONES, LakeLayout, range_stem
from .views import empty_select, files_select, folder_select, listed_select, sql_string

__all__ = [
    "APPEND_ONLY_ZONES", "LakeLayout", "PARTITION_KEY", "ZONES", "WrittenFile", "describe_files", "discard",
    "move_files", "publish_version", "range_stem", "remove_unlisted", "write_bytes_atomic", "write_date_partitions",
    "write_parquet_atomic", "write_partitioned", "empty_select", "files_select", "folder_select", "listed_select",
    "sql_string",
]

_WRITER = {"WrittenFile", "describe_files", "discard", "move_files", "publish_version", "remove_unlisted",
           "write_bytes_atomic", "write_date_partitions", "write_parquet_atomic", "write_partitioned"}


def __getattr__(name: str):
    if name not in _WRITER:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(".writer", __name__), name)
    globals()[name] = value
    return value
