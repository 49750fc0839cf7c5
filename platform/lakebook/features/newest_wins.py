"""The online store keeps each entity's newest value, whichever layer writes it.

Feast's Redis store already skips a write whose event time is not newer than the one stored
(for pushes and for materialization; lakebook's bulk path does the same). Feast's SQLite
store upserts whatever comes last. So every SQLite online table gets a trigger that ignores
an update carrying an older event time than the row holds, for every writer: Feast's push and
materialize, and lakebook's bulk materialize. An equal time is taken (a revision of the same
moment's value). The database is put in WAL mode, so readers (serving) and the writers (the
stream, a materialize) do not block each other.

SQLite keeps Feast's event times in whole seconds; the stream stamps its rows so that within
a second the newest value still wins (stream/operators.py).
"""

from __future__ import annotations

import sqlite3

from ..errors import FeatureStoreError

TRIGGER_SUFFIX = "_newest_wins"


def sqlite_online_path(store) -> str | None:
    """The SQLite online store's file, or None when the store is not SQLite."""
    if store.config.online_store.type != "sqlite":
        return None
    from feast.infra.online_stores.sqlite import SqliteOnlineStore

    return SqliteOnlineStore._get_db_path(store.config)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def keep_newest(store) -> list[str]:
    """Install the trigger on every online table of the store's views (an SQLite store; a
    no-op otherwise); the tables it now guards."""
    from feast.infra.online_stores.helpers import compute_table_id

    path = sqlite_online_path(store)
    if path is None:
        return []
    config = store.config
    names = [compute_table_id(config.project, view, config.registry.enable_online_feature_view_versioning)
             for view in store.list_feature_views()]
    con = sqlite3.connect(path, timeout=30)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        present = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        guarded = [name for name in names if name in present]
        with con:
            for name in guarded:
                con.execute(f"CREATE TRIGGER IF NOT EXISTS {_quoted(name + TRIGGER_SUFFIX)} BEFORE UPDATE ON "
                            f"{_quoted(name)} WHEN NEW.event_ts < OLD.event_ts BEGIN SELECT RAISE(IGNORE); END")
    except sqlite3.OperationalError as exc:
        raise FeatureStoreError(f"cannot prepare the SQLite online store at {path} ({exc})",
                                hint="another process may hold it; try again") from None
    finally:
        con.close()
    return guarded
