"""The serving benchmark's pure parts: one side's figures, the rounds' order, medians and
paired ratios, the goals (an error misses them), the request bodies, and the step timings."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import orjson
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("bench_serve", BENCH / "serve.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


def figures(p50: float, p99: float, rps: float, errors: int = 0) -> dict:
    return {"p50_ms": p50, "p99_ms": p99, "requests_per_s": rps, "requests": int(rps), "errors": errors}


def a_round(lakebook: dict, bare: dict, single_lakebook=None, single_bare=None) -> dict:
    return {"concurrent": {"delay": lakebook, "bare": bare},
            "single": {"delay": single_lakebook or figures(10, 12, 100), "bare": single_bare or figures(8, 9, 120)}}


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
