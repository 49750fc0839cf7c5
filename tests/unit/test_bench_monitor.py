"""The monitor benchmark's pure parts: the rounds' order, the evaluation figures and goal, the
checks slowest first, the two sides' values compared, the bad burst, the fault figures and goal."""

from __future__ import annotations

import pytest
from bench_support import load_bench


@pytest.fixture(scope="module")
def bench():
    return load_bench("monitor")


def test_the_first_side_alternates_between_rounds(bench):
    assert [bench.round_order(i) for i in range(4)] == [("lakebook", "baseline"), ("baseline", "lakebook")] * 2


def sample(lakebook: float, baseline: float, checks_s: float) -> dict:
    return {"lakebook": lakebook, "baseline": baseline, "checks_s": checks_s,
            "per_check_ms": {"a": 10.0, "b": 30.0}, "baseline_per_check_ms": {"a": 2.0}}


def test_evaluation_figures_are_medians_p95_ratios_bookkeeping_and_the_goal_on_p95(bench):
    rounds = [sample(0.30, 0.10, 0.20), sample(0.40, 0.10, 0.25), sample(0.20, 0.05, 0.15)]
    out = bench.evaluation_figures(rounds)
    assert out["seconds"]["lakebook"]["median"] == pytest.approx(0.30)
    assert out["seconds"]["lakebook"]["p95"] == pytest.approx(0.39)  # interpolated between 0.30 and 0.40
    assert out["seconds"]["baseline"]["median"] == pytest.approx(0.10)
    assert out["ratio_of_medians"] == pytest.approx(3.0)
    assert out["median_paired_ratio"] == pytest.approx(4.0)  # 3, 4, 4
    assert out["lakebook_checks_median_s"] == pytest.approx(0.20)
    assert out["lakebook_bookkeeping_median_s"] == pytest.approx(0.10)  # 0.10, 0.15, 0.05
    assert out["met"]
    assert not bench.evaluation_figures([sample(1.2, 0.1, 0.2)])["met"]


def test_per_check_lists_the_slowest_lakebook_check_first_and_none_without_a_hand_query(bench):
    rows = bench.per_check([sample(0.3, 0.1, 0.2), sample(0.3, 0.1, 0.2)])
    assert rows == [{"check": "b", "lakebook_ms": 30.0, "baseline_ms": None},
                    {"check": "a", "lakebook_ms": 10.0, "baseline_ms": 2.0}]


def test_values_agree_exactly_but_ages_within_the_time_between_the_sides(bench):
    lakebook = {"freshness_raw_flights": 100.0, "reject_rate_flights": 0.0, "missing_share_x": 2.8,
                "volume_change_raw_flights": None, "stream_lag": 3.0}
    baseline = {"freshness_raw_flights": 102.5, "reject_rate_flights": 0.0, "missing_share_x": 2.81,
                "volume_change_raw_flights": None}
    out = bench.same_values(lakebook, baseline, seconds_apart=2.0)
    assert "stream_lag" not in out  # no hand query for it
    assert out["freshness_raw_flights"]["agree"] and out["reject_rate_flights"]["agree"]
    assert out["volume_change_raw_flights"]["agree"]  # both unknown
    assert not out["missing_share_x"]["agree"]
    assert not bench.same_values(lakebook, baseline, seconds_apart=1.0)["freshness_raw_flights"]["agree"]
    assert not bench.same_values({"x": 1.0}, {"x": None}, 0)["x"]["agree"]


def test_a_bad_burst_keeps_its_size_with_the_bad_share_from_an_origin_the_contract_refuses(bench):
    flights = [{"flight": i, "origin": "EWR"} for i in range(12)]
    burst = bench.bad_burst(flights, size=10, bad_share=0.4)
    assert [f["flight"] for f in burst] == list(range(10))
    assert [f["origin"] for f in burst] == ["EWR"] * 6 + ["BOS"] * 4
    assert flights[9]["origin"] == "EWR"  # the flights given are left as they were


def test_fault_figures_meet_the_goal_only_when_every_round_is_within_the_interval_plus_5_s(bench):
    rounds = [{"to_webhook_s": 4.0, "to_lake_s": 2.0, "to_evaluation_s": 3.9},
              {"to_webhook_s": 9.5, "to_lake_s": 4.0, "to_evaluation_s": 9.4},
              {"to_webhook_s": 6.0, "to_lake_s": None, "to_evaluation_s": 5.8}]
    out = bench.fault_figures(rounds, interval_s=5.0)
    assert (out["p50_s"], out["max_s"], out["min_s"], out["goal_s"], out["met"]) == (6.0, 9.5, 4.0, 10.0, True)
    assert out["median_split_s"] == {"to_lake_s": 3.0, "to_evaluation_s": 5.8, "to_webhook_s": 6.0}
    rounds.append({"to_webhook_s": 10.2})
    assert not bench.fault_figures(rounds, interval_s=5.0)["met"]
