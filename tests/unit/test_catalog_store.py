"""Opening and writing the catalog (catalog/store.py) while others do the same: processes
starting together on a new workspace (the ingest server, its flusher, a command)."""

from __future__ import annotations

import sqlite3
import threading

from sqlalchemy.exc import OperationalError

from lakebook.catalog.store import Catalog, ColumnInfo, catalog_error
from lakebook.errors import CatalogUnavailable

COLUMNS = [ColumnInfo("device", "string"), ColumnInfo("temperature", "double")]


def _at_once(count: int, work) -> list[BaseException]:
    """``work(i)`` in ``count`` threads released together; the exceptions they raised."""
    barrier, errors = threading.Barrier(count), []

    def run(i):
        barrier.wait()
        try:
            work(i)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_a_new_sqlite_catalog_opened_and_registered_by_many_at_once(tmp_path):
    """Each opener creates the missing tables in one write transaction and registers the
    same source: none fails, and the source is there once."""
    url = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    catalogs = []

    def open_and_register(i):
        catalog = Catalog(url, tmp_path)
        catalogs.append(catalog)
        catalog.register_table("raw", "sensors", kind="source", location=str(tmp_path / "raw" / "sensors"),
                               columns=COLUMNS, description=f"opener {i % 2}")

    assert _at_once(6, open_and_register) == []
    [table] = catalogs[0].tables()
    assert table.qualified_name == "raw.sensors" and [c.name for c in table.columns] == ["device", "temperature"]
    for catalog in catalogs:
        catalog.close()


def test_a_new_workspace_whose_stage_stores_and_catalog_open_at_once(tmp_path):
    """The job store's tables (a CatalogTables) and the catalog's, created by several openers
    of a new workspace at once (`lakebook up` starts the scheduler, the monitor and the
    ingest server together): none fails with 'table ... already exists' or 'database is locked'."""
    from lakebook.catalog import open_catalog
    from lakebook.jobs.store import JobStore
    from lakebook.workspace import Workspace

    for round_ in range(5):
        root = tmp_path / f"ws{round_}"
        root.mkdir()
        (root / "lakebook.yaml").write_text("name: new\n")
        workspace = Workspace.load(root)

        def open_one(i):
            (JobStore(workspace) if i % 2 else open_catalog(workspace)).close()

        assert _at_once(8, open_one) == []


def test_a_table_registered_by_another_process_after_the_check_is_updated(tmp_path, monkeypatch):
    """The other process inserts the row after this one found it missing: this one's write
    transaction reads it again under the write lock and updates it (no UNIQUE failure)."""
    url = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    mine, theirs = Catalog(url, tmp_path), Catalog(url, tmp_path)
    location = str(tmp_path / "raw" / "sensors")

    def missing_then_registered_by_them(*args):
        theirs.register_table("raw", "sensors", kind="source", location=location, columns=COLUMNS[:1])
        return False

    monkeypatch.setattr(mine, "_registered", missing_then_registered_by_them)
    mine.register_table("raw", "sensors", kind="source", location=location, columns=COLUMNS)
    [table] = theirs.tables()
    assert [c.name for c in table.columns] == ["device", "temperature"]
    mine.close()
    theirs.close()


def test_a_locked_sqlite_catalog_is_a_message_with_a_sqlite_hint(tmp_path):
    """A database error of a SQLite catalog does not ask whether a database server runs; a
    PostgreSQL one does, with its password masked."""
    locked = OperationalError("BEGIN IMMEDIATE", {}, sqlite3.OperationalError("database is locked"))
    error = catalog_error(f"sqlite:///{tmp_path / 'catalog.sqlite'}", locked)
    assert isinstance(error, CatalogUnavailable) and error.message.endswith(": database is locked")
    assert "server" not in error.hint and "another lakebook process holds the database" in error.hint
    damaged = OperationalError("SELECT 1", {}, sqlite3.DatabaseError("file is not a database"))
    assert "damaged" in catalog_error(f"sqlite:///{tmp_path / 'catalog.sqlite'}", damaged).hint
    remote = catalog_error("postgresql://u:secret@db/lake", locked)
    assert "server running" in remote.hint and "secret" not in remote.message


def test_files_named_are_a_tables_live_files_of_that_name_in_path_order(tmp_path):
    from lakebook.lake import WrittenFile

    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}", tmp_path)
    folder = tmp_path / "raw" / "sensors"
    catalog.register_table("raw", "sensors", kind="source", location=str(folder), columns=COLUMNS)
    catalog.register_table("raw", "other", kind="source", location=str(tmp_path / "raw" / "other"), columns=COLUMNS)

    def written(path, partition):
        return WrittenFile(path, partition, 1, 10, None, None, None)

    names = [("date=2024-01-02", "part-1-2.parquet"), ("date=2024-01-01", "part-1-2.parquet"),
             ("date=2024-01-01", "part-3-4.parquet"), ("date=2024-01-01", "partx1-2.parquet")]
    catalog.record_files("raw", "sensors", [written(folder / p / n, p) for p, n in names])
    catalog.record_files("raw", "other", [written(tmp_path / "raw" / "other" / "date=2024-01-01" / "part-1-2.parquet",
                                                  "date=2024-01-01")])
    try:
        assert catalog.files_named("raw", "sensors", "part-1-2.parquet") == [
            str(folder / "date=2024-01-01" / "part-1-2.parquet"), str(folder / "date=2024-01-02" / "part-1-2.parquet")]
        assert catalog.files_named("raw", "sensors", "part_1-2.parquet") == []  # _ and % are no wildcards
        assert catalog.files_named("raw", "sensors", "part-5-6.parquet") == []
    finally:
        catalog.close()
