"""Where transforms run: DuckDB in this process, or Spark (local or a cluster).

Both bind each input to the exact files the catalog lists for it (all of them, or only
those new since the last run for an incremental transform) and write their output as
Parquet into a folder the runner chooses.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .._registry import Registry
from ..catalog import TableInfo
from ..lake.writer import WrittenFile, write_parquet_atomic
from .transforms import Transform, TransformError

transform_engines: Registry[type] = Registry("transform engine", "batch.engine")
_DUCKDB_TYPES = {
    "string": "VARCHAR", "int32": "INTEGER", "int64": "BIGINT", "float": "FLOAT", "double": "DOUBLE",
    "bool": "BOOLEAN", "timestamp[us, tz=UTC]": "TIMESTAMPTZ", "date32[day]": "DATE", "list<item: string>": "VARCHAR[]",
}


def error_line(message: str, sql: str | None = None) -> int | None:
    """The SQL line an engine error points at: its own LINE n, or else the first line that
    holds the identifier the message quotes (binder errors carry no position)."""
    match = re.search(r"\bLINE (\d+):|\bline (\d+)", message)
    if match:
        return int(match.group(1) or match.group(2))
    quoted = re.search(r'"([^"]+)"|`([^`]+)`', message)
    if quoted and sql:
        word = re.compile(rf"\b{re.escape(quoted.group(1) or quoted.group(2))}\b")
        for number, line in enumerate(sql.splitlines(), start=1):
            if word.search(line):
                return number
    return None


def describe_files(paths: list[Path], time_column: str | None, written_at=None) -> list[WrittenFile]:
    """Row counts, sizes and event-time bounds of written Parquet files (from their footers)."""
    described = []
    for path in sorted(paths):
        meta = pq.read_metadata(path)
        low = high = None
        if time_column and time_column in meta.schema.names:
            col = meta.schema.names.index(time_column)
            for rg in range(meta.num_row_groups):
                stats = meta.row_group(rg).column(col).statistics
                if stats is not None and stats.has_min_max:
                    low = stats.min if low is None else min(low, stats.min)
                    high = stats.max if high is None else max(high, stats.max)
        partition = path.parent.name if "=" in path.parent.name else ""
        described.append(WrittenFile(path, partition, meta.num_rows, path.stat().st_size, low, high, written_at))
    return described


def write_table(table: pa.Table, folder: Path, partition_by: str | None, stem: str, compression: str) -> list[Path]:
    """Write an Arrow table as ``folder/[col=value/]<stem>.parquet`` (Hive style, column dropped)."""
    if partition_by is None:
        path = folder / f"{stem}.parquet"
        write_parquet_atomic(table, path, compression)
        return [path]
    if partition_by not in table.column_names:
        raise TransformError(f"partition_by column {partition_by!r} is not in the output")
    import pyarrow.compute as pc

    paths = []
    column = table.column(partition_by)
    rest = table.drop_columns([partition_by])
    for value in pc.unique(column).to_pylist():
        mask = pc.is_null(column) if value is None else pc.equal(column, pa.scalar(value, column.type))
        shown = "__null__" if value is None else (value.isoformat() if hasattr(value, "isoformat") else str(value))
        path = folder / f"{partition_by}={shown}" / f"{stem}.parquet"
        write_parquet_atomic(rest.filter(mask), path, compression)
        paths.append(path)
    return paths


@transform_engines.register("duckdb")
class DuckDBTransformEngine:
    name = "duckdb"

    def __init__(self, workspace):
        import duckdb

        self.workspace = workspace
        self.con = duckdb.connect(":memory:")
        self.con.execute("SET TimeZone = 'UTC'")

    def bind(self, table: TableInfo, files: list[str]) -> None:
        self.con.execute(f"CREATE SCHEMA IF NOT EXISTS {table.zone}")
        if files:
            listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
            body = f"SELECT * FROM read_parquet([{listed}], hive_partitioning = true, union_by_name = true)"
        else:
            cols = ", ".join(f"CAST(NULL AS {_DUCKDB_TYPES.get(c.type, 'VARCHAR')}) AS \"{c.name}\"" for c in table.columns)
            body = f"SELECT {cols or 'NULL AS empty'} WHERE false"
        self.con.execute(f"CREATE OR REPLACE VIEW {table.qualified_name} AS {body}")

    def run(self, transform: Transform, folder: Path, stem: str) -> list[Path]:
        import duckdb

        if transform.kind != "sql":
            raise TransformError(f"{transform.where()}: Python transforms run on Spark", hint="use --engine spark")
        try:
            result = self.con.sql(transform.sql).to_arrow_table()
        except duckdb.Error as exc:
            message = str(exc).strip().splitlines()[0]
            raise TransformError(f"{transform.where(error_line(str(exc), transform.sql))}: {message}") from None
        return write_table(result, folder, transform.partition_by, stem, self.workspace.settings.lake.compression)

    def close(self) -> None:
        self.con.close()


@transform_engines.register("spark")
class SparkTransformEngine:
    name = "spark"

    def __init__(self, workspace):
        from .spark import spark_session

        self.workspace = workspace
        self.spark = spark_session(workspace)
        self.frames: dict[str, object] = {}
        self._views: list[str] = []

    def bind(self, table: TableInfo, files: list[str]) -> None:
        from pyspark.sql.types import StructType

        view = flat_name(table.qualified_name)
        if files:
            frame = self.spark.read.option("basePath", table.location).option("mergeSchema", "true").parquet(*files)
        else:
            frame = self.spark.createDataFrame([], StructType([]))
        frame.createOrReplaceTempView(view)
        self._views.append(view)
        self.frames[table.qualified_name] = frame

    def run(self, transform: Transform, folder: Path, stem: str) -> list[Path]:
        from pyspark.errors import PySparkException

        try:
            frame = self._frame(transform)
            tmp = folder.parent / f".{folder.name}.{stem}.spark-tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            writer = frame.write.mode("overwrite").option("compression", self.workspace.settings.lake.compression)
            if transform.partition_by:
                writer = writer.partitionBy(transform.partition_by)
            writer.parquet(str(tmp))
        except PySparkException as exc:
            message = str(exc).strip().splitlines()[0]
            raise TransformError(f"{transform.where(error_line(str(exc), transform.sql))}: {message}") from None
        return _move_spark_output(tmp, folder, stem)

    def _frame(self, transform: Transform):
        if transform.kind == "python":
            inputs = {name.split(".")[-1]: self.frames[name] for name in transform.inputs}
            return transform.func(self.spark, **inputs)
        import sqlglot
        from sqlglot import exp

        tree = sqlglot.parse_one(transform.sql, read="duckdb")
        for table in tree.find_all(exp.Table):
            if table.db:
                table.set("this", exp.to_identifier(flat_name(f"{table.db}.{table.name}")))
                table.set("db", None)
        return self.spark.sql(tree.sql(dialect="spark"))

    def close(self) -> None:
        for view in self._views:
            self.spark.catalog.dropTempView(view)


def flat_name(qualified: str) -> str:
    return qualified.replace(".", "__")


def _move_spark_output(tmp: Path, folder: Path, stem: str) -> list[Path]:
    """Spark writes part files into a folder; move them into ours with names of our own."""
    moved = []
    for i, part in enumerate(sorted(tmp.rglob("part-*.parquet"))):
        relative = part.parent.relative_to(tmp)
        target = folder / relative / f"{stem}-{i:04d}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        part.replace(target)
        moved.append(target)
    shutil.rmtree(tmp, ignore_errors=True)
    return moved


def open_transform_engine(workspace, name: str):
    return transform_engines.get(name)(workspace)
