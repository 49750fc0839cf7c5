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

from ..catalog import TableInfo
from ..errors import TransformError
from ..lake import empty_select, files_select, write_partitioned
from ..lake.store import LocalCopies, is_s3, register_with_duckdb, upload
from .definitions import Transform


def _error_line(message: str, sql: str | None = None) -> int | None:
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


def _write_output(table: pa.Table, transform: Transform, folder: Path, stem: str, compression: str) -> list[Path]:
    if transform.partition_by is not None and transform.partition_by not in table.column_names:
        raise TransformError(f"{transform.where()}: partition_by column {transform.partition_by!r} is not in the output")
    return write_partitioned(table, folder, transform.partition_by, stem, compression)


class DuckDBTransformEngine:
    name = "duckdb"

    def __init__(self, workspace):
        import duckdb

        self.workspace = workspace
        self.con = duckdb.connect(":memory:")
        self.con.execute("SET TimeZone = 'UTC'")
        register_with_duckdb(self.con, workspace.lake.root)  # an S3 lake's inputs are read through pyarrow

    def bind(self, table: TableInfo, files: list[str]) -> None:
        self.con.execute(f"CREATE SCHEMA IF NOT EXISTS {table.zone}")
        self.con.execute(f"CREATE OR REPLACE VIEW {table.qualified_name} AS {files_select(files, table.columns)}")

    def run(self, transform: Transform, folder: Path, stem: str) -> list[Path]:
        import duckdb

        if transform.kind != "sql":
            raise TransformError(f"{transform.where()}: Python transforms run on Spark", hint="use --engine spark")
        try:
            result = self.con.sql(transform.sql).to_arrow_table()
        except duckdb.Error as exc:
            message = str(exc).strip().splitlines()[0]
            raise TransformError(f"{transform.where(_error_line(str(exc), transform.sql))}: {message}") from None
        return _write_output(result, transform, folder, stem, self.workspace.settings.lake.compression)

    def close(self) -> None:
        self.con.close()


class SparkTransformEngine:
    name = "spark"

    def __init__(self, workspace):
        from .spark import spark_session

        self.workspace = workspace
        # An S3 lake: Spark reads local copies of the input files (lake files are immutable, so
        # a copy stays valid) and writes into a local folder, which is uploaded under the
        # version's key; the runner's catalog commit then publishes it, as on DuckDB.
        self.cache = LocalCopies(workspace.s3_cache_dir) if workspace.lake_on_s3 else None
        self.spark = spark_session(workspace, staged=self.cache is not None)
        self.frames: dict[str, object] = {}
        self._views: list[str] = []

    def bind(self, table: TableInfo, files: list[str]) -> None:
        view = _flat_name(table.qualified_name)
        base = table.location
        if self.cache is not None:
            files, base = [str(self.cache.fetch(f)) for f in files], str(self.cache.path_of(base))
        if files:
            frame = self.spark.read.option("basePath", base).option("mergeSchema", "true").parquet(*files)
        else:  # a table with no files yet (a source nothing was sent to) still has its columns
            frame = self.spark.sql(_spark_sql(empty_select(table.columns)))
        frame.createOrReplaceTempView(view)
        self._views.append(view)
        self.frames[table.qualified_name] = frame

    def run(self, transform: Transform, folder: Path, stem: str) -> list[Path]:
        from pyspark.errors import PySparkException

        try:
            frame = self._frame(transform)
            tmp = self.workspace.lake.staging(folder, f"{stem}.spark") if self.cache is None else \
                self.cache.staging(f"{stem}.spark")
            shutil.rmtree(tmp, ignore_errors=True)
            writer = frame.write.mode("overwrite").option("compression", self.workspace.settings.lake.compression)
            if transform.partition_by:
                writer = writer.partitionBy(transform.partition_by)
            writer.parquet(str(tmp))
        except PySparkException as exc:
            message = str(exc).strip().splitlines()[0]
            raise TransformError(f"{transform.where(_error_line(str(exc), transform.sql))}: {message}") from None
        return _move_spark_output(tmp, folder, stem)

    def _frame(self, transform: Transform):
        if transform.kind == "python":
            inputs = {name.split(".")[-1]: self.frames[name] for name in transform.inputs}
            return transform.func(self.spark, **inputs)
        return self.spark.sql(_spark_sql(transform.sql))

    def close(self) -> None:
        for view in self._views:
            self.spark.catalog.dropTempView(view)


def _flat_name(qualified: str) -> str:
    return qualified.replace(".", "__")


def _spark_sql(sql: str) -> str:
    """DuckDB SQL as Spark SQL, each ``zone.table`` read from its temporary view."""
    import sqlglot
    from sqlglot import exp

    tree = sqlglot.parse_one(sql, read="duckdb")
    for table in tree.find_all(exp.Table):
        if table.db:
            table.set("this", exp.to_identifier(_flat_name(f"{table.db}.{table.name}")))
            table.set("db", None)
    return tree.sql(dialect="spark")


def _move_spark_output(tmp: Path, folder: Path, stem: str) -> list[Path]:
    """Spark writes part files into a folder; move them into ours with names of our own (into
    an S3 lake: each uploaded under its final key)."""
    moved = []
    for i, part in enumerate(sorted(tmp.rglob("part-*.parquet"))):
        relative = part.parent.relative_to(tmp)
        target = folder / relative.as_posix() / f"{stem}-{i:04d}.parquet"
        if is_s3(target):
            upload(part, target)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            part.replace(target)
        moved.append(target)
    shutil.rmtree(tmp, ignore_errors=True)
    return moved


def open_transform_engine(workspace, name: str | None = None):
    """The transform engine ``name`` (default: ``batch.engine``)."""
    from ..backends import transform_engines

    return transform_engines.load(name or workspace.settings.batch.engine.type)(workspace)
