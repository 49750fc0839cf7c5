"""The flusher process's schedule (workers.next_flush_due): at a fixed interval while the log
is quiet, at once after a flush that found it busy."""

from lakebook.ingest.workers import BUSY_FLUSH_EVENTS, next_flush_due


def test_a_quiet_flush_is_followed_one_interval_after_it_started():
    assert next_flush_due(100.0, 5.0, events=0) == 105.0
    assert next_flush_due(100.0, 5.0, events=BUSY_FLUSH_EVENTS - 1) == 105.0


def test_a_busy_flush_is_followed_at_once():
    # due when it started: whenever it ends, the next one is already due
    assert next_flush_due(100.0, 5.0, events=BUSY_FLUSH_EVENTS) == 100.0
    assert next_flush_due(100.0, 5.0, events=10 * BUSY_FLUSH_EVENTS) == 100.0
