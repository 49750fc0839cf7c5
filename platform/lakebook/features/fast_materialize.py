"""lakebook's materialization: what Feast's ``materialize(start, end)`` writes to a SQLite or
Redis online store, done in bulk for views on plain lake tables (lake_views.py).

Per view, DuckDB reads the lake folder as Feast's DuckDB offline store does, keeps the rows
with start <= event time <= end and, of each entity, the one with the latest event time
(rows tied on it are Feast's arbitrary pick too). The rows are serialised a column at a
time (encoding.py) and written to the store's own tables: SQLite gets Feast's upserts in one
transaction, in key order; Redis gets pipelined HSETs of Feast's keys, hash fields and
event-time field, skipping an entity whose stored event time is not older, as Feast does.
Feast's registry then records the interval as Feast's materialize records it. The view's TTL
plays no part in what is written: Feast applies TTLs to training sets and to the start of
``materialize_incremental`` only.

Invariants: a view's rows are all read and encoded before its first write; SQLite commits a
view's rows together or not at all; a failed view leaves its registry record as it was.
"""

from __future__ import annotations

import itertools
import logging
import sqlite3
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Iterator, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import FeatureStoreError
from .encoding import (
    as_feast_sees, entity_keys, needs_window_nulls, timestamp_protos, value_protos, value_texts,
)
from .lake_views import LakeView, lake_view

log = logging.getLogger("lakebook.features")
ONLINE_STORES = ("sqlite", "redis")
REDIS_CHUNK = 10_000  # entities per Redis pipeline: bounds the client's buffers


def fast_views(workspace, store, views) -> dict[str, LakeView]:
    """The views this path materializes (the rest go to Feast): plain lake tables, online
    only, with no pre-computed feature service, on a store whose extras Feast alone runs."""
    if not _store_qualifies(workspace, store.config):
        return {}
    precomputed = {p.name for s in store.list_feature_services() if getattr(s, "precompute_online", False)
                   for p in s.feature_view_projections}
    found = {}
    for view in views:
        plain = lake_view(workspace, view)
        if plain and view.online and not view.offline and view.name not in precomputed:
            found[view.name] = plain
    return found


def _store_qualifies(workspace, config) -> bool:
    online = config.online_store
    extras = [getattr(config, "openlineage", None), getattr(config, "mlflow", None)]
    vectors = getattr(online, "vector_enabled", False) or getattr(online, "enable_openai_compatible_store", False)
    return (workspace.settings.features.online_store.type in ONLINE_STORES and config.batch_engine_config == "local"
            and config.entity_key_serialization_version == 3 and not vectors
            and not any(getattr(extra, "enabled", False) for extra in extras))


def materialize_lake_views(store, views: list[LakeView], start: datetime, end: datetime) -> dict[str, dict]:
    """Materialize each view over [start, end]; per view, the entities written and seconds."""
    from feast.utils import make_tzaware

    start, end = make_tzaware(start), make_tzaware(end)
    write = _write_sqlite if store.config.online_store.type == "sqlite" else _write_redis
    done = {}
    for plain in views:
        t0 = time.perf_counter()
        with _recorded(store, plain.view, start, end):
            rows = latest_rows(plain, start, end)
            if rows.num_rows:
                write(store, plain, rows, _feature_columns(plain, rows, start, end))
        done[plain.view.name] = {"entities": rows.num_rows, "seconds": time.perf_counter() - t0}
        log.info("materialized %s: %d entities in %.2f s", plain.view.name, rows.num_rows, time.perf_counter() - t0)
    return done


# -- reading -----------------------------------------------------------------------------------
def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _window(plain: LakeView) -> str:
    """Feast's window test: the event time as a UTC timestamp, both ends included."""
    ts = f"CAST({_ident(plain.timestamp)} AS TIMESTAMP)"
    return f"{ts} >= $start AND {ts} <= $end"


def _query(plain: LakeView, sql: str, start: datetime, end: datetime) -> pa.Table:
    import duckdb

    bounds = {"start": _naive_utc(start), "end": _naive_utc(end)}
    con = plain.connect(duckdb.connect())
    try:
        con.execute("SET TimeZone = 'UTC'")
        return con.sql(sql, params=bounds).to_arrow_table()
    except duckdb.Error as exc:
        raise FeatureStoreError(f"cannot read feature view {plain.view.name} from {plain.table}: {exc}",
                                hint="the table's columns must match the view (lakebook features list)") from None
    finally:
        con.close()


def latest_rows(plain: LakeView, start: datetime, end: datetime) -> pa.Table:
    """Per entity, its row with the latest event time in the window, and ``__event_us``."""
    ts, keys = _ident(plain.timestamp), ", ".join(map(_ident, plain.keys))
    # As a UTC instant, whatever the column's type (a naive time or a date counts as UTC, as in Feast).
    event_us = f"__event_us := epoch_us(CAST({ts} AS TIMESTAMPTZ))"
    latest = ", ".join([*(f"{_ident(f)} := {_ident(f)}" for f in plain.features), event_us])
    rows = _query(plain, f"SELECT {keys}, unnest(arg_max(struct_pack({latest}), {ts})) "
                         f"FROM {plain.scan()} WHERE {_window(plain)} GROUP BY {keys}",
                  start, end)
    missing = [k for k in plain.keys if rows.column(k).null_count]
    if missing:
        raise FeatureStoreError(f"feature view {plain.view.name}: rows with no {', '.join(missing)} in the window",
                                hint="every feature row needs its entity key; fix or filter the feature table")
    return rows


def _feature_columns(plain: LakeView, rows: pa.Table, start: datetime, end: datetime) -> dict[str, pa.Array]:
    """The feature columns as Feast's converter would see them (encoding.as_feast_sees)."""
    columns = {name: rows.column(name).combine_chunks() for name in plain.features}
    suspects = [n for n, column in columns.items() if needs_window_nulls(column, plain.features[n])]
    nulls = _window_null_counts(plain, suspects, start, end) if suspects else {}
    return {n: as_feast_sees(column, nulls.get(n, 0) > 0) for n, column in columns.items()}


def _window_null_counts(plain: LakeView, names: list[str], start: datetime, end: datetime) -> dict[str, int]:
    counts = ", ".join(f"count(*) - count({_ident(n)}) AS {_ident(n)}" for n in names)
    found = _query(plain, f"SELECT {counts} FROM {plain.scan()} "
                          f"WHERE {_window(plain)}", start, end)
    return {n: found.column(n)[0].as_py() for n in names}


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(timezone.utc).replace(tzinfo=None)


def _keys(plain: LakeView, rows: pa.Table) -> list[bytes]:
    return entity_keys({k: rows.column(k).combine_chunks() for k in plain.keys}, plain.keys)


def _event_us(rows: pa.Table) -> np.ndarray:
    return rows.column("__event_us").to_numpy()


# -- SQLite ----------------------------------------------------------------------------------
def _write_sqlite(store, plain: LakeView, rows: pa.Table, columns: dict[str, pa.Array]) -> None:
    from feast.infra.online_stores.helpers import compute_table_id
    from feast.infra.online_stores.sqlite import SqliteOnlineStore

    config = store.config
    table = compute_table_id(config.project, plain.view, config.registry.enable_online_feature_view_versioning)
    keys = _keys(plain, rows)
    order = pc.sort_indices(pa.array(keys, pa.binary())).to_numpy()  # B-tree inserts in key order
    names = sorted(columns)
    values = [_permuted(value_protos(columns[n], plain.features[n]), order) for n in names]
    texts = [_permuted(value_texts(columns[n], plain.features[n]), order) for n in names]
    keys, stamps = _permuted(keys, order), _permuted(sqlite_event_seconds(_event_us(rows)), order)
    width = len(names)
    records = zip(_interleaved([keys] * width), itertools.cycle(names), _interleaved(values), _interleaved(texts),
                  _interleaved([stamps] * width), itertools.repeat(None))
    _upsert(SqliteOnlineStore._get_db_path(config), table, records)


def _permuted(values: list, order: np.ndarray) -> list:
    return [values[i] for i in order.tolist()]


def _interleaved(columns: list[list]) -> list:
    """Row-major: the first item of every column, then the second of every column, ..."""
    out = [None] * (len(columns) * len(columns[0]))
    for i, column in enumerate(columns):
        out[i::len(columns)] = column
    return out


def _upsert(path: str, table: str, records) -> None:
    """Feast's upsert, every row of the view in one transaction."""
    sql = (f"INSERT INTO {_ident(table)} (entity_key, feature_name, value, value_text, event_ts, created_ts) "
           "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(entity_key, feature_name) DO UPDATE SET value = excluded.value, "
           "value_text = excluded.value_text, event_ts = excluded.event_ts, created_ts = excluded.created_ts")
    con = sqlite3.connect(path)
    try:
        with con:
            con.executemany(sql, records)
    except sqlite3.OperationalError as exc:
        hint = ("run 'lakebook features apply' to create the online tables" if "no such table" in str(exc)
                else "another process may be writing the online store; try again")
        raise FeatureStoreError(f"cannot write the SQLite online store at {path} ({exc})", hint=hint) from None
    finally:
        con.close()


def sqlite_event_seconds(event_us: np.ndarray) -> list[int]:
    """Event times as Feast's SQLite store keeps them: ``int(naive_utc.timestamp())``, where
    Python reads the naive UTC time in the machine's time zone (reads undo it the same way)."""
    if time.timezone == 0 and not time.daylight:
        return np.where(event_us >= 0, event_us // 1_000_000, -(-event_us // 1_000_000)).tolist()
    epoch = datetime(1970, 1, 1)
    return [int((epoch + timedelta(microseconds=us)).timestamp()) for us in event_us.tolist()]


# -- Redis -----------------------------------------------------------------------------------
class _RedisHashes(NamedTuple):
    """Feast's Redis layout of one view's rows: per entity key a hash holding the event time
    under ``_ts:<view>`` and each feature under the murmur3 hash of ``<view>:<feature>``."""

    keys: list[bytes]
    event_nanos: list[int]
    ts_field: str
    stamps: list[bytes]
    fields: list[bytes]
    values: list[list[bytes]]  # per feature, per entity

    def mapping(self, i: int) -> dict:
        return {self.ts_field: self.stamps[i], **{f: v[i] for f, v in zip(self.fields, self.values)}}


def _redis_hashes(config, plain: LakeView, rows: pa.Table, columns: dict[str, pa.Array]) -> _RedisHashes:
    from feast.infra.online_stores.helpers import _mmh3
    from feast.infra.online_stores.redis import _versioned_fv_name

    view_name = _versioned_fv_name(plain.view, config)
    project = config.project.encode()
    return _RedisHashes(keys=[key + project for key in _keys(plain, rows)],
                        event_nanos=[us * 1000 for us in _event_us(rows).tolist()], ts_field=f"_ts:{view_name}",
                        stamps=timestamp_protos(_event_us(rows)),
                        fields=[_mmh3(f"{view_name}:{name}") for name in plain.features],
                        values=[value_protos(columns[n], plain.features[n]) for n in plain.features])


def _write_redis(store, plain: LakeView, rows: pa.Table, columns: dict[str, pa.Array]) -> None:
    from feast.infra.online_stores.redis import RedisOnlineStore
    from redis.exceptions import RedisError

    hashes, online = _redis_hashes(store.config, plain, rows, columns), store.config.online_store
    client = RedisOnlineStore()._get_client(online)
    try:
        for lo in range(0, len(hashes.keys), REDIS_CHUNK):
            _write_redis_chunk(client, online, hashes, range(lo, min(lo + REDIS_CHUNK, len(hashes.keys))))
    except RedisError as exc:
        raise FeatureStoreError(f"cannot write the Redis online store: {exc}",
                                hint="check that Redis runs at features.online_store.connection_string") from None
    finally:
        client.close()


def _write_redis_chunk(client, online, hashes: _RedisHashes, chunk: range) -> None:
    """One pipeline of HSETs, each skipped where the stored event time is as new or newer
    (Feast's rule, unless ``skip_dedup``)."""
    keys = [hashes.keys[i] for i in chunk]
    stored = [0] * len(keys) if online.skip_dedup else _stored_nanos(client, keys, hashes.ts_field)
    with client.pipeline(transaction=False) as pipe:
        for i, key, seen in zip(chunk, keys, stored):
            if seen and hashes.event_nanos[i] <= seen:
                continue
            pipe.hset(key, mapping=hashes.mapping(i))
            if online.key_ttl_seconds:
                pipe.expire(name=key, time=online.key_ttl_seconds)
        pipe.execute()


def _stored_nanos(client, keys: list[bytes], ts_field: str) -> list[int]:
    """The event time (ns) each key holds for this view, 0 where none."""
    from google.protobuf.timestamp_pb2 import Timestamp

    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hmget(key, ts_field)
        found = [reply[0] for reply in pipe.execute()]
    nanos = []
    for raw in found:
        stamp = Timestamp()
        if raw:
            stamp.ParseFromString(raw)
        nanos.append(stamp.seconds * 1_000_000_000 + stamp.nanos)
    return nanos


# -- Feast's registry --------------------------------------------------------------------------
@contextmanager
def _recorded(store, view, start: datetime, end: datetime) -> Iterator[None]:
    """Feast's bookkeeping around one view's run: a view with a lifecycle state is
    MATERIALIZING while it runs and gets its state back if the run fails; on success the
    interval joins ``materialization_intervals`` (and the state becomes AVAILABLE_ONLINE)."""
    from feast.feature_view import FeatureViewState as State

    previous = getattr(view, "state", State.STATE_UNSPECIFIED)
    if previous == State.MATERIALIZING:
        previous = State.GENERATED
    elif previous != State.STATE_UNSPECIFIED:
        if not previous.can_transition_to(State.MATERIALIZING):
            raise FeatureStoreError(f"feature view {view.name} cannot be materialized in state {previous.name}")
        _set_state(store, view, State.MATERIALIZING)
    try:
        yield
    except BaseException:
        if previous != State.STATE_UNSPECIFIED:
            _set_state(store, view, previous)
        raise
    store.registry.apply_materialization(view, store.project, start, end)


def _set_state(store, view, state) -> None:
    view.state = state
    store.registry.apply_feature_view(view, store.project, commit=True)
