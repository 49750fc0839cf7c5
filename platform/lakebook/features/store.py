"""Feast, configured from the workspace.

``feature_repo/feature_store.yaml`` is a real Feast config. Its ``${LAKEBOOK_…}`` variables
are filled from the workspace (the Feast CLI fills them from the environment), and the
online/offline stores come from ``features:`` in lakebook.yaml, so switching SQLite to
Redis or DuckDB to Spark is configuration. Feature sources point at catalog tables through
their stable ``current`` folder; on an S3 lake, which has no such link, at the files of the
version the catalog publishes when the repository is applied, and lakebook applies it again
before it reads features when a newer version has been published since.
"""

from __future__ import annotations

import io
import logging
import warnings
import re
import sys
from contextlib import contextmanager, redirect_stdout
from datetime import datetime, timedelta, timezone
from typing import Iterator

import yaml

from ..errors import FeatureStoreError, MissingDependency
from ..lake.store import from_ibis_uri, ibis_uri, is_s3, register_with_ibis, require_local
from ..run_io import record
from .newest_wins import keep_newest

log = logging.getLogger("lakebook.features")
# ibis (inside Feast's DuckDB offline store) calls a DuckDB method DuckDB now deprecates;
# nothing a lakebook user can act on.
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"ibis\.")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_active = []  # the workspace whose repo is being loaded, for lake_source()


def repo_variables(workspace) -> dict[str, str]:
    """The ``${…}`` values of feature_store.yaml for this workspace."""
    return {
        "LAKEBOOK_STATE_DIR": str(workspace.state_dir),
        "LAKEBOOK_LAKE_DIR": str(workspace.lake.root),
        "LAKEBOOK_FEAST_DIR": str(workspace.feast_dir),
    }


def _import_feast() -> None:
    """Import Feast once, undoing the ``warnings.simplefilter("once", DeprecationWarning)`` its
    modules run as they load: it would show every library's deprecation notices to lakebook's
    users from then on."""
    with warnings.catch_warnings():
        try:
            import feast  # noqa: F401
        except ImportError:
            raise MissingDependency("feast", "features") from None


def repo_config(workspace):
    repo = workspace.feature_repo_dir
    path = repo / "feature_store.yaml"
    if not path.is_file():  # told before Feast is imported, which takes seconds
        raise FeatureStoreError(f"no Feast repository at {repo}", hint="add feature_repo/feature_store.yaml")
    _import_feast()
    from feast.repo_config import RepoConfig

    values = repo_variables(workspace)
    text = re.sub(r"\$\{(\w+)\}", lambda m: values.get(m.group(1), m.group(0)), path.read_text())
    raw = yaml.safe_load(text)
    raw["online_store"] = workspace.settings.features.online_store.model_dump(exclude_none=True)
    raw["offline_store"] = workspace.settings.features.offline_store.model_dump(exclude_none=True)
    if raw["online_store"]["type"] == "sqlite":
        raw["online_store"].setdefault("path", str(workspace.feast_dir / "online.db"))
    workspace.feast_dir.mkdir(parents=True, exist_ok=True)
    config = RepoConfig(**raw)
    config.repo_path = repo
    return config


def _timestamp(value: bytes) -> datetime:
    """A SQLite ``timestamp`` column's value: Unix seconds (as Feast's SQLite online store
    writes them) or ISO 8601 text (as IPython's history and Python's own adapter write them)."""
    text = value.decode()
    try:
        return datetime.fromtimestamp(int(text))
    except ValueError:
        return datetime.fromisoformat(text)


def keep_sqlite_timestamps_readable() -> None:
    """Feast and IPython each register a process-wide sqlite3 converter for ``timestamp``
    columns, each for its own format; the one registered last breaks the other's reads
    ("Invalid isoformat string" from the online store once IPython's history was used in the
    process, as in a notebook that imported Feast first). One converter that reads both."""
    import sqlite3

    history = sys.modules.get("IPython.core.history")
    register = getattr(history, "_sqlite3", None)
    if callable(register):  # IPython registers its converter once, on first use: now, not after ours
        try:
            register()
        except ImportError:
            pass
    sqlite3.register_converter("timestamp", _timestamp)


def feature_store(workspace):
    config = repo_config(workspace)  # imports Feast once the repository is there
    from feast import FeatureStore

    store = FeatureStore(config=config)
    keep_sqlite_timestamps_readable()
    register_with_ibis(workspace.lake.root)  # Feast's DuckDB offline store reads an S3 lake through it
    return store


@contextmanager
def _loading(workspace) -> Iterator[None]:
    _active.append(workspace)
    try:
        yield
    finally:
        _active.pop()


def lake_source(table: str, *, timestamp_field: str = "event_timestamp", name: str | None = None):
    """A Feast batch source over a catalog table's published files (its ``current`` folder;
    on an S3 lake, the published version's files): a FileSource for the DuckDB offline store,
    a SparkSource for the Spark one."""
    from ..workspace import Workspace

    workspace = _active[-1] if _active else Workspace.load()
    zone, _, table_name = table.partition(".")
    name = name or table.replace(".", "_")
    description = f"lakebook table {table}"
    if workspace.settings.features.offline_store.type == "spark":
        from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource

        require_local(workspace.lake.root, f"a Feast source over {table} for the Spark offline store "
                                           "(use features.offline_store: duckdb)")
        return SparkSource(name=name, path=str(workspace.lake.current(zone, table_name)), file_format="parquet",
                           timestamp_field=timestamp_field, description=description)
    from feast import FileSource
    from feast.data_format import ParquetFormat

    return FileSource(name=name, path=published_path(workspace, zone, table_name), file_format=ParquetFormat(),
                      timestamp_field=timestamp_field, description=description)


UNPUBLISHED = "unpublished"  # an S3 source's folder while its table has no version yet: it names no file


def published_path(workspace, zone: str, name: str) -> str:
    """The path a Feast FileSource reads a table by: its ``current`` folder; on an S3 lake a
    glob of the version folder the catalog publishes, as ibis reads it through the lake's
    filesystem (``lakebook-s3://bucket/key``, see lake/store.py)."""
    if not is_s3(workspace.lake.root):
        return str(workspace.lake.current(zone, name))
    from ..catalog import open_catalog
    from ..errors import UnknownTable

    catalog = open_catalog(workspace, register=False)
    try:
        location = catalog.table(f"{zone}.{name}").location
    except UnknownTable:
        location = str(workspace.lake.table_dir(zone, name) / UNPUBLISHED)
    finally:
        catalog.close()
    return ibis_uri(f"{str(location).rstrip('/')}/**/*.parquet")


def _stale_lake_sources(workspace, store) -> list[str]:
    """The views whose S3 source names another version than the one the catalog publishes."""
    stale, published = [], {}
    for view in store.list_feature_views():
        path = getattr(view.batch_source, "path", "") or ""
        table = workspace.lake.table_of(from_ibis_uri(path)) if is_s3(from_ibis_uri(path)) else None
        if table and table not in published:
            published[table] = published_path(workspace, *table)
        if table and path != published[table]:
            stale.append(view.name)
    return stale


def _current_store(workspace):
    """The feature store, its S3 lake sources first applied again if a table they read has
    published a newer version since (nothing to do on a local lake: sources read ``current``)."""
    store = feature_store(workspace)
    if is_s3(workspace.lake.root) and (stale := _stale_lake_sources(workspace, store)):
        log.info("the lake tables of %s have a newer version: applying the feature repository again",
                 ", ".join(stale))
        apply(workspace)
        store.refresh_registry()
    return store


def _repo_objects(workspace):
    """Everything the workspace's Feast repository defines. Its .py files are imported as
    the Feast CLI does (from inside the repo), then forgotten, so another workspace in the
    same process loads its own."""
    import os

    _import_feast()
    from feast.repo_operations import parse_repo

    repo = workspace.feature_repo_dir.resolve()
    before, cwd = set(sys.modules), os.getcwd()
    sys.path.insert(0, str(repo))
    os.chdir(repo)
    try:
        with _loading(workspace):
            return parse_repo(repo)
    finally:
        os.chdir(cwd)
        sys.path.remove(str(repo))
        for name in set(sys.modules) - before:
            if str(getattr(sys.modules[name], "__file__", "") or "").startswith(str(repo)):
                del sys.modules[name]


def apply(workspace) -> dict[str, list[str]]:
    """Register the repository's entities, sources, views and services (like ``feast apply``).
    The repository's configuration is read first: a workspace without one is told what to add."""
    store = feature_store(workspace)
    contents = _repo_objects(workspace)
    objects = [*contents.entities, *contents.data_sources, *contents.feature_views,
               *contents.on_demand_feature_views, *contents.stream_feature_views, *contents.feature_services]
    store.apply(objects, partial=True)
    keep_newest(store)
    return {"entities": [e.name for e in contents.entities],
            "feature_views": [v.name for v in contents.feature_views],
            "feature_services": [s.name for s in contents.feature_services],
            "sources": [s.name for s in contents.data_sources]}


def _source_tables(workspace, views) -> list[str]:
    """The catalog tables (``zone.name``) the views' batch sources read."""
    return [".".join(found) for v in views
            if (found := workspace.lake.table_of(from_ibis_uri(getattr(v.batch_source, "path", "") or "")))]


def _event_range(workspace, views) -> tuple[datetime, datetime]:
    from ..catalog import open_catalog

    catalog = open_catalog(workspace)
    tables = _source_tables(workspace, views)
    known = {t.qualified_name for t in catalog.tables()}
    if missing := [t for t in tables if t not in known]:
        raise FeatureStoreError(f"the feature views read {', '.join(missing)}, not built yet",
                                hint="run 'lakebook transform run' first")
    bounds = [catalog.event_time_bounds(*table.split(".", 1)) for table in tables]
    lows = [low for low, _ in bounds if low]
    highs = [high for _, high in bounds if high]
    if not lows or not highs:
        raise FeatureStoreError("the feature tables hold no rows yet", hint="run 'lakebook transform run' first")
    return min(lows), max(highs) + timedelta(seconds=1)


ENGINES = ("auto", "feast")


def materialize(workspace, start: datetime | None = None, end: datetime | None = None,
                views: list[str] | None = None, *, engine: str = "auto") -> dict:
    """Load feature values from the offline store into the online store (default: the whole
    event-time range the catalog knows for the feature tables), with Feast's
    ``materialize(start, end)`` semantics: per entity its latest row with start <= event
    time <= end.

    ``engine="auto"`` loads views on plain lake tables into a SQLite or Redis online store
    with lakebook's bulk path (fast_materialize.py: the same bytes as Feast, several times
    faster) and the other views with Feast; ``"feast"`` uses Feast's ``materialize`` for all.
    Either way a stored value is never replaced by an older one (a fresher value the speed
    layer pushed stays; newest_wins.py)."""
    _check_engine(engine)
    store = _current_store(workspace)
    chosen = [v for v in store.list_feature_views() if not views or v.name in views]
    if not chosen:
        raise FeatureStoreError("no feature views to materialize", hint="run 'lakebook features apply' first")
    start, end = _window(workspace, chosen, start, end)
    from .fast_materialize import fast_views, materialize_lake_views

    keep_newest(store)  # a store applied before the rule existed gets it now

    fast = fast_views(workspace, store, chosen) if engine == "auto" else {}
    done = materialize_lake_views(store, list(fast.values()), start, end)
    rest = [v.name for v in chosen if v.name not in fast]
    if rest:
        with _feast_prints_logged_off_a_terminal():
            store.materialize(start_date=start, end_date=end, feature_views=rest)
    record(reads=_source_tables(workspace, chosen))
    engines = {v.name: "lakebook" if v.name in fast else "feast" for v in chosen}
    return {"views": [v.name for v in chosen], "start": start, "end": end, "engines": engines, "lakebook": done}


def _window(workspace, views, start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    if start is None or end is None:
        low, high = _event_range(workspace, views)
        start, end = start or low, end or high
    if utc(start) > utc(end):
        raise FeatureStoreError(f"the window starts after it ends ({start} > {end})", hint="swap --start and --end")
    return start, end


def _check_engine(engine: str) -> None:
    if engine not in ENGINES:
        raise FeatureStoreError(f"unknown engine {engine!r}", hint=f"use one of: {', '.join(ENGINES)}")


@contextmanager
def _feast_prints_logged_off_a_terminal() -> Iterator[None]:
    """Feast prints its progress in ANSI colours whatever stdout is. On a terminal that is its
    progress display; elsewhere (a pipe, a job's output) its lines are logged, uncoloured."""
    if sys.stdout.isatty():
        yield
        return
    printed = io.StringIO()
    try:
        with redirect_stdout(printed):
            yield
    finally:
        for line in _ANSI.sub("", printed.getvalue()).splitlines():
            if line.strip():
                log.info("feast: %s", line.strip())


def training_set(entity_df, feature_service: str, workspace=None, *, full_feature_names: bool = False,
                 engine: str = "auto"):
    """A point-in-time-correct training DataFrame: for every entity row, each feature's
    latest value with ``event_timestamp`` at or before the row's ``event_timestamp`` (and
    within the view's TTL). Other columns of ``entity_df`` (labels) pass through.

    ``engine="auto"`` joins with DuckDB ASOF joins when the offline store is DuckDB and every
    view reads a lake table (same result as Feast, tested; several times faster); ``"feast"``
    always uses Feast's ``get_historical_features``."""
    from ..workspace import Workspace

    _check_engine(engine)
    workspace = workspace or Workspace.load()
    if "event_timestamp" not in entity_df.columns:
        raise FeatureStoreError("entity_df needs an event_timestamp column (when each row's prediction is made)")
    store = _current_store(workspace)
    try:
        service = store.get_feature_service(feature_service)
    except Exception:
        names = [s.name for s in store.list_feature_services()]
        raise FeatureStoreError(f"no feature service {feature_service!r}",
                                hint=f"known: {', '.join(names) or 'none (run lakebook features apply)'}") from None
    plan = _asof_plan(workspace, store, service) if engine == "auto" else None
    if plan is not None:
        return _asof_training_set(entity_df, plan, full_feature_names)
    job = store.get_historical_features(entity_df=entity_df, features=service, full_feature_names=full_feature_names)
    return job.to_df()


def _asof_plan(workspace, store, service) -> list[dict] | None:
    """Per view: its lake folder, join keys, timestamp field, TTL and features; None when a
    view is not a plain lake table on the DuckDB offline store (Feast then does the join)."""
    from .lake_views import lake_view

    plan = []
    for projection in service.feature_view_projections:
        plain = lake_view(workspace, store.get_feature_view(projection.name))
        if plain is None or projection.join_key_map:
            return None
        plan.append({"name": projection.name_to_use(), "view": plain, "keys": list(plain.keys),
                     "ts": plain.timestamp, "ttl": plain.view.ttl, "features": [f.name for f in projection.features]})
    return plan


def _asof_training_set(entity_df, plan: list[dict], full_feature_names: bool):
    """Only the row number, join keys and timestamp go through DuckDB; the features are
    joined back onto the caller's rows, so their columns (labels) keep their exact values."""
    import duckdb
    import numpy as np

    frame = entity_df.reset_index(drop=True)
    needed = sorted({k for view in plan for k in view["keys"]} | {"event_timestamp"})
    probe = frame[needed].assign(_lakebook_row=np.arange(len(frame)))
    con = duckdb.connect()
    try:
        for view in plan:
            view["view"].connect(con)
        con.execute("SET TimeZone = 'UTC'")
        con.register("entity_rows", probe)
        selects, joins = [], []
        for i, view in enumerate(plan):
            alias = f"v{i}"
            columns = ", ".join(f'"{c}"' for c in [*view["keys"], view["ts"], *view["features"]])
            on = " AND ".join(f'{alias}."{k}" = e."{k}"' for k in view["keys"])
            joins.append(f"ASOF LEFT JOIN (SELECT {columns} FROM {view['view'].scan('/*.parquet')}) {alias} "
                         f'ON {on} AND {alias}."{view["ts"]}" <= e.event_timestamp')
            fresh = (f'{alias}."{view["ts"]}" >= e.event_timestamp - INTERVAL {int(view["ttl"].total_seconds())} SECOND'
                     if view["ttl"] and view["ttl"].total_seconds() > 0 else "TRUE")
            for feature in view["features"]:
                name = f"{view['name']}__{feature}" if full_feature_names else feature
                selects.append(f'CASE WHEN {fresh} THEN {alias}."{feature}" END AS "{name}"')
        sql = f"SELECT e._lakebook_row, {', '.join(selects)} FROM entity_rows e {' '.join(joins)}"
        joined = con.execute(sql).df().set_index("_lakebook_row").sort_index()
    finally:
        con.close()
    return frame.join(joined)


def online_features(workspace, feature_service: str, entity_rows: list[dict]) -> dict:
    store = feature_store(workspace)
    return store.get_online_features(features=store.get_feature_service(feature_service),
                                     entity_rows=entity_rows).to_dict()


def utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
