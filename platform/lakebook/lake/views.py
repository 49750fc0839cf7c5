"""DuckDB views over lake tables: the SQL that reads a table's files, shared by queries and
transforms.

A view over a folder globs the depth its files are at (``date=*/*.parquet``), which DuckDB
lists faster than ``**``, and uses ``union_by_name`` only when the files' schemas really
differ (read once per file from its footer: lake files are immutable once written). A table
with no files is an empty SELECT of its catalogued columns, so queries over it still bind.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import pyarrow as pa

_DUCKDB_TYPES = {
    "string": "VARCHAR", "int32": "INTEGER", "int64": "BIGINT", "float": "FLOAT", "double": "DOUBLE",
    "bool": "BOOLEAN", "timestamp[us, tz=UTC]": "TIMESTAMPTZ", "date32[day]": "DATE",
    "list<string>": "VARCHAR[]", "list<item: string>": "VARCHAR[]",
}


def sql_string(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def empty_select(columns: Iterable) -> str:
    """A SELECT of no rows with the catalog's columns (``.name``, ``.type`` as Arrow names)."""
    cast = ", ".join(f"CAST(NULL AS {_DUCKDB_TYPES.get(c.type, 'VARCHAR')}) AS \"{c.name}\"" for c in columns)
    return f"SELECT {cast or 'NULL AS empty'} WHERE false"


def files_select(paths: list[str], columns: Iterable = ()) -> str:
    """A SELECT over exactly these Parquet files (Hive partitions read from their folders)."""
    if not paths:
        return empty_select(columns)
    listed = ", ".join(sql_string(p) for p in paths)
    return f"SELECT * FROM read_parquet([{listed}], hive_partitioning = true, union_by_name = true)"


def folder_select(folder: Path, columns: Iterable = ()) -> str:
    """A SELECT over every Parquet file under ``folder``, as cheap to plan as it can be."""
    files = _parquet_files(folder)
    if not files:
        return empty_select(columns)
    depths = {depth for _, depth, _ in files}
    levels = ["*"] * depths.pop() if len(depths) == 1 else ["**"]
    pattern = sql_string(str(folder.joinpath(*levels, "*.parquet")))
    schemas = {_schema_key(path, stat) for path, _, stat in files}
    union = ", union_by_name = true" if len(schemas) > 1 or None in schemas else ""
    return f"SELECT * FROM read_parquet({pattern}, hive_partitioning = true{union})"


def _parquet_files(folder: Path) -> list[tuple[str, int, os.stat_result]]:
    """(path, folders below ``folder``, stat) of every ``*.parquet`` file under it, as DuckDB's
    ``**`` glob finds them (hidden names included, linked folders followed once)."""
    found: list[tuple[str, int, os.stat_result]] = []
    seen: set[tuple[int, int]] = set()

    def walk(path: str, depth: int) -> None:
        try:
            with os.scandir(path) as entries:
                for entry in entries:
                    try:
                        if entry.is_dir():
                            st = entry.stat()
                            if (st.st_dev, st.st_ino) not in seen:
                                seen.add((st.st_dev, st.st_ino))
                                walk(entry.path, depth + 1)
                        elif entry.name.endswith(".parquet") and entry.is_file():
                            found.append((entry.path, depth, entry.stat()))
                    except OSError:  # gone since listed
                        continue
        except OSError:
            return

    try:
        root = folder.stat()
    except OSError:
        return found
    seen.add((root.st_dev, root.st_ino))
    walk(str(folder), 0)
    return found


# path -> (size, mtime_ns, schema key): a footer is read once per process; size and mtime
# guard against a path written again.
_footer_schemas: dict[str, tuple[int, int, tuple]] = {}


def _schema_key(path: str, stat: os.stat_result) -> tuple | None:
    """Column names and types from a Parquet file's footer; None when it cannot be read."""
    cached = _footer_schemas.get(path)
    if cached is not None and cached[0] == stat.st_size and cached[1] == stat.st_mtime_ns:
        return cached[2]
    import pyarrow.parquet as pq

    try:
        schema = pq.read_metadata(path).schema.to_arrow_schema()
    except (OSError, pa.ArrowException):
        return None  # counted as a schema of its own: the view keeps union_by_name
    key = tuple((f.name, str(f.type)) for f in schema)
    _footer_schemas[path] = (stat.st_size, stat.st_mtime_ns, key)
    return key
