"""The serving benchmark's pure parts: one side's figures, the rounds' order, medians and
paired ratios, the goals (an error misses them), the request bodies, and the step timings."""

from __future__ import annotations

import math

import orjson
import pytest
from bench_support import load_bench


@pytest.fixture(scope="module")
def bench():
    return load_bench("serve")


def figures(p50: float, p99: float, rps: float, errors: int = 0) -> dict:
    return {"p50_ms": p50, "p99_ms": p99, "requests_per_s": rps, "requests": int(rps), "errors": errors}


def a_round(lakebook: dict, bare: dict, single_lakebook=None, single_bare=None, cpu=(4.0, 3.0)) -> dict:
    return {"concurrent": {"delay": lakebook, "bare": bare},
            "single": {"delay": single_lakebook or figures(10, 12, 100), "bare": single_bare or figures(8, 9, 120)},
            "cpu_ms_per_request": {"delay": {"replica": cpu[0], "proxy": 1.0, "client": 0.5},
                                   "bare": {"replica": cpu[1], "proxy": 1.0, "client": 0.5}}}


def test_side_figures_count_answered_requests_only_and_their_rate(bench):
    out = bench.side_figures([float(ms) for ms in range(1, 101)], seconds=2.0, errors=3)
    assert out["requests"] == 100 and out["errors"] == 3
    assert out["requests_per_s"] == 50.0
    assert out["p50_ms"] == pytest.approx(50.5) and out["p99_ms"] == pytest.approx(99.01)
    empty = bench.side_figures([], seconds=1.0, errors=4)
    assert empty["requests_per_s"] == 0 and math.isnan(empty["p50_ms"])


def test_the_first_side_alternates_between_rounds(bench):
    assert [bench.round_order(i) for i in range(4)] == [("delay", "bare"), ("bare", "delay")] * 2


def test_medians_are_taken_over_rounds_per_side_and_errors_are_summed(bench):
    rounds = [a_round(figures(10, 30, 400), figures(9, 20, 500, errors=1)),
              a_round(figures(14, 50, 300), figures(8, 25, 450)),
              a_round(figures(11, 40, 350, errors=2), figures(12, 22, 480))]
    out = bench.medians_over_rounds(rounds, "concurrent")
    assert out["delay"] == {"p50_ms": 11, "p99_ms": 40, "requests_per_s": 350, "requests": 1050, "errors": 2}
    assert out["bare"] == {"p50_ms": 9, "p99_ms": 22, "requests_per_s": 480, "requests": 1430, "errors": 1}


def test_ratios_pair_each_round_and_take_the_median(bench):
    # medians of each side would give 11/9; the paired ratios are 1.0, 2.0, 1.1 -> 1.1
    rounds = [a_round(figures(10, 20, 400), figures(10, 20, 400)),
              a_round(figures(14, 20, 300), figures(7, 20, 600)),
              a_round(figures(11, 20, 330), figures(10, 20, 300))]
    assert bench.paired_ratio(rounds, "concurrent", "p50_ms") == pytest.approx(1.1)
    assert bench.paired_ratio(rounds, "concurrent", "requests_per_s") == pytest.approx(1.0)


def test_the_goals_are_met_within_the_bounds_and_missed_beyond_them(bench):
    met = bench.targets([a_round(figures(12, 30, 450), figures(10, 20, 500))])  # 1.2 x p50, 0.9 x throughput
    assert met["p50_ratio"]["met"] and met["throughput_ratio"]["met"] and met["no_errors"]
    assert met["p50_ratio"]["value"] == pytest.approx(1.2) and met["throughput_ratio"]["value"] == pytest.approx(0.9)
    assert met["single_p50_ratio"] == pytest.approx(10 / 8)
    slow = bench.targets([a_round(figures(12.5, 30, 440), figures(10, 20, 500))])
    assert not slow["p50_ratio"]["met"] and not slow["throughput_ratio"]["met"]


def test_an_error_on_either_side_in_any_phase_misses_both_goals(bench):
    for errors_at in ("lakebook", "bare", "single"):
        round_ = a_round(figures(10, 20, 500, errors=int(errors_at == "lakebook")),
                         figures(10, 20, 500, errors=int(errors_at == "bare")),
                         single_bare=figures(8, 9, 120, errors=int(errors_at == "single")))
        out = bench.targets([round_])
        assert not out["no_errors"] and not out["p50_ratio"]["met"] and not out["throughput_ratio"]["met"], errors_at


def test_request_bodies_hold_exactly_the_request_fields_and_skip_incomplete_flights(bench):
    rows = [{"origin": "EWR", "carrier": "UA", "tailnum": "N14228", "distance": 1400.0, "flight_id": "x"},
            {"origin": "JFK", "carrier": "AA", "tailnum": None, "distance": 1089.0}]
    bodies = bench.request_bodies(rows, ["origin", "carrier", "tailnum", "distance"])
    assert [orjson.loads(b) for b in bodies] == [{"origin": "EWR", "carrier": "UA", "tailnum": "N14228",
                                                  "distance": 1400.0}]


class Clock:
    """A perf_counter that moves only when told to."""

    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def pass_ms(self, ms: float) -> None:
        self.now += ms / 1000


def test_laps_add_a_steps_time_per_request_and_give_the_rest_of_the_whole(bench, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(bench.time, "perf_counter", clock)
    laps = bench.Laps()
    for ms in (2.0, 4.0, 6.0):
        laps.start()
        with laps.timed("outside"):
            clock.pass_ms(ms)
        with laps.timed("whole"):
            laps.wrap("inner", clock.pass_ms)(ms / 2)
            laps.wrap("inner", clock.pass_ms)(ms / 2)  # a step met twice counts twice
            clock.pass_ms(3 * ms)
        laps.finish()
    out = laps.summary("whole", ["inner"], "rest")
    assert out["requests"] == 3 and list(out["steps"]) == ["outside", "inner", "whole", "rest"]
    assert {s: round(v["p50_ms"], 6) for s, v in out["steps"].items()} == \
        {"outside": 4.0, "whole": 16.0, "inner": 4.0, "rest": 12.0}
    assert out["steps"]["rest"]["p95_ms"] == pytest.approx(17.4)
    assert out["sum_of_p50_ms"] == pytest.approx(4.0 + 4.0 + 12.0)  # every step but the whole


def test_cpu_per_request_is_each_processs_cpu_between_readings_over_the_answered_requests(bench):
    out = bench.cpu_per_request({"delay": 10.0, "proxy": 2.0}, {"delay": 10.5, "proxy": 2.1}, requests=100)
    assert out == pytest.approx({"delay": 5.0, "proxy": 1.0})
    assert all(math.isnan(v) for v in bench.cpu_per_request({"delay": 1.0}, {"delay": 2.0}, requests=0).values())


def test_cpu_medians_are_per_side_and_process_over_rounds(bench):
    rounds = [a_round(figures(10, 20, 400), figures(10, 20, 400), cpu=cpu) for cpu in ((4, 3), (6, 2), (5, 9))]
    assert bench.cpu_medians(rounds) == {"delay": {"replica": 5, "proxy": 1.0, "client": 0.5},
                                         "bare": {"replica": 3, "proxy": 1.0, "client": 0.5}}


def profile_of(bench, step_ms: dict[str, float], batch_size: int) -> dict:
    laps = bench.Laps()
    laps.start()
    laps.current.update(step_ms)
    laps.finish()
    return {"batch_size": batch_size, **laps.summary("predict", ["model"], "frame and rest")}


def test_the_summary_shows_the_goals_and_where_the_time_goes(bench):
    rounds = [a_round(figures(13, 30, 400), figures(10, 20, 500))]
    medians = {phase: bench.medians_over_rounds(rounds, phase) for phase in ("concurrent", "single")}
    one = {"delay": profile_of(bench, {"token check": 0.5, "predict": 6.0, "model": 2.0}, 1),
           "bare": profile_of(bench, {"parse": 0.5, "predict": 5.0, "model": 2.0}, 1)}
    profiles = {1: one, bench.CONCURRENCY: one, "recorder_thread": {"appends": 2, "predictions": 8, "wall_ms_per_prediction": 0.25,
                                                                   "cpu_ms_per_prediction": 0.1}}
    where = bench.where_the_time_goes(profiles, medians["single"], bench.cpu_medians(rounds))
    assert where["delay"]["single_request"]["sum_of_p50_ms"] == pytest.approx(6.5)  # token check + model + rest
    assert where["delay"]["single_request"]["serve_http_and_batch_wait_ms"] == pytest.approx(10 - 6.5)
    assert where["bare"]["single_request"]["serve_http_and_batch_wait_ms"] == pytest.approx(8 - 5.5)
    result = {"medians": medians, "targets": bench.targets(rounds), "profile": where,
              "same_answers": {"requests": 50, "equal": True}}
    lines = bench.summary(result)
    assert "p50 ratio 1.30 (goal <= 1.2: MISSED)" in lines[0] and "throughput ratio 0.80 (goal >= 0.9: MISSED)" in lines[0]
    assert "same p_late on 50 flights: True" in lines[1]
    assert any("delay: CPU ms per request at 8 connections: replica 4.0, proxy 1.0, client 0.5" in line for line in lines)
    assert any("Serve, HTTP and batch wait 3.5" in line for line in lines)
    assert "0.25 ms (wall; CPU 0.10) per prediction validated and appended to the ingest log" in lines[-1]


def test_the_recorder_threads_appends_are_timed_with_their_predictions_and_still_done(bench):
    class Recorder:
        def __init__(self):
            self.written = []

        def _write(self, events: list, last: bool) -> list:
            self.written += events
            return []

    recorder, appends = Recorder(), []
    bench.time_recorder(recorder, appends)
    assert recorder._write([{"a": 1}, {"a": 2}, {"a": 3}], False) == [] and recorder._write([{"a": 4}], True) == []
    assert recorder.written == [{"a": 1}, {"a": 2}, {"a": 3}, {"a": 4}]
    assert [n for *_, n in appends] == [3, 1] and all(wall >= 0 and cpu >= 0 for wall, cpu, _ in appends)
