"""The lake: its layout, atomic Parquet writers, version publishing and listing, vacuum, and the
DuckDB SQL that reads its tables. The writers (numpy, pyarrow.compute) are imported on first use: a process
that only reads the lake does not pay for them."""

import importlib

from .layout import APPEND_ONLY_ZONES, PARTITION_KEY, ZONES, LakeLayout, range_stem
from .views import empty_select, files_select, folder_select, listed_select, sql_string

__all__ = [
    "APPEND_ONLY_ZONES", "LakeLayout", "PARTITION_KEY", "ZONES", "WrittenFile", "describe_files", "discard",
    "fsync_dir", "move_files", "publish_version", "range_stem", "remove_unlisted", "write_bytes_atomic",
    "write_date_partitions", "write_parquet_atomic", "write_partitioned", "empty_select", "files_select",
    "folder_select", "listed_select", "sql_string", "VacuumReport", "Version", "list_versions", "maintenance", "vacuum",
]

_LAZY = {
    **dict.fromkeys(["WrittenFile", "describe_files", "discard", "fsync_dir", "move_files", "publish_version",
                     "remove_unlisted", "write_bytes_atomic", "write_date_partitions", "write_parquet_atomic",
                     "write_partitioned"], ".writer"),
    **dict.fromkeys(["Version", "list_versions"], ".versions"),
    **dict.fromkeys(["VacuumReport", "maintenance", "vacuum"], ".vacuum"),
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(_LAZY[name], __name__)
    for exported, where in _LAZY.items():  # all of the module's at once: ``vacuum`` is a module and its function
        if where == _LAZY[name]:
            globals()[exported] = getattr(module, exported)
    return globals()[name]
