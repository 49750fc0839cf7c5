"""The speed layer's stateful operators: a feature definition kept up to date one micro-batch
of rows at a time (rows as ``InputRows`` makes them: keys, ``__t_us``, partials or latest
columns, ``__event_id``).

``WindowOperator`` keeps, per entity and bucket, the row count and each partial's sum and
count, and the ids of the events applied, so an event delivered again (a re-sent event, a
micro-batch read again after a crash) is counted once. After a batch it gives every row of
the table that changed (``speed``: the rows the batch layer would write for those buckets,
from the events seen so far) and, per entity whose newest row changed, that row for the
online store (``online``). ``LatestOperator`` keeps each entity's latest observation.

Online rows are stamped so that the online store, keeping the newest stamp per entity, holds
the value computed last for the entity's newest bucket, whichever layer computed it. The batch
layer stamps a bucket's row with the bucket's end; the stream stamps its revision of an
entity's newest bucket one second after that end (the stores keep whole seconds), and each
later revision 1 µs after the previous stamp. So a materialize never replaces the stream's
revision of the same bucket (a batch built before the bucket closed, or before a late event
revised it), while a batch row of a later bucket replaces it. A latest row is stamped with its
observation time.

Buckets older than the newest bucket seen, less the longest window and ``lateness``, are
forgotten with their event ids; a row that falls in one is too late and only counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..features.windows import EVENT_TIMESTAMP, FeatureDefinition
from .inputs import EVENT_ID

SECOND_US = 1_000_000
UTC_US = pa.timestamp("us", tz="UTC")
Key = tuple


@dataclass
class Change:
    """What one micro-batch changed: the rows applied (for the checkpoint), the revised table
    rows (for the lake's ``speed.*`` table), the online rows, and the rows too late to apply."""

    applied: pa.Table
    speed: pa.Table
    online: pa.Table
    stamps: dict[Key, int] = field(default_factory=dict)
    horizon: int | None = None  # buckets before it were forgotten
    late: int = 0


def _keys_of(table: pa.Table, names: tuple[str, ...]) -> list[Key]:
    return list(zip(*(table.column(k).to_pylist() for k in names)))


def _first_seen(ids: list[str], seen) -> np.ndarray:
    """Which rows hold an id neither ``seen`` nor earlier in the batch holds."""
    fresh, batch = np.zeros(len(ids), dtype=bool), set()
    for i, event_id in enumerate(ids):
        if event_id not in seen and event_id not in batch:
            fresh[i] = True
            batch.add(event_id)
    return fresh


def online_stamp(bucket_end_us: int, previous_us: int | None) -> int:
    """The stamp of a stream revision of the bucket ending at ``bucket_end_us`` (module docstring)."""
    return max(bucket_end_us + SECOND_US, -(2 ** 62) if previous_us is None else previous_us + 1)


class WindowOperator:
    """The windows of one definition, over every entity."""

    def __init__(self, definition: FeatureDefinition, schema: pa.Schema, lateness_us: int):
        self.definition = definition
        self.schema = schema
        self.bucket = definition.bucket_us
        self.keep_us = definition.longest_window_us + lateness_us
        self.width = 1 + 2 * len(definition.partials)  # row count, then each partial's sum and count
        self.buckets: dict[Key, dict[int, np.ndarray]] = {}
        self.newest: dict[Key, int] = {}  # latest event time per entity
        self.stamps: dict[Key, int] = {}  # last online stamp per entity
        self.ids: dict[str, tuple[Key, int]] = {}
        self.horizon = -(2 ** 62)

    # -- state ----------------------------------------------------------------------------------
    def restore(self, key: Key, bucket: int, sums: np.ndarray, newest_us: int, ids: list[str]) -> None:
        self.buckets.setdefault(key, {})[bucket] = sums
        self.newest[key] = max(self.newest.get(key, newest_us), newest_us)
        self.ids.update((i, (key, bucket)) for i in ids)

    def _forget_before(self, horizon: int) -> None:
        if horizon <= self.horizon:
            return
        self.horizon = horizon
        for key, buckets in self.buckets.items():
            for bucket in [b for b in buckets if b < horizon]:
                del buckets[bucket]
        self.ids = {i: where for i, where in self.ids.items() if where[1] >= horizon}

    # -- one micro-batch ------------------------------------------------------------------------
    def apply(self, rows: pa.Table, emitted_at_us: int) -> Change:
        rows = rows.filter(pa.array(_first_seen(rows.column(EVENT_ID).to_pylist(), self.ids)))
        t_us = rows.column("__t_us").to_numpy(zero_copy_only=False)
        starts = t_us - np.mod(t_us, self.bucket)
        newest_bucket = max([int(starts.max())] if len(starts) else [], default=None)
        if newest_bucket is not None:
            self._forget_before(max(self.horizon, newest_bucket - self.keep_us))
        in_time = starts >= self.horizon
        late = int((~in_time).sum())
        applied = rows.filter(pa.array(in_time)).append_column("__bucket", pa.array(starts[in_time], pa.int64()))
        touched = self._add(applied)
        speed, online, stamps = self._revised(touched, emitted_at_us)
        return Change(applied, speed, online, stamps, self.horizon, late)

    def _add(self, applied: pa.Table) -> dict[Key, set[int]]:
        """Add the rows to their buckets; the buckets touched, per entity."""
        names = ["__t_us"] + [f"__v{i}" for i in range(len(self.definition.partials))]
        keys = list(self.definition.keys)
        grouped = applied.group_by(keys + ["__bucket"]).aggregate(
            [("__t_us", "count"), ("__t_us", "max")] + [(n, agg) for n in names[1:] for agg in ("sum", "count")])
        touched: dict[Key, set[int]] = {}
        for row in grouped.to_pylist():
            key, bucket = tuple(row[k] for k in keys), row["__bucket"]
            sums = [row["__t_us_count"]] + [v for n in names[1:] for v in (row[f"{n}_sum"] or 0.0, row[f"{n}_count"])]
            held = self.buckets.setdefault(key, {})
            held[bucket] = held.get(bucket, np.zeros(self.width)) + np.array(sums, dtype=float)
            self.newest[key] = max(self.newest.get(key, row["__t_us_max"]), row["__t_us_max"])
            touched.setdefault(key, set()).add(bucket)
        for event_id, key, bucket in zip(applied.column(EVENT_ID).to_pylist(), _keys_of(applied, tuple(keys)),
                                         applied.column("__bucket").to_pylist()):
            self.ids[event_id] = (key, bucket)
        return touched

    def _revised(self, touched: dict[Key, set[int]], emitted_at_us: int) -> tuple[pa.Table, pa.Table, dict]:
        """The table rows the touched buckets changed, and each entity's newest row if it changed."""
        speed, online, stamps = [], [], {}
        reach = self.definition.longest_window_us - self.bucket
        for key, buckets in touched.items():
            held = self.buckets[key]
            changed = sorted({b for b in held for t in buckets if t <= b <= t + reach})
            for bucket in changed:
                speed.append((key, bucket + self.bucket, self.features(key, bucket)))
            newest = max(held)
            if newest in changed:
                stamps[key] = online_stamp(newest + self.bucket, self.stamps.get(key))
                online.append((key, stamps[key], speed[-1][2]))  # the newest bucket is the last one changed
        self.stamps.update(stamps)
        return self._table(speed, emitted_at_us), self._table(online), stamps

    def features(self, key: Key, bucket: int) -> list[float | None]:
        """The feature values of an entity's row for a bucket (its row stamped bucket end)."""
        held, totals = self.buckets[key], {}
        for window in self.definition.windows_us:
            first = bucket - window + self.bucket
            totals[window] = sum((s for b, s in held.items() if first <= b <= bucket), np.zeros(self.width))
        return [self._value(name, totals[f.window_us]) for name, f in self.definition.features.items()]

    def _value(self, name: str, sums: np.ndarray) -> float | None:
        feature, i = self.definition.features[name], self.definition.partial_index(name)
        rows = sums[0]
        if feature.agg == "count":
            return float(rows)
        total, values = sums[1 + 2 * i], sums[2 + 2 * i]
        if feature.agg == "share":
            return float(total / rows) if values > 0 else None
        if values == 0:
            return None
        return float(total) if feature.agg == "sum" else float(total / values)

    def _table(self, rows: list, emitted_at_us: int | None = None) -> pa.Table:
        return _rows_table(self.definition, self.schema, rows, emitted_at_us)

    def current_rows(self) -> pa.Table:
        """Every entity's newest row with its last stamp: what the online store should hold."""
        rows = [(key, self.stamps[key], self.features(key, max(held)))
                for key, held in self.buckets.items() if held and key in self.stamps]
        return self._table(rows)


class LatestOperator:
    """The latest observation of each entity."""

    def __init__(self, definition: FeatureDefinition, schema: pa.Schema):
        self.definition = definition
        self.schema = schema
        self.latest: dict[Key, tuple[int, list]] = {}

    def restore(self, key: Key, t_us: int, values: list) -> None:
        self.latest[key] = (t_us, values)

    def apply(self, rows: pa.Table, emitted_at_us: int) -> Change:
        rows = rows.take(pc.sort_indices(rows, [("__t_us", "ascending")]))
        columns = [rows.column(c).to_pylist() for c in self.definition.latest]
        observed, changed = [], {}
        for key, t_us, values in zip(_keys_of(rows, self.definition.keys), rows.column("__t_us").to_pylist(),
                                     zip(*columns) if columns else []):
            observed.append((key, t_us, list(values)))
            if key not in self.latest or t_us > self.latest[key][0]:
                self.latest[key] = (t_us, list(values))
                changed[key] = t_us
        online = [(key, t_us, self.latest[key][1]) for key, t_us in changed.items()]
        return Change(rows, _rows_table(self.definition, self.schema, observed, emitted_at_us),
                      _rows_table(self.definition, self.schema, online), changed)

    def current_rows(self) -> pa.Table:
        rows = [(key, t, values) for key, (t, values) in self.latest.items()]
        return _rows_table(self.definition, self.schema, rows)


def operator_for(definition: FeatureDefinition, schema: pa.Schema, lateness_us: int):
    """The operator of a definition whose rows have ``schema``."""
    if definition.kind == "latest":
        return LatestOperator(definition, schema)
    return WindowOperator(definition, schema, lateness_us)


def output_schema(definition: FeatureDefinition, schema: pa.Schema) -> pa.Schema:
    """The table's columns: keys and latest columns as the rows have them, windows as doubles."""
    features = [pa.field(n, pa.float64() if definition.kind == "windows" else schema.field(n).type)
                for n in definition.feature_names]
    return pa.schema([*(pa.field(k, schema.field(k).type) for k in definition.keys),
                      pa.field(EVENT_TIMESTAMP, UTC_US), *features])


def _rows_table(definition: FeatureDefinition, schema: pa.Schema, rows: list,
                emitted_at_us: int | None = None) -> pa.Table:
    """Rows of (key, time in µs, feature values) as the table's columns; with ``emitted_at_us``
    also ``_emitted_at`` (the lake's speed tables keep it)."""
    out = output_schema(definition, schema)
    columns = [[r[0][i] for r in rows] for i in range(len(definition.keys))]
    columns.append([r[1] for r in rows])
    columns += [[r[2][i] for r in rows] for i in range(len(definition.feature_names))]
    arrays = [pa.array(c, pa.int64()).cast(UTC_US) if f.name == EVENT_TIMESTAMP else pa.array(c, f.type)
              for c, f in zip(columns, out)]
    table = pa.Table.from_arrays(arrays, schema=out)
    if emitted_at_us is not None:
        table = table.append_column("_emitted_at", pa.array([emitted_at_us] * len(rows), pa.int64()).cast(UTC_US))
    return table
