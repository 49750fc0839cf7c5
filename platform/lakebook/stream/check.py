"""The lambda consistency check: the batch definition recomputed from the lake, compared with
the speed layer's values (``speed.<view>``) and with the online store.

For each declared view: its table is recomputed with DuckDB from every event of its raw
source the lake holds (features/windows.py, the definition the batch and speed layers share),
and its rows in the recent window are kept: event times within ``since`` of the newest. They
are compared, row by row (entity and event time), with the last revision of each row in
``speed.<view>``, and, entity by entity, the newest row with what the online store serves.
Numbers agree within ``tolerance`` (relative, and absolute near zero), anything else exactly.

The lake holds what the flusher has written: events acknowledged but not flushed yet, which
the stream may have counted already, show as differences; flush first
(``lakebook ingest flush``) and let the stream catch up (``lakebook stream status``: lag 0).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa

from ..errors import FeatureStoreError
from ..features.windows import EVENT_TIMESTAMP, FeatureDefinition, duration_us, feature_definition, feature_definitions
from ..lake import sql_string
from ..lake.store import register_with_duckdb
from .inputs import InputRows
from .speed import ZONE

SHOWN_PER_VIEW = 1000  # mismatches listed per view and layer (all are counted)


@dataclass
class Mismatch:
    view: str
    layer: str  # speed | online
    entity: dict
    event_timestamp: datetime | None
    feature: str | None  # None: the whole row is missing on one side
    batch: Any
    other: Any
    problem: str


@dataclass
class ViewCheck:
    view: str
    start: datetime | None
    end: datetime | None
    batch_rows: int = 0
    speed_rows: int = 0
    entities: int = 0
    mismatches: dict[str, int] = field(default_factory=lambda: {"speed": 0, "online": 0})


@dataclass
class CheckReport:
    views: list[ViewCheck]
    mismatches: list[Mismatch]

    @property
    def ok(self) -> bool:
        return not any(sum(v.mismatches.values()) for v in self.views)

    def as_json(self) -> dict:
        return {"ok": self.ok, "views": [asdict(v) for v in self.views], "mismatches": [asdict(m) for m in self.mismatches]}


def same(a, b, tolerance: float) -> bool:
    """Equal, numbers within ``tolerance`` (relative, and absolute near zero); null only equals null."""
    a, b = (None if isinstance(v, float) and math.isnan(v) else v for v in (a, b))
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance)
    return a == b


def compare_rows(definition: FeatureDefinition, batch: list[dict], other: list[dict], layer: str,
                 tolerance: float) -> list[Mismatch]:
    """Row by row (keys and event time) and feature by feature, ``other`` against ``batch``."""
    def by_key(rows):
        return {(tuple(r[k] for k in definition.keys), r.get(EVENT_TIMESTAMP)): r for r in rows}

    left, right, found = by_key(batch), by_key(other), []
    for key in sorted(set(left) | set(right), key=lambda k: (tuple(map(str, k[0])), str(k[1]))):
        entity = dict(zip(definition.keys, key[0]))
        a, b = left.get(key), right.get(key)
        if a is None or b is None:
            problem = f"missing in the {layer} layer" if b is None else "not in the batch recomputation"
            found.append(Mismatch(definition.name, layer, entity, key[1], None, a is not None, b is not None, problem))
            continue
        found += [Mismatch(definition.name, layer, entity, key[1], f, a[f], b[f], f"{layer} value differs")
                  for f in definition.feature_names if not same(a[f], b[f], tolerance)]
    return found


def newest_per_entity(definition: FeatureDefinition, rows: list[dict]) -> list[dict]:
    newest = {}
    for row in rows:
        key = tuple(row[k] for k in definition.keys)
        if key not in newest or row[EVENT_TIMESTAMP] > newest[key][EVENT_TIMESTAMP]:
            newest[key] = row
    return list(newest.values())


# -- reading the three layers ---------------------------------------------------------------------
def batch_rows(workspace, catalog, definition: FeatureDefinition, since_us: int) -> list[dict]:
    """The recomputed table's rows within ``since_us`` of its newest event time."""
    rows = InputRows(workspace, definition)
    try:
        rows.bind_lake(catalog)
        table = rows.table()
    finally:
        rows.close()
    if not table.num_rows:
        return []
    import pyarrow.compute as pc

    newest = pc.max(table.column(EVENT_TIMESTAMP)).as_py()
    start = newest - timedelta(microseconds=since_us)
    return table.filter(pc.greater_equal(table.column(EVENT_TIMESTAMP), pa.scalar(start, table.schema.field(EVENT_TIMESTAMP).type))).to_pylist()


def speed_rows(catalog, definition: FeatureDefinition, start: datetime) -> list[dict]:
    """The last revision of each row of ``speed.<view>`` from ``start`` on."""
    import duckdb

    if definition.name not in {t.name for t in catalog.tables(ZONE)}:
        return []
    files = catalog.files(ZONE, definition.name)
    if not files:
        return []
    keys = ", ".join(f'"{k}"' for k in definition.keys)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        register_with_duckdb(con, catalog.root)  # an S3 lake's files are read through pyarrow
        sql = (f"SELECT * EXCLUDE (_offset, _emitted_at) FROM read_parquet([{', '.join(map(sql_string, files))}]) "
               f"WHERE {EVENT_TIMESTAMP} >= $start QUALIFY row_number() OVER (PARTITION BY {keys}, {EVENT_TIMESTAMP} "
               f"ORDER BY _offset DESC, _emitted_at DESC) = 1")
        return con.sql(sql, params={"start": start}).to_arrow_table().to_pylist()
    finally:
        con.close()


def online_rows(store, definition: FeatureDefinition, entities: list[dict]) -> list[dict]:
    """What the online store serves for these entities (keys and features)."""
    if not entities:
        return []
    refs = [f"{definition.name}:{f}" for f in definition.feature_names]
    try:
        served = store.get_online_features(features=refs, entity_rows=entities).to_dict()
    except Exception as exc:
        raise FeatureStoreError(f"cannot read {definition.name} from the online store: {exc}",
                                hint="run 'lakebook features apply' first") from None
    names = list(definition.keys) + definition.feature_names
    return [dict(zip(names, values)) for values in zip(*(served[n] for n in names))]


# -- the check ----------------------------------------------------------------------------------
def check_features(workspace, views: list[str] | None = None, *, since: str = "24h",
                   tolerance: float = 1e-9) -> CheckReport:
    """Compare the speed layer and the online store with the batch definition (module docstring)."""
    from ..catalog import open_catalog
    from ..features import feature_store

    try:
        since_us = duration_us(since)
    except ValueError as exc:
        raise FeatureStoreError(f"--since: {exc}", hint="e.g. --since 24h") from None
    definitions = [feature_definition(workspace, v) for v in views] if views else list(feature_definitions(workspace).values())
    if not definitions:
        raise FeatureStoreError("no windowed features to check", hint="declare them in feature_repo/windows.yaml")
    catalog, store = open_catalog(workspace), feature_store(workspace)
    checks, mismatches = [], []
    try:
        for definition in definitions:
            check, found = _check_view(workspace, catalog, store, definition, since_us, tolerance)
            checks.append(check)
            for layer in ("speed", "online"):
                mismatches += [m for m in found if m.layer == layer][:SHOWN_PER_VIEW]
    finally:
        catalog.close()
    return CheckReport(checks, mismatches)


def _check_view(workspace, catalog, store, definition, since_us, tolerance) -> tuple[ViewCheck, list[Mismatch]]:
    batch = batch_rows(workspace, catalog, definition, since_us)
    if not batch:
        return ViewCheck(definition.name, None, None), []
    start = min(r[EVENT_TIMESTAMP] for r in batch)
    speed = speed_rows(catalog, definition, start)
    newest = newest_per_entity(definition, batch)
    entities = [{k: r[k] for k in definition.keys} for r in newest]
    found = compare_rows(definition, batch, speed, "speed", tolerance)
    served = online_rows(store, definition, entities)
    found += compare_rows(definition, _without_time(newest), _without_time(served), "online", tolerance)
    check = ViewCheck(definition.name, start, max(r[EVENT_TIMESTAMP] for r in batch), len(batch), len(speed),
                      len(entities))
    for m in found:
        check.mismatches[m.layer] += 1
    return check, found


def _without_time(rows: list[dict]) -> list[dict]:
    """Rows compared by entity alone (the online store serves one row per entity)."""
    return [{k: v for k, v in r.items() if k != EVENT_TIMESTAMP} for r in rows]
