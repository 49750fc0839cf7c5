"""Transforms: how warehouse and feature tables are made from the lake.

Two kinds share one runner:

- SQL transforms: ``transforms/<name>.sql`` with a YAML header in the leading ``--`` comments::

      -- description: Flights, typed and joined with carriers and airports.
      -- owner: flight-ops@example.org
      -- mode: full            # or incremental: only raw files that arrived since the last run
      -- partition_by: date    # optional output partition column
      SELECT ... FROM raw.flights f JOIN ref.airlines a USING (carrier)

  Inputs are read from the SQL with sqlglot. They run on DuckDB or on Spark SQL (the DuckDB
  dialect is transpiled by sqlglot).

- Python transforms: functions in ``transforms/*.py`` decorated with ``@transform``, declaring
  inputs and output; they get Spark DataFrames by input name and return one.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

import yaml

from ..backends import transform_engines
from ..errors import TransformError, did_you_mean
from ..names import IDENTIFIER_RULE, is_identifier

OUTPUT_ZONES = ("warehouse", "features")
_HEADER_LINE = re.compile(r"^\s*--\s?(.*)$")

@dataclass
class Transform:
    name: str
    zone: str = "warehouse"
    kind: Literal["sql", "python"] = "sql"
    description: str = ""
    owner: str = ""
    mode: Literal["full", "incremental"] = "full"
    partition_by: str | None = None
    engine: str | None = None
    event_time: str | None = None
    inputs: list[str] = field(default_factory=list)
    sql: str | None = None
    func: Callable | None = None
    path: Path | None = None
    first_sql_line: int = 1  # line of the file where the SQL starts, for error messages

    @property
    def qualified_name(self) -> str:
        return f"{self.zone}.{self.name}"

    @property
    def job(self) -> str:
        """How lineage names the job: the transform's file, relative to the workspace."""
        if self.path is None:
            return self.qualified_name
        return f"{self.path.parent.name}/{self.path.name}" + (f":{self.func.__name__}" if self.func else "")

    def where(self, line: int | None = None) -> str:
        if self.path is None:
            return self.qualified_name
        return f"{self.path}:{self.first_sql_line + line - 1}" if line else str(self.path)


_HEADER_KEYS = {"name", "zone", "description", "owner", "mode", "partition_by", "engine", "event_time"}


def _parse_sql_transform(path: Path) -> Transform:
    lines = path.read_text().splitlines()
    header, start = [], 0
    for start, line in enumerate(lines):
        match = _HEADER_LINE.match(line)
        if match is None and line.strip():
            break
        if match:
            header.append(match.group(1))
    else:
        start = len(lines)
    try:
        meta = yaml.safe_load("\n".join(header)) or {}
    except yaml.YAMLError as exc:
        raise TransformError(f"{path}: the header comments are not valid YAML: {exc}") from None
    if not isinstance(meta, dict):
        meta = {}
    unknown = set(meta) - _HEADER_KEYS
    if unknown:
        raise TransformError(f"{path}: unknown header key(s) {', '.join(sorted(unknown))}",
                             hint=f"allowed: {', '.join(sorted(_HEADER_KEYS))}")
    sql = "\n".join(lines[start:]).strip().rstrip(";")
    if not sql:
        raise TransformError(f"{path}: no SQL after the header")
    transform = Transform(name=meta.get("name", path.stem), sql=sql, path=path, first_sql_line=start + 1,
                          **{k: v for k, v in meta.items() if k != "name"})
    _check(transform)
    transform.inputs = _sql_inputs(transform)
    return transform


def _check(transform: Transform) -> None:
    if not is_identifier(transform.name):
        raise TransformError(f"{transform.where()}: transform name {transform.name!r} must be {IDENTIFIER_RULE}")
    if transform.zone not in OUTPUT_ZONES:
        raise TransformError(f"{transform.where()}: zone must be one of {', '.join(OUTPUT_ZONES)}, not {transform.zone!r}")
    if transform.mode not in ("full", "incremental"):
        raise TransformError(f"{transform.where()}: mode must be full or incremental, not {transform.mode!r}")
    if transform.engine is not None and transform.engine not in transform_engines.names():
        raise TransformError(f"{transform.where()}: engine must be one of {', '.join(transform_engines.names())}, "
                             f"not {transform.engine!r}", hint=did_you_mean(transform.engine, transform_engines.names()))


def _sql_inputs(transform: Transform) -> list[str]:
    """Qualified tables the SQL reads (CTEs excluded), found with sqlglot; a syntax error
    is reported with the file and line."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import ParseError

    try:
        tree = sqlglot.parse_one(transform.sql, read="duckdb")
    except ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        line = first.get("line")
        raise TransformError(f"{transform.where(line)}: SQL syntax error: {first.get('description', exc)}") from None
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    names = set()
    for table in tree.find_all(exp.Table):
        if table.name in ctes and not table.db:
            continue
        if not table.db:
            raise TransformError(f"{transform.where()}: table {table.name!r} needs its zone, e.g. raw.{table.name}")
        names.add(f"{table.db}.{table.name}")
    return sorted(names)


# -- Python transforms ---------------------------------------------------------------------------
_registered: list[Transform] = []


def transform(*, output: str, inputs: list[str], description: str = "", owner: str = "",
              mode: str = "full", partition_by: str | None = None, event_time: str | None = None):
    """Register a PySpark transform: ``fn(spark, **inputs) -> DataFrame``; input DataFrames are
    passed by table name without zone (``raw.flights`` -> ``flights``)."""
    zone, _, name = output.rpartition(".")

    def register(fn: Callable) -> Callable:
        t = Transform(name=name, zone=zone or "warehouse", kind="python", description=description or (fn.__doc__ or "").strip(),
                      owner=owner, mode=mode, partition_by=partition_by, event_time=event_time,
                      inputs=sorted(inputs), func=fn, engine="spark", path=Path(sys.modules[fn.__module__].__file__ or ""))
        _check(t)
        _registered.append(t)
        return fn

    return register


def _load_python_transforms(path: Path) -> list[Transform]:
    module_name = f"lakebook_transforms_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    start = len(_registered)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise TransformError(f"{path}: cannot import: {type(exc).__name__}: {exc}") from None
    found = _registered[start:]
    del _registered[start:]
    return found


def discover(folder: Path) -> dict[str, Transform]:
    """Every transform in the folder, by qualified output name."""
    found: dict[str, Transform] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.glob("*.sql")):
        t = _parse_sql_transform(path)
        found[t.qualified_name] = t
    for path in sorted(folder.glob("*.py")):
        for t in _load_python_transforms(path):
            if t.qualified_name in found:
                raise TransformError(f"{path}: {t.qualified_name} is already made by {found[t.qualified_name].where()}")
            found[t.qualified_name] = t
    return found
