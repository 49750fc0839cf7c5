"""SQL keywords among the names users give fields (names.py), against DuckDB's own list."""

from __future__ import annotations

import duckdb
import pytest

from lakebook.names import SQL_KEYWORDS, needs_quoting


def test_the_keyword_list_is_duckdbs_keywords_that_cannot_name_a_column():
    """'reserved' and 'type_function' keywords (e.g. at, left, join) cannot stand bare as a
    column; 'column_name' and 'unreserved' ones (time, year, user) can."""
    rows = duckdb.sql("SELECT keyword_name FROM duckdb_keywords() "
                      "WHERE keyword_category IN ('reserved', 'type_function')").fetchall()
    assert SQL_KEYWORDS == {name for (name,) in rows}


@pytest.mark.parametrize("name", ["at", "order", "left", "from"])
def test_a_keyword_column_needs_its_quotes_and_works_with_them(name):
    con = duckdb.connect()
    con.execute(f'CREATE TABLE sensors (device VARCHAR, "{name}" INTEGER)')
    con.execute("INSERT INTO sensors VALUES ('d1', 7)")
    assert needs_quoting(name)
    with pytest.raises(duckdb.ParserException):
        con.execute(f"SELECT device, {name} FROM sensors")
    assert con.execute(f'SELECT device, "{name}" FROM sensors').fetchall() == [("d1", 7)]


@pytest.mark.parametrize("name", ["time", "year", "user", "value", "device", "temperature"])
def test_other_names_stand_bare(name):
    con = duckdb.connect()
    con.execute(f'CREATE TABLE sensors ("{name}" INTEGER)')
    assert not needs_quoting(name)
    assert con.execute(f"SELECT {name} FROM sensors").fetchall() == []
