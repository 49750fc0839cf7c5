"""The endpoint checks' windows: pure functions over snapshots of the serving service's
counters (requests, errors, latency histogram buckets) as its /status?latency=1 reports them,
recorded with the serving package's own LatencyHistogram."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from lakebook.monitor.definitions import load_file
from lakebook.monitor.pipeline import endpoint_snapshot, endpoint_window, error_rate_in_window, latency_in_window
from lakebook.serving.endpoints import LatencyHistogram

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)


class Counters:
    """An endpoint's figures as the serving service counts them: from its start, never reset."""

    def __init__(self):
        self.requests = self.errors = 0
        self.latency = LatencyHistogram()

    def serve(self, count: int, ms: float, errors: int = 0) -> "Counters":
        for _ in range(count):
            self.latency.record(ms)
        self.requests += count
        self.errors += errors
        return self

    def row(self) -> dict:
        return {"name": "delay", "requests": self.requests, "errors": self.errors, "latency": list(self.latency.counts)}


def snap(counters: Counters) -> dict:
    """The status row of the counters as they are now (they go on counting after)."""
    return counters.row()


def evaluations(counters_at: list[tuple[int, Counters | dict]], window_s: float = 0.0):
    """The windows of evaluations at T0 + minutes (each with the counters then), in order."""
    history, windows = [], []
    for minute, counters in counters_at:
        row = counters.row() if isinstance(counters, Counters) else counters
        window, history = endpoint_window(history, endpoint_snapshot(row, T0 + timedelta(minutes=minute)), window_s)
        windows.append(window)
    return windows, history


def test_the_first_evaluation_takes_the_baseline_and_the_next_measures_the_requests_since():
    counters = Counters().serve(50, 2000)  # a slow start, before the monitor looked
    first = snap(counters)
    [baseline, window], _ = evaluations([(0, first), (1, counters.serve(100, 20))])
    measured = latency_in_window(baseline, "delay", "p95")
    assert measured.value is None and measured.detail == "delay: baseline taken; measured from the next evaluation"
    p95 = latency_in_window(window, "delay", "p95")
    assert p95.value == pytest.approx(20, rel=0.05)  # the slow start is not in the window
    assert p95.detail == f"delay: p95 {p95.value:,.1f} ms over 100 requests since 2026-01-05 12:00:00 UTC"
    assert p95.labels == {"endpoint": "delay"}


def test_a_slow_spell_fails_its_window_and_the_next_window_without_it_resolves():
    counters = Counters()
    snapshots = [(0, snap(counters.serve(10, 20)))]
    snapshots.append((1, snap(counters.serve(90, 20).serve(10, 900))))  # 10 % of the window at 900 ms
    snapshots.append((2, snap(counters.serve(100, 20))))
    [_, slow, after], _ = evaluations(snapshots)
    assert latency_in_window(slow, "delay", "p95").value == pytest.approx(900, rel=0.05)
    assert latency_in_window(slow, "delay", "p50").value == pytest.approx(20, rel=0.05)
    assert latency_in_window(after, "delay", "p95").value == pytest.approx(20, rel=0.05)
    # the service's own cumulative p95 still carries the spell: 10 of 210 requests is under 5 %,
    # but a p99 shows it; the window does not
    assert counters.latency.percentile(99) == pytest.approx(900, rel=0.05)
    assert latency_in_window(after, "delay", "p99").value == pytest.approx(20, rel=0.05)


def test_a_window_without_requests_is_unknown_not_ok_and_not_failing():
    counters = Counters().serve(10, 20)
    [_, idle], _ = evaluations([(0, snap(counters)), (1, snap(counters))])
    latency, errors = latency_in_window(idle, "delay", "p95"), error_rate_in_window(idle, "delay")
    assert latency.value is None and errors.value is None
    assert latency.detail == errors.detail == "delay: no requests since 2026-01-05 12:00:00 UTC"


def test_the_error_rate_is_the_windows_errors_per_request():
    counters = Counters().serve(100, 20, errors=50)
    [_, window], _ = evaluations([(0, snap(counters)), (1, snap(counters.serve(40, 20, errors=2)))])
    rate = error_rate_in_window(window, "delay")
    assert (rate.value, rate.unit) == (pytest.approx(5.0), "%")
    assert rate.detail == "delay: 2 of 40 requests failed since 2026-01-05 12:00:00 UTC"


def test_counters_lower_than_last_time_restart_the_baseline():
    before = snap(Counters().serve(500, 20, errors=1))
    restarted = Counters().serve(30, 400, errors=3)  # the figures counting again from zero
    [_, window, after], history = evaluations([(0, before), (1, snap(restarted)), (2, snap(restarted.serve(10, 20)))])
    assert window.restarted and window.delta["requests"] == 30
    rate = error_rate_in_window(window, "delay")
    assert rate.value == pytest.approx(10.0) and "(its figures started again from zero)" in rate.detail
    assert latency_in_window(window, "delay", "p95").value == pytest.approx(400, rel=0.05)
    assert not after.restarted and after.delta["requests"] == 10  # the restart's snapshot is the new baseline
    # fewer requests is not the only sign: a bucket that went down is one too
    shifted = {**snap(Counters().serve(500, 20, errors=1)), "latency": list(Counters().serve(500, 30).latency.counts)}
    [_, moved], _ = evaluations([(0, before), (1, shifted)])
    assert moved.restarted


def test_a_window_option_measures_from_the_newest_snapshot_at_least_that_old():
    counters = Counters()
    snapshots = [(minute, snap(counters.serve(10, 20 if minute < 3 else 600))) for minute in range(6)]
    windows, history = evaluations(snapshots, window_s=180)
    # at minute 5 the baseline is minute 2's: minutes 3-5 slow, 30 requests
    assert windows[5].since == T0 + timedelta(minutes=2) and windows[5].delta["requests"] == 30
    assert latency_in_window(windows[5], "delay", "p50").value == pytest.approx(600, rel=0.05)
    # before the window has passed once, the oldest snapshot is the baseline
    assert windows[1].since == windows[2].since == T0
    assert [datetime.fromisoformat(s["at"]) for s in history] == [T0 + timedelta(minutes=m) for m in (2, 3, 4, 5)]


def test_a_snapshot_keeps_only_the_buckets_with_counts():
    snapshot = endpoint_snapshot(Counters().serve(3, 20).serve(1, 900).row(), T0)
    assert snapshot["requests"] == 4 and sum(snapshot["latency"].values()) == 4 and len(snapshot["latency"]) == 2


def test_a_service_that_cannot_be_read_is_unknown_with_its_reason():
    down = "the model endpoints' service is not running for this workspace"
    assert latency_in_window(down, "delay", "p95").detail == down
    assert error_rate_in_window(down, "delay").value is None


def test_the_window_is_an_option_of_both_endpoint_kinds(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("checks:\n"
                    "  - {check: endpoint_latency(delay), fail: '> 300ms', window: 5m, quantile: p99}\n"
                    "  - {check: endpoint_error_rate(delay), warn: '> 1%'}\n")
    latency, errors = load_file(path, shown="m.yaml")
    assert latency.options == {"quantile": "p99", "window": 300.0}
    assert errors.options == {"window": 0.0}
