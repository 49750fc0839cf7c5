import threading

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
    assert [seq for seq, _, _ in log.read(first)] == [first.seq_lo, first.seq_hi]
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
