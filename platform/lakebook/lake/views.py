"""DuckDB views over lake tables: the SQL that reads a table's files, shared by queries and
transforms.

An append-only table (raw, quarantine, speed) is read from the list of files its catalog
manifest holds (``listed_select``): compaction swaps files there in one catalog commit, so a
reader sees the files it replaced or the file that replaced them, never both. A published
version is read from its folder (``folder_select``).

A view over a folder globs the depth its files are at (``date=*/*.parquet``), which DuckDB
lists faster than ``**``, and uses ``union_by_name`` only when the files' schemas differ. A
table with no files is an empty SELECT of its catalogued columns, so queries over it still bind.

Whether schemas differ is judged without opening every file: lakebook writes a table's files
from the schema its catalog entry holds, so when the first file (the one DuckDB takes the
schema from) and the last one have the same schema and it holds every catalogued column with
its catalogued type, the files are taken to agree, and to lie at the depth those two lie at
(the lake's layout puts a table's files at one depth). A file that disagrees all the same makes
DuckDB stop with a schema mismatch; asked again with ``check_files``, every footer is read
(once per file per process: lake files are immutable once written).
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


def listed_select(paths: list[str], columns: Iterable = (), *, check_files: bool = False) -> str:
    """A SELECT over exactly these Parquet files (a table's manifest, in order), as cheap to
    plan as ``folder_select``: ``union_by_name`` only when the first and last file (or, with
    ``check_files``, any two files) differ."""
    if not paths:
        return empty_select(columns)
    files = [(p, 0) for p in paths]
    differ = _any_differ(files) if check_files else _ends_differ([files[0], files[-1]], columns)
    union = ", union_by_name = true" if differ else ""
    listed = ", ".join(sql_string(p) for p in paths)
    return f"SELECT * FROM read_parquet([{listed}], hive_partitioning = true{union})"


def folder_select(folder: Path, columns: Iterable = (), *, check_files: bool = False) -> str:
    """A SELECT over every Parquet file under ``folder``, as cheap to plan as it can be.
    ``columns`` are the catalog's (``.name``, ``.type`` as Arrow names); ``check_files`` walks
    every folder and reads every file's schema instead of trusting the first and last file."""
    files = _parquet_files(folder) if check_files else _first_and_last_files(folder)
    if not files:
        return empty_select(columns)
    depths = {depth for _, depth in files}
    levels = ["*"] * depths.pop() if len(depths) == 1 else ["**"]
    pattern = sql_string(str(folder.joinpath(*levels, "*.parquet")))
    differ = _any_differ(files) if check_files else _ends_differ(files, columns)
    union = ", union_by_name = true" if differ else ""
    return f"SELECT * FROM read_parquet({pattern}, hive_partitioning = true{union})"


def _any_differ(files: list[tuple[str, int]]) -> bool:
    schemas = {_schema_key(path) for path, _ in files}
    return len(schemas) > 1 or None in schemas


def _ends_differ(files: list[tuple[str, int]], columns: Iterable) -> bool:
    """True unless the first and last file have one schema holding every catalogued column
    with its type."""
    schema = _schema_key(files[0][0])
    if schema is None or _schema_key(files[-1][0]) != schema:
        return True
    held = dict(schema)
    return any(held.get(c.name) != c.type for c in columns)


def _first_and_last_files(folder: Path) -> list[tuple[str, int]]:
    """(path, folders below ``folder``) of the first and the last ``*.parquet`` file under it
    in path order (DuckDB sorts a glob's files), looking into as few folders as it can."""
    first = _edge_file(str(folder), 0, last=False, seen=set())
    return [first, _edge_file(str(folder), 0, last=True, seen=set())] if first else []


def _edge_file(path: str, depth: int, *, last: bool, seen: set) -> tuple[str, int] | None:
    try:
        st = os.stat(path)
        if (st.st_dev, st.st_ino) in seen:  # a link back up: DuckDB follows a folder once
            return None
        seen.add((st.st_dev, st.st_ino))
        with os.scandir(path) as listing:
            entries = [(e.name + "/" if e.is_dir() else e.name, e) for e in listing]
    except OSError:  # gone since listed
        return None
    for key, entry in sorted(entries, key=lambda pair: pair[0], reverse=last):
        if key.endswith("/"):
            found = _edge_file(entry.path, depth + 1, last=last, seen=seen)
            if found:
                return found
        elif key.endswith(".parquet") and entry.is_file():
            return entry.path, depth
    return None


def _parquet_files(folder: Path) -> list[tuple[str, int]]:
    """(path, folders below ``folder``) of every ``*.parquet`` file under it, as DuckDB's
    ``**`` glob finds them (hidden names included, linked folders followed once)."""
    found: list[tuple[str, int]] = []
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
                            found.append((entry.path, depth))
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


def _schema_key(path: str) -> tuple | None:
    """Column names and types from a Parquet file's footer; None when it cannot be read."""
    if path.startswith("s3://"):
        return _s3_schema_key(path)
    try:
        stat = os.stat(path)
    except OSError:
        return None
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


def _s3_schema_key(path: str) -> tuple | None:
    """``_schema_key`` of an object in an S3 lake: its key is never written twice with other
    rows (a key is unique to what it holds), so its footer is read once per process."""
    cached = _footer_schemas.get(path)
    if cached is not None:
        return cached[2]
    from .store import S3Path, read_metadata

    try:
        schema = read_metadata(S3Path(path)).schema.to_arrow_schema()
    except (OSError, pa.ArrowException):
        return None
    key = tuple((f.name, str(f.type)) for f in schema)
    _footer_schemas[path] = (0, 0, key)
    return key
