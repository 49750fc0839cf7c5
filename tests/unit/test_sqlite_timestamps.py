"""Feast's SQLite online store and IPython's history both register a process-wide sqlite3
converter for ``timestamp`` columns; lakebook registers one that reads both formats."""

import sqlite3
from datetime import datetime

import pytest

from lakebook.features.store import keep_sqlite_timestamps_readable


def _read(path):
    con = sqlite3.connect(path, detect_types=sqlite3.PARSE_DECLTYPES | sqlite3.PARSE_COLNAMES)
    try:
        return [row[0] for row in con.execute("SELECT event_ts FROM t ORDER BY rowid")]
    finally:
        con.close()


def test_epoch_seconds_and_iso_text_both_read_after_ipython_registered_its_converter(tmp_path):
    from IPython.core import history

    path = tmp_path / "online.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (event_ts timestamp)")
    con.executemany("INSERT INTO t VALUES (?)", [(1357052400,), ("2013-01-01 15:00:00",)])
    con.commit()
    con.close()

    history._sqlite3()  # IPython's own registration (once per process) ...
    sqlite3.register_converter("timestamp", lambda v: datetime.fromisoformat(v.decode()))  # ... as it is
    with pytest.raises(ValueError, match="isoformat"):
        _read(path)  # what Feast's online reads met in a process that used IPython's history

    keep_sqlite_timestamps_readable()
    assert _read(path) == [datetime.fromtimestamp(1357052400), datetime(2013, 1, 1, 15, 0)]
    history._sqlite3()  # cached: IPython does not register again afterwards
    assert _read(path)[0] == datetime.fromtimestamp(1357052400)
