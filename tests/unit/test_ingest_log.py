import threading

import pytest

from lakebook.ingest.log import EVENTS, GroupCommitWriter, LogRecord, SQLiteIngestLog


def record(source="flights", n=1, payload=b"x") -> LogRecord:
    return LogRecord(source, EVENTS, n, 0, payload)


def test_appended_records_survive_reopening(tmp_path):
    log = SQLiteIngestLog(tmp_path / "log.sqlite")
    log.append([record(n=3), record("weather", n=2)])
    log.close()
    again = SQLiteIngestLog(tmp_path / "log.sqlite")
    assert again.backlog_events() == 5
    assert again.sources_with_work() == ["flights", "weather"]


def test_log_runs_in_wal_mode_with_full_sync(tmp_path):
    log = SQLiteIngestLog(tmp_path / "log.sqlite")
    assert log._con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert log._con.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: fsync on every commit


def test_an_intent_is_reopened_until_committed(tmp_path):
    log = SQLiteIngestLog(tmp_path / "log.sqlite")
    log.append([record(), record()])
    first = log.open_intent("flights")
    log.append([record()])  # arrives while the flush works: not part of it
    assert log.open_intent("flights") == first  # a crashed flush redoes exactly its range
    assert [seq for seq, _, _, _ in log.read(first)] == [first.seq_lo, first.seq_hi]
    log.commit_flush(first, ["a", "b"])
    second = log.open_intent("flights")
    assert second.seq_lo == second.seq_hi > first.seq_hi
    assert log.already_seen("flights", ["a", "c"]) == {"a"}
    assert log.already_seen("weather", ["a"]) == set()


def test_sequence_numbers_are_never_reused(tmp_path):
    log = SQLiteIngestLog(tmp_path / "log.sqlite")
    log.append([record()])
    intent = log.open_intent("flights")
    log.commit_flush(intent, [])
    log.append([record()])
    assert log.open_intent("flights").seq_lo > intent.seq_hi
    assert log.open_intent("weather") is None


def test_group_commit_shares_commits_between_concurrent_appends(tmp_path):
    log = SQLiteIngestLog(tmp_path / "log.sqlite")
    writer = GroupCommitWriter(log)
    futures = []
    start = threading.Barrier(8)

    def submit():
        start.wait()
        for _ in range(50):
            futures.append(writer.submit([record()]))

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for f in futures:
        f.result(timeout=30)
    writer.close()
    assert log.backlog_events() == 400
    assert writer.commits < 400  # appends waiting together were committed together


def test_a_failed_append_fails_every_waiting_request(tmp_path):
    log = SQLiteIngestLog(tmp_path / "log.sqlite")
    writer = GroupCommitWriter(log)
    bad = LogRecord("flights", EVENTS, 1, 0, None)  # payload NOT NULL
    future = writer.submit([bad])
    try:
        future.result(timeout=30)
        raised = False
    except Exception:
        raised = True
    writer.close()
    assert raised and log.backlog_events() == 0


def test_seen_ids_hold_any_text_and_many_at_once(tmp_path):
    log = SQLiteIngestLog(tmp_path / "log.sqlite")
    odd = ['a"b', "back\\slash", "\\u0000", "é🛫", "", " ", "[1]", "\u2028", "a" * 500]
    many = [f"{i:032x}" for i in range(5000)]
    log.append([record(n=1)])
    log.commit_flush(log.open_intent("flights"), odd + many + odd)  # repeats are remembered once
    log.append([record(n=1)])
    log.commit_flush(log.open_intent("flights"), ["x\x00y", "x"])  # (NUL: one by one, not via JSON)
    odd += ["x\x00y", "x"]
    assert log.already_seen("flights", ["x\x00z"]) == set()
    assert log.already_seen("flights", odd + ["never", "never"]) == set(odd)
    assert log.already_seen("flights", list(reversed(many))) == set(many)
    assert log.already_seen("weather", odd) == set() and log.already_seen("flights", []) == set()
    assert log._con.execute("SELECT count(*) FROM seen_ids").fetchone()[0] == len(odd) + len(many)


def test_the_writer_keeps_the_backlog_and_recounts_it_after_a_flush_elsewhere(tmp_path):
    log = SQLiteIngestLog(tmp_path / "log.sqlite")
    log.append([record(n=7)])
    writer = GroupCommitWriter(log)
    assert writer.backlog == 7  # what the log held before
    futures = [writer.submit([record(n=2), LogRecord("flights", "rejected", 5, 0, b"[]")]) for _ in range(3)]
    for f in futures:
        f.result(timeout=30)
    assert writer.backlog == 13  # raised before the appends were acknowledged; rejected events are no backlog
    other = SQLiteIngestLog(tmp_path / "log.sqlite")  # a flusher in another process
    other.commit_flush(other.open_intent("flights"), [])
    assert writer.backlog == 13
    writer.recount()
    writer.close()  # the recount waiting in the queue is done first
    assert writer.backlog == 0


def test_an_intent_takes_the_oldest_batches_up_to_a_number_of_events(tmp_path):
    log = SQLiteIngestLog(tmp_path / "log.sqlite")
    log.append([record(n=400), record(n=400), record(n=300), record(n=2000), record(n=1)])
    first = log.open_intent("flights", max_events=1000)
    assert [n for _, _, _, n in _batches(log, first)] == [400, 400]
    log.commit_flush(first, [])
    second = log.open_intent("flights", max_events=1000)
    assert [n for _, _, _, n in _batches(log, second)] == [300]
    log.commit_flush(second, [])
    third = log.open_intent("flights", max_events=1000)  # one batch over the limit still goes alone
    assert [n for _, _, _, n in _batches(log, third)] == [2000]
    assert log.last_seq("flights") == third.seq_hi + 1
    assert log.last_seq("weather") is None


def _batches(log, intent):
    return log._con.execute("SELECT seq, kind, received_at_us, n FROM batches WHERE seq BETWEEN ? AND ? ORDER BY seq",
                            (intent.seq_lo, intent.seq_hi)).fetchall()


def test_the_backlog_is_kept_by_source(tmp_path):
    log = SQLiteIngestLog(tmp_path / "log.sqlite")
    log.append([record(n=4), record("weather", n=1), LogRecord("weather", "rejected", 9, 0, b"[]")])
    writer = GroupCommitWriter(log)
    assert writer.by_source == {"flights": 4, "weather": 1} and writer.backlog == 5
    writer.submit([record("weather", n=2), record("alerts", n=3)]).result(timeout=30)
    assert writer.by_source == {"flights": 4, "weather": 3, "alerts": 3}
    log.commit_flush(log.open_intent("weather"), [])
    writer.recount()
    writer.close()
    assert writer.by_source == {"flights": 4, "alerts": 3} == log.backlog_by_source()


def test_a_full_disk_is_insufficient_storage_and_the_log_works_again_once_there_is_room(tmp_path):
    from lakebook.errors import InsufficientStorage

    log = SQLiteIngestLog(tmp_path / "log.sqlite")
    log.append([record(n=2)])
    pages = log._con.execute("PRAGMA page_count").fetchone()[0]
    log._con.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own "database or disk is full"
    with pytest.raises(InsufficientStorage) as info:
        log.append([record(n=5, payload=b"x" * 100_000)])
    assert info.value.http_status == 507 and info.value.retry_after_s > 0
    assert info.value.message == f"the disk holding the ingest log ({tmp_path}) is full: nothing was stored"
    assert "free space" in info.value.hint
    assert log.backlog_events() == 2  # nothing of the failed append is kept
    log._con.execute("PRAGMA max_page_count = 1073741823")
    log.append([record(n=5, payload=b"x" * 100_000)])
    assert log.backlog_events() == 7


def test_a_file_that_is_not_a_database_is_a_damaged_log_naming_the_file(tmp_path):
    from lakebook.errors import DamagedFile

    path = tmp_path / "log.sqlite"
    path.write_bytes(b"this is not SQLite" * 1000)
    with pytest.raises(DamagedFile) as info:
        SQLiteIngestLog(path)
    assert info.value.message.startswith(f"the ingest log {path} is damaged")
    assert "lakebook doctor" in info.value.hint and info.value.http_status == 503


def test_damaged_pages_are_a_damaged_log_naming_the_file(tmp_path):
    from lakebook.errors import DamagedFile

    path = tmp_path / "log.sqlite"
    log = SQLiteIngestLog(path)
    log.append([record(payload=bytes(5000)) for _ in range(50)])
    log._con.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the rows in the file itself, not in the WAL
    log.close()
    data = bytearray(path.read_bytes())
    data[4096:len(data) // 2] = b"\xa5" * (len(data) // 2 - 4096)
    path.write_bytes(bytes(data))
    again = SQLiteIngestLog(path)
    with pytest.raises(DamagedFile) as info:
        again.backlog_events()
    assert str(path) in info.value.message and "malformed" in info.value.message
