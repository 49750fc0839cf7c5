"""Windowed features, declared once in ``feature_repo/windows.yaml`` and computed by two engines.

A declaration names one features table (and the Feast view of the same name)::

    origin_delays:
      input: warehouse.flights_clean           # the rows it reads
      keys: [origin]                           # the entity
      event_time: {column: sched_dep_at, plus_minutes: dep_delay}
      where: {cancelled: {eq: false}, dep_delay: {not_null: true}}
      bucket: 1h
      features:
        departures_1h: {agg: count, window: 1h}
        avg_dep_delay_3h: {agg: mean, of: dep_delay, window: 3h}
        late_share_3h: {agg: share, when: {dep_delay: {gt: 15}}, window: 3h}

or, with ``latest: [columns]`` instead of ``bucket`` and ``features``, the latest observation
per entity. The batch layer builds the table on Spark (``spark_frame``, called by a
``@transform`` in transforms/features.py); the speed layer's operators (lakebook.stream) read
the rows of each micro-batch with ``rows_sql`` on DuckDB and keep the windows up to date; the
consistency check recomputes the table with ``table_sql`` on DuckDB.

Semantics, the same in every engine: a row counts when every ``where`` condition holds and its
keys and event time are not null. Rows fall in buckets aligned to the Unix epoch; the table
has one row per entity and bucket holding rows, stamped with the bucket's end (the moment its
values were knowable), and a feature over window W sums the buckets in [end - W, end). ``count``
counts rows, ``sum`` and ``mean`` skip nulls (null when the window has no value), ``share`` is
the rows where ``when`` holds over all rows. A ``plus_minutes`` column is truncated to whole
minutes, as a cast to an integer does. Every feature value is a double.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import FeatureStoreError, did_you_mean
from ..names import IDENTIFIER_RULE, is_identifier

WINDOWS_FILE = "windows.yaml"
EVENT_TIMESTAMP = "event_timestamp"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_COMPARISONS = {"eq": "=", "ne": "<>", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
_NULL_TESTS = {"not_null": "IS NOT NULL", "is_null": "IS NULL"}


def duration_us(text: str) -> int:
    """``90s``, ``30m``, ``1h``, ``2d`` in microseconds."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd])\s*", str(text))
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{text!r} is not a duration like 30m, 1h or 2d")
    return int(match.group(1)) * _UNITS[match.group(2)] * 1_000_000


def _identifier(name: str) -> str:
    if not is_identifier(name):
        raise ValueError(f"{name!r} must be {IDENTIFIER_RULE}")
    return name


def _quoted(name: str) -> str:
    return '"' + name + '"'


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


@dataclass(frozen=True)
class Test:
    """One condition on one column: ``column op value``."""

    column: str
    op: str
    value: Any = None

    def sql(self) -> str:
        if self.op in _NULL_TESTS:
            return f"{_quoted(self.column)} {_NULL_TESTS[self.op]}"
        return f"{_quoted(self.column)} {_COMPARISONS[self.op]} {_literal(self.value)}"

    def spark(self):
        from pyspark.sql import functions as F

        column = F.col(self.column)
        if self.op in _NULL_TESTS:
            return column.isNotNull() if self.op == "not_null" else column.isNull()
        return {"eq": column.__eq__, "ne": column.__ne__, "lt": column.__lt__, "le": column.__le__,
                "gt": column.__gt__, "ge": column.__ge__}[self.op](F.lit(self.value))


def _tests(spec: Any) -> tuple[Test, ...]:
    """``{column: {op: value}, ...}`` as Tests (all must hold)."""
    if not isinstance(spec, dict) or not spec:
        raise ValueError("give conditions as {column: {op: value}}, e.g. {dep_delay: {gt: 15}}")
    tests = []
    for column, ops in spec.items():
        if not isinstance(ops, dict) or not ops:
            raise ValueError(f"{column}: give {{op: value}}, op one of {', '.join([*_COMPARISONS, *_NULL_TESTS])}")
        for op, value in ops.items():
            if op not in _COMPARISONS and op not in _NULL_TESTS:
                guess = did_you_mean(op, [*_COMPARISONS, *_NULL_TESTS])
                raise ValueError(f"{column}: unknown condition {op!r}{'; ' + guess if guess else ''}")
            if op in _NULL_TESTS and value is not True:
                raise ValueError(f"{column}: write {op}: true")
            tests.append(Test(_identifier(column), op, value))
    return tuple(tests)


def _all_sql(tests: tuple[Test, ...]) -> str:
    return " AND ".join(f"({t.sql()})" for t in tests) or "TRUE"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EventTime(_Model):
    column: str
    plus_minutes: str | None = Field(None, description="a column of minutes added (truncated to whole minutes)")

    @field_validator("column", "plus_minutes")
    @classmethod
    def _names(cls, value):
        return value if value is None else _identifier(value)

    def sql(self) -> str:
        at = f"CAST({_quoted(self.column)} AS TIMESTAMPTZ)"
        if self.plus_minutes is None:
            return at
        return f"{at} + to_minutes(CAST(trunc({_quoted(self.plus_minutes)}) AS BIGINT))"

    def spark(self):
        from pyspark.sql import functions as F

        at = F.col(self.column).cast("timestamp")
        if self.plus_minutes is None:
            return at
        return at + F.make_interval(mins=F.col(self.plus_minutes).cast("int"))


class Aggregation(_Model):
    agg: Literal["count", "sum", "mean", "share"]
    of: str | None = None
    when: tuple[Test, ...] | None = None
    window: str

    @field_validator("of")
    @classmethod
    def _of(cls, value):
        return value if value is None else _identifier(value)

    @field_validator("when", mode="before")
    @classmethod
    def _when(cls, value):
        return value if value is None or isinstance(value, tuple) else _tests(value)

    @field_validator("window")
    @classmethod
    def _window(cls, value):
        duration_us(value)
        return value

    @model_validator(mode="after")
    def _inputs(self):
        if self.agg in ("sum", "mean") and (self.of is None or self.when is not None):
            raise ValueError(f"{self.agg} takes 'of: column' (and no 'when')")
        if self.agg == "share" and (self.when is None or self.of is not None):
            raise ValueError("share takes 'when: {column: {op: value}}' (and no 'of')")
        if self.agg == "count" and (self.of is not None or self.when is not None):
            raise ValueError("count takes neither 'of' nor 'when'")
        return self

    @property
    def window_us(self) -> int:
        return duration_us(self.window)

    @property
    def partial(self) -> Partial | None:
        """What each bucket keeps for this feature besides its row count."""
        if self.agg == "count":
            return None
        return Partial("value", self.of) if self.of else Partial("condition", None, self.when)


@dataclass(frozen=True)
class Partial:
    """A per-row input summed per bucket: a column's value (with the count of non-null
    values beside it) or whether a condition holds (1, 0 or null)."""

    kind: Literal["value", "condition"]
    column: str | None = None
    when: tuple[Test, ...] | None = None

    def sql(self) -> str:
        if self.kind == "value":
            return f"CAST({_quoted(self.column)} AS DOUBLE)"
        return f"CAST(({_all_sql(self.when)}) AS DOUBLE)"

    def spark(self):
        from pyspark.sql import functions as F

        if self.kind == "value":
            return F.col(self.column).cast("double")
        condition = self.when[0].spark()
        for test in self.when[1:]:
            condition = condition & test.spark()
        return condition.cast("double")


class FeatureDefinition(_Model):
    """One declared features table; see the module docstring."""

    name: str
    description: str = ""
    owner: str = ""
    input: str
    keys: tuple[str, ...]
    event_time: EventTime
    where: tuple[Test, ...] = ()
    bucket: str | None = None
    features: dict[str, Aggregation] | None = None
    latest: tuple[str, ...] | None = None

    @field_validator("event_time", mode="before")
    @classmethod
    def _event_time(cls, value):
        return {"column": value} if isinstance(value, str) else value

    @field_validator("where", mode="before")
    @classmethod
    def _where(cls, value):
        return () if not value else value if isinstance(value, tuple) else _tests(value)

    @field_validator("keys", "latest")
    @classmethod
    def _columns(cls, value):
        if value is not None and not value:
            raise ValueError("list at least one column")
        return value if value is None else tuple(_identifier(v) for v in value)

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, value):
        if value is not None:
            duration_us(value)
        return value

    @field_validator("input")
    @classmethod
    def _input(cls, value):
        zone, _, table = value.partition(".")
        if not table or not is_identifier(zone) or not is_identifier(table):
            raise ValueError(f"{value!r} must be a table with its zone, e.g. warehouse.flights_clean")
        return value

    @model_validator(mode="after")
    def _kind(self):
        windowed = self.bucket is not None or self.features is not None
        if windowed == (self.latest is not None):
            raise ValueError("declare either 'bucket' and 'features' (windows) or 'latest' (the latest observation)")
        if windowed:
            self._check_windows()
        return self

    def _check_windows(self) -> None:
        if self.bucket is None or not self.features:
            raise ValueError("windows need both 'bucket' and 'features'")
        bucket = duration_us(self.bucket)
        for name, feature in self.features.items():
            _identifier(name)
            if feature.window_us % bucket:
                raise ValueError(f"{name}: window {feature.window} is not a whole number of {self.bucket} buckets")

    # -- what the engines share ------------------------------------------------------------
    @property
    def kind(self) -> Literal["windows", "latest"]:
        return "latest" if self.latest is not None else "windows"

    @property
    def table(self) -> str:
        return f"features.{self.name}"

    @property
    def feature_names(self) -> list[str]:
        return list(self.latest) if self.latest is not None else list(self.features)

    @property
    def bucket_us(self) -> int:
        return duration_us(self.bucket)

    @cached_property
    def partials(self) -> list[Partial]:
        """The distinct per-row inputs of the features, in first-use order."""
        found = []
        for feature in (self.features or {}).values():
            if feature.partial is not None and feature.partial not in found:
                found.append(feature.partial)
        return found

    @cached_property
    def windows_us(self) -> list[int]:
        return sorted({f.window_us for f in (self.features or {}).values()})

    @property
    def longest_window_us(self) -> int:
        return max(self.windows_us, default=0)

    def partial_index(self, name: str) -> int | None:
        partial = self.features[name].partial
        return None if partial is None else self.partials.index(partial)

    # -- DuckDB ------------------------------------------------------------------------------
    def rows_sql(self, relation: str, extra: tuple[str, ...] = ()) -> str:
        """The rows that count, from ``relation``: keys, ``__t_us`` (event time, µs), the
        partials ``__v0``... (windows) or the latest columns, and the ``extra`` columns."""
        keys = ", ".join(map(_quoted, self.keys))
        if self.kind == "windows":
            values = [f"{p.sql()} AS __v{i}" for i, p in enumerate(self.partials)]
        else:
            values = [_quoted(c) for c in self.latest]
        selected = ", ".join([keys, f"epoch_us({self.event_time.sql()}) AS __t_us", *values, *map(_quoted, extra)])
        present = " AND ".join(f"{_quoted(k)} IS NOT NULL" for k in self.keys)
        return (f"SELECT {selected} FROM {relation} "
                f"WHERE ({_all_sql(self.where)}) AND {present} AND {self.event_time.sql()} IS NOT NULL")

    def table_sql(self, relation: str) -> str:
        """The whole features table from ``relation``, as the batch layer builds it."""
        if self.kind == "latest":
            columns = ", ".join([*map(_quoted, self.keys), f"make_timestamp(__t_us)::TIMESTAMPTZ AS {EVENT_TIMESTAMP}",
                                 *map(_quoted, self.latest)])
            return f"SELECT {columns} FROM ({self.rows_sql(relation)})"
        keys, bucket = ", ".join(map(_quoted, self.keys)), self.bucket_us
        sums = ["count(*) AS __n"] + [f"sum(__v{i}) AS __s{i}, count(__v{i}) AS __c{i}" for i in range(len(self.partials))]
        buckets = (f"SELECT {keys}, __t_us - (((__t_us % {bucket}) + {bucket}) % {bucket}) AS __b, {', '.join(sums)} "
                   f"FROM ({self.rows_sql(relation)}) GROUP BY ALL")
        features = [f"{self._feature_sql(name)} AS {_quoted(name)}" for name in self.features]
        windows = ", ".join(f"__w{w} AS (PARTITION BY {keys} ORDER BY __b RANGE BETWEEN {w - bucket} PRECEDING "
                            f"AND CURRENT ROW)" for w in self.windows_us)
        return (f"SELECT {keys}, make_timestamp(__b + {bucket})::TIMESTAMPTZ AS {EVENT_TIMESTAMP}, "
                f"{', '.join(features)} FROM ({buckets}) WINDOW {windows}")

    def _feature_sql(self, name: str) -> str:
        feature, i = self.features[name], self.partial_index(name)
        over = f"OVER __w{feature.window_us}"
        if feature.agg == "count":
            return f"CAST(sum(__n) {over} AS DOUBLE)"
        if feature.agg == "share":
            return f"sum(__s{i}) {over} / sum(__n) {over}"
        total = f"CASE WHEN sum(__c{i}) {over} > 0 THEN sum(__s{i}) {over} END"
        return total if feature.agg == "sum" else f"{total} / sum(__c{i}) {over}"

    # -- Spark -------------------------------------------------------------------------------
    def spark_frame(self, frame):
        """The features table from the input DataFrame, on Spark."""
        from pyspark.sql import functions as F

        rows = frame.where(F.lit(True))
        for test in self.where:
            rows = rows.where(test.spark())
        present = F.lit(True)
        for key in self.keys:
            present = present & F.col(key).isNotNull()
        rows = rows.where(present & self.event_time.spark().isNotNull())
        if self.kind == "latest":
            return rows.select(*self.keys, self.event_time.spark().alias(EVENT_TIMESTAMP), *self.latest)
        return self._spark_windows(rows)

    def _spark_windows(self, rows):
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        bucket = self.bucket_us
        micros = F.unix_micros(self.event_time.spark())
        rows = rows.select(*self.keys, (micros - F.pmod(micros, F.lit(bucket))).alias("__b"),
                           *(p.spark().alias(f"__v{i}") for i, p in enumerate(self.partials)))
        sums = [F.count(F.lit(1)).alias("__n")]
        for i in range(len(self.partials)):
            sums += [F.sum(f"__v{i}").alias(f"__s{i}"), F.count(f"__v{i}").alias(f"__c{i}")]
        buckets = rows.groupBy(*self.keys, "__b").agg(*sums)
        windows = {w: Window.partitionBy(*self.keys).orderBy("__b").rangeBetween(-(w - bucket), 0)
                   for w in self.windows_us}
        features = [self._spark_feature(name, windows[self.features[name].window_us]).alias(name)
                    for name in self.features]
        return buckets.select(*self.keys, F.timestamp_micros(F.col("__b") + F.lit(bucket)).alias(EVENT_TIMESTAMP),
                              *features)

    def _spark_feature(self, name: str, window):
        from pyspark.sql import functions as F

        feature, i = self.features[name], self.partial_index(name)
        if feature.agg == "count":
            return F.sum("__n").over(window).cast("double")
        if feature.agg == "share":
            return F.sum(f"__s{i}").over(window) / F.sum("__n").over(window)
        values = F.sum(f"__c{i}").over(window)
        total = F.when(values > 0, F.sum(f"__s{i}").over(window))
        return total if feature.agg == "sum" else total / values


def parse_definitions(data: Any, where: str) -> dict[str, FeatureDefinition]:
    """Definitions from the YAML mapping ``{name: declaration}``; ``where`` names the file."""
    if not isinstance(data, dict):
        raise FeatureStoreError(f"{where} must map feature table names to declarations",
                                hint="see the example workspace's feature_repo/windows.yaml")
    found = {}
    for name, declaration in data.items():
        if not isinstance(declaration, dict):
            raise FeatureStoreError(f"{where}: {name} must be a mapping of settings")
        try:
            found[name] = FeatureDefinition.model_validate({**declaration, "name": _identifier(str(name))})
        except (ValidationError, ValueError) as exc:
            raise FeatureStoreError(f"{where}: {name}: {_describe(exc)}",
                                    hint="see the declaration format in lakebook/features/windows.py") from None
    return found


def _describe(exc: Exception) -> str:
    if not isinstance(exc, ValidationError):
        return str(exc)
    problems = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        message = "unknown key" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
        problems.append(f"{key}: {message}" if key else message)
    return "; ".join(problems)


def load_definitions(path: Path) -> dict[str, FeatureDefinition]:
    """The declarations of a windows.yaml file (none if the file does not exist)."""
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise FeatureStoreError(f"{path} is not valid YAML: {exc}") from None
    return parse_definitions(data or {}, str(path))


def feature_definitions(workspace) -> dict[str, FeatureDefinition]:
    """The workspace's declared features tables (``feature_repo/windows.yaml``)."""
    return load_definitions(workspace.feature_repo_dir / WINDOWS_FILE)


def feature_definition(workspace, name: str) -> FeatureDefinition:
    found = feature_definitions(workspace)
    if name not in found:
        hint = did_you_mean(name, found) or f"declared: {', '.join(found) or 'none'} (in feature_repo/{WINDOWS_FILE})"
        raise FeatureStoreError(f"no windowed feature definition {name!r}", hint=hint)
    return found[name]
