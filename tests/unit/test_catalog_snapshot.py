"""CatalogSnapshot reads a SQLite catalog with the standard library: what it reads is what
Catalog (SQLAlchemy) reads, and it reads again only when the catalog changed."""

import pytest

from events import flight, log_events
from lakebook.catalog import CatalogSnapshot, open_catalog
from lakebook.ingest import flush_ingest_log_to_raw


def snapshot_of(workspace, opened: list) -> CatalogSnapshot:
    def open_it():
        opened.append(True)
        return open_catalog(workspace)

    return CatalogSnapshot(workspace.catalog_url, workspace.lake.root, open_it)


def test_the_snapshot_reads_what_the_catalog_holds(workspace):
    log_events(workspace, "flights", [flight(i) for i in range(30)])
    flush_ingest_log_to_raw(workspace)
    opened = []
    snapshot = snapshot_of(workspace, opened)
    assert snapshot.refresh()
    catalog = open_catalog(workspace, register=False)
    assert list(snapshot.tables.values()) == catalog.tables()
    assert snapshot.tables["raw.flights"].row_count == 30 and snapshot.tables["raw.flights"].columns
    assert opened == []  # read without opening the catalog


def test_it_reads_again_only_after_a_change(workspace):
    log_events(workspace, "flights", [flight(i) for i in range(10)])
    flush_ingest_log_to_raw(workspace)
    snapshot = snapshot_of(workspace, [])
    assert snapshot.refresh() and not snapshot.refresh()
    log_events(workspace, "flights", [flight(i) for i in range(10, 15)])
    flush_ingest_log_to_raw(workspace)
    assert snapshot.refresh() and snapshot.tables["raw.flights"].row_count == 15
    assert not snapshot.refresh()


def test_a_workspace_without_a_catalog_yet_is_opened_and_registered(workspace):
    opened = []
    snapshot = snapshot_of(workspace, opened)
    assert snapshot.refresh()
    assert opened == [True] and {"raw.flights", "quarantine.weather"} <= set(snapshot.tables)
    registered = dict(snapshot.tables)
    assert snapshot.refresh() and snapshot.tables == registered  # now read from the file it made
    assert not snapshot.refresh() and opened == [True]
    snapshot.close()


def test_a_catalog_it_was_given_is_used_and_left_open(workspace, monkeypatch):
    catalog = open_catalog(workspace)
    closed = []
    monkeypatch.setattr(catalog, "close", lambda: closed.append(True))
    snapshot = CatalogSnapshot(workspace.catalog_url, workspace.lake.root, lambda: pytest.fail("opened another"),
                               catalog)
    assert snapshot.catalog() is catalog
    snapshot.close()
    assert closed == []
