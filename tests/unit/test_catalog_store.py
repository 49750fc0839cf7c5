"""Opening the catalog (catalog/store.py) while another process creates it."""

from __future__ import annotations

from sqlalchemy import create_engine, event
from sqlalchemy.schema import CreateTable

from lakebook.catalog.store import Catalog, _Base


def test_a_sqlite_catalog_another_process_creates_meanwhile_opens(tmp_path):
    """Two flushers (the ingest server's and the MQTT inlet's) open a new catalog at once:
    the other one creates a table after this one has found it missing, before its CREATE."""
    url = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    other = create_engine(url)
    table = _Base.metadata.tables["columns"]

    def created_by_the_other_process(target, connection, **kw):
        with other.begin() as theirs:  # their CREATE, not this event's table.create again
            theirs.execute(CreateTable(table))

    event.listen(table, "before_create", created_by_the_other_process)
    try:
        catalog = Catalog(url)
    finally:
        event.remove(table, "before_create", created_by_the_other_process)
        other.dispose()
    assert catalog.tables() == []
    catalog.engine.dispose()
