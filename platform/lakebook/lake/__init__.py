"""The lake: its layout, atomic Parquet writers, version publishing, and the DuckDB SQL that
reads its tables."""

from .layout import APPEND_ONLY_ZONES, PARTITION_KEY, ZONES, LakeLayout
from .views import empty_select, files_select, folder_select, sql_string
from .writer import (
    WrittenFile, describe_files, discard, move_files, publish_version, remove_unlisted, write_bytes_atomic,
    write_date_partitions, write_parquet_atomic, write_partitioned,
)

__all__ = [
    "APPEND_ONLY_ZONES", "LakeLayout", "PARTITION_KEY", "ZONES", "WrittenFile", "describe_files", "discard",
    "move_files", "publish_version", "remove_unlisted", "write_bytes_atomic", "write_date_partitions",
    "write_parquet_atomic", "write_partitioned", "empty_select", "files_select", "folder_select", "sql_string",
]
