"""The drift and model-quality checks (lakebook.monitor.drift) without MLflow or servers: PSI, KS
and ROC AUC on known distributions and a hand-computed case; feature drift, prediction drift and
live AUC measured over a small real lake (events through the ingest log, flushed, the outcome
transforms run on DuckDB), and the None they give when there is nothing to measure."""

from __future__ import annotations

import math
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from events import flight, log_events, weather
from lakebook.errors import ConfigError
from lakebook.ingest import flush_ingest_log_to_raw
from lakebook.monitor.drift import (
    Champion, FeatureSource, bin_shares, drift_from_training, feature_source, ks, live_auc, prediction_drift, psi,
    quantile_edges, roc_auc,
)
from lakebook.transform import load_seeds, run_transforms
from test_prediction_quality import prediction

REPO = Path(__file__).resolve().parents[2]
TRAINED_FROM, TRAINED_TO = datetime(2013, 1, 1, tzinfo=timezone.utc), datetime(2013, 1, 8, tzinfo=timezone.utc)
CHAMPION = Champion("flight_delay", "3", "run-id", TRAINED_FROM, TRAINED_TO)


def check(*args, **options):
    return SimpleNamespace(args=args, options=options)


# -- the statistics -----------------------------------------------------------------------------
def test_psi_of_a_sample_against_itself_is_zero_and_of_another_draw_is_small():
    rng = np.random.default_rng(1)
    sample = rng.normal(20, 8, 20_000)
    assert psi(sample, sample) == pytest.approx(0.0, abs=1e-12)
    assert psi(sample, rng.normal(20, 8, 5_000)) < 0.02


def test_psi_of_a_shifted_normal_is_above_the_large_shift_level():
    rng = np.random.default_rng(2)
    baseline = rng.normal(0, 1, 20_000)
    assert psi(baseline, rng.normal(0.5, 1, 5_000)) > 0.2
    assert psi(baseline, rng.normal(1.0, 1, 5_000)) > psi(baseline, rng.normal(0.5, 1, 5_000))


def test_psi_by_hand():
    """Baseline 1..4 in two bins cut at its median (2.5): shares 1/2, 1/2. Recent 1, 1, 1, 4:
    shares 3/4, 1/4. PSI = (3/4 - 1/2) ln(3/2) + (1/4 - 1/2) ln(1/2)."""
    assert list(quantile_edges([1, 2, 3, 4], bins=2)) == [2.5]
    expected = 0.25 * math.log(1.5) + (-0.25) * math.log(0.5)
    assert psi([1, 2, 3, 4], [1, 1, 1, 4], bins=2) == pytest.approx(expected)
    assert expected == pytest.approx(0.274653, abs=1e-6)


def test_an_empty_bin_costs_a_large_but_finite_psi():
    """Every recent value beyond the baseline's range: the other bins are empty (epsilon share)."""
    value = psi(np.arange(100), np.full(50, 1_000.0), bins=4)
    assert math.isfinite(value) and value > 5


def test_bins_follow_the_baseline_quantiles_and_ties_merge_them():
    edges = quantile_edges(np.arange(1, 101), bins=4)
    assert list(edges) == pytest.approx([25.75, 50.5, 75.25])
    assert list(bin_shares(np.arange(1, 101), edges)) == [0.25, 0.25, 0.25, 0.25]
    assert list(quantile_edges([0] * 9 + [1], bins=10)) == pytest.approx([0.0, 0.1])  # 9 ties: 2 edges, not 9


def test_psi_and_ks_are_none_without_values_and_ignore_missing_ones():
    assert psi([], [1.0, 2.0]) is None and psi([1.0, 2.0], []) is None
    assert ks([np.nan, np.nan], [1.0]) is None
    assert psi([1.0, 2.0, np.nan, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0, None], bins=2) == pytest.approx(0.0)


def test_ks_of_identical_and_shifted_samples():
    rng = np.random.default_rng(3)
    baseline = rng.normal(0, 1, 5_000)
    assert ks(baseline, baseline) == 0.0
    assert ks([1, 2, 3, 4], [3, 4, 5, 6]) == pytest.approx(0.5)  # the CDFs are 1/2 apart at 2
    assert ks(baseline, rng.normal(1, 1, 2_000)) > 0.3


def test_roc_auc_is_the_rank_statistic_with_ties():
    scores, labels = [0.1, 0.4, 0.4, 0.8, 0.2, 0.9], [0, 1, 0, 1, 0, 1]
    assert roc_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))
    assert roc_auc([0.2, 0.3], [1, 1]) is None


# -- feature drift over a real lake -------------------------------------------------------------
def hours(start: datetime, count: int, temp) -> list[dict]:
    """Weather at the three airports, ``count`` hours from ``start``; temp(i) per observation."""
    events = []
    for i in range(count):
        at = start + timedelta(hours=i // 3)
        events.append(weather(i, origin=("EWR", "JFK", "LGA")[i % 3], year=at.year, month=at.month, day=at.day,
                              hour=at.hour, time_hour=at.strftime("%Y-%m-%dT%H:%M:%SZ"), temp=float(temp(i))))
    return events


@pytest.fixture
def weather_lake(workspace):
    """A week of January 2013 weather (the training window), then a day more as trained and a
    day with the temperature 25 F higher."""
    rng = np.random.default_rng(4)
    january = lambda i: round(rng.normal(35, 10), 1)  # noqa: E731
    log_events(workspace, "weather", hours(TRAINED_FROM, 7 * 24 * 3, january))
    log_events(workspace, "weather", hours(datetime(2013, 1, 8, tzinfo=timezone.utc), 24 * 3, january))
    log_events(workspace, "weather", hours(datetime(2013, 1, 9, tzinfo=timezone.utc), 24 * 3,
                                           lambda i: january(i) + 25))
    flush_ingest_log_to_raw(workspace)
    return workspace


def test_feature_drift_is_low_for_a_day_like_the_training_window_and_high_after_a_shift(weather_lake):
    """A day holds 72 observations: five bins keep PSI's sampling noise (about bins / n) low."""
    source = feature_source(weather_lake, ("raw.weather.temp",))
    same = drift_from_training(weather_lake, source, CHAMPION, check("raw.weather.temp", bins=5),
                               datetime(2013, 1, 9, tzinfo=timezone.utc))
    shifted = drift_from_training(weather_lake, source, CHAMPION, check("raw.weather.temp", bins=5),
                                  datetime(2013, 1, 10, tzinfo=timezone.utc))
    assert same.unit == "psi" and same.value < 0.1, same.detail
    assert shifted.value > 1.0, shifted.detail
    assert shifted.detail.endswith("72 values of raw.weather.temp in the last 1d against 504 of the training window "
                                   "of flight_delay v3 (2013-01-01 to 2013-01-08)")
    assert shifted.labels == {"table": "raw.weather", "column": "temp", "model": "flight_delay"}
    assert "flight_delay v3" in shifted.detail  # the version in the detail: labels identify the alert


def test_a_feature_in_the_champions_training_sample_is_compared_with_it(weather_lake):
    """The sample the training run logged is the baseline of a feature view's feature: here a
    sample as warm as the shifted day, so that day does not drift and the training week does."""
    source = FeatureSource("raw.weather", "temp", "time_hour",
                           {"feature_view": "origin_weather", "feature": "temp", "table": "raw.weather"})
    sample = pd.DataFrame({"temp": np.random.default_rng(8).normal(60, 10, 3000), "humid": 50.0})
    champion = Champion("flight_delay", "5", "run-id", TRAINED_FROM, TRAINED_TO, training_sample=sample)
    warm = drift_from_training(weather_lake, source, champion, check("origin_weather.temp", bins=5),
                               datetime(2013, 1, 10, tzinfo=timezone.utc))
    cold = drift_from_training(weather_lake, source, champion, check("origin_weather.temp", bins=5),
                               datetime(2013, 1, 9, tzinfo=timezone.utc))
    assert warm.value < 0.1 < 1.0 < cold.value, (warm.detail, cold.detail)
    assert warm.detail.endswith("against 3,000 of the training set of flight_delay v5")
    assert warm.labels["feature_view"] == "origin_weather" and "v5" in warm.detail
    windowed = drift_from_training(weather_lake, source, champion,
                                   check("origin_weather.temp", bins=5, against="training_window"),
                                   datetime(2013, 1, 9, tzinfo=timezone.utc))
    assert windowed.value < 0.1 and windowed.detail.endswith("(2013-01-01 to 2013-01-08)")


def test_feature_drift_by_ks(weather_lake):
    source = feature_source(weather_lake, ("raw.weather.temp",))
    measured = drift_from_training(weather_lake, source, CHAMPION, check("raw.weather.temp", method="ks"),
                                   datetime(2013, 1, 10, tzinfo=timezone.utc))
    assert measured.unit == "ks" and measured.value > 0.7


def test_feature_drift_is_unknown_without_recent_values_or_training_values(weather_lake):
    source = feature_source(weather_lake, ("raw.weather.temp",))
    later = drift_from_training(weather_lake, source, CHAMPION, check("raw.weather.temp"),
                                datetime(2014, 6, 1, tzinfo=timezone.utc))
    assert later.value is None and later.detail == "no values of raw.weather.temp in the last 1d"
    elsewhere = Champion("flight_delay", "4", "run-id", datetime(2012, 1, 1, tzinfo=timezone.utc),
                         datetime(2012, 2, 1, tzinfo=timezone.utc))
    untrained = drift_from_training(weather_lake, source, elsewhere, check("raw.weather.temp"),
                                    datetime(2013, 1, 10, tzinfo=timezone.utc))
    assert untrained.value is None
    assert untrained.detail.endswith("training window of flight_delay v4 (2012-01-01 to 2012-02-01)")


def test_a_bad_feature_or_option_is_named(weather_lake):
    with pytest.raises(ConfigError, match="raw.weather has no column 'tmp'") as bad:
        feature_source(weather_lake, ("raw.weather.tmp",))
    assert "temp" in bad.value.hint
    with pytest.raises(ConfigError, match="takes one feature"):
        feature_source(weather_lake, ("temp",))
    source = feature_source(weather_lake, ("raw.weather.temp",))
    with pytest.raises(ConfigError, match="no option 'windw'") as typo:
        drift_from_training(weather_lake, source, CHAMPION, check("raw.weather.temp", windw="2h"), TRAINED_TO)
    assert "window" in typo.value.hint
    with pytest.raises(ConfigError, match="option method"):
        drift_from_training(weather_lake, source, CHAMPION, check("raw.weather.temp", method="kl"), TRAINED_TO)
    with pytest.raises(ConfigError, match="option window: 'soon' is not a positive duration"):
        drift_from_training(weather_lake, source, CHAMPION, check("raw.weather.temp", window="soon"), TRAINED_TO)
    weekly = drift_from_training(weather_lake, source, CHAMPION, check("raw.weather.temp", window="1w"), TRAINED_TO)
    assert "504 values of raw.weather.temp in the last 7d" in weekly.detail
    with pytest.raises(ConfigError, match="option against: 'holdout' is not one of training_set, training_window"):
        drift_from_training(weather_lake, source, CHAMPION, check("raw.weather.temp", against="holdout"), TRAINED_TO)
    with pytest.raises(ConfigError, match="option bins"):
        drift_from_training(weather_lake, source, CHAMPION, check("raw.weather.temp", bins=1), TRAINED_TO)


# -- the endpoint's answers ---------------------------------------------------------------------
NOW = datetime(2013, 1, 3, tzinfo=timezone.utc)


def answers(count: int, end: datetime, p, *, version="1") -> list[dict]:
    """``count`` predictions of endpoint delay in the hours before ``end``, p(i) each."""
    events = []
    for i in range(count):
        departs = end - timedelta(minutes=10 * i + 1) + timedelta(hours=2)  # predicted 2 hours before
        f = flight(i, sched_dep_at=departs.strftime("%Y-%m-%dT%H:%M:%SZ"))
        event = prediction(f, float(p(i)), version=version)
        event["request_id"] += f"-{end:%d}"
        events.append(event)
    return events


def test_prediction_drift_compares_the_window_with_the_period_before(workspace):
    rng = np.random.default_rng(5)
    log_events(workspace, "predictions", answers(100, NOW - timedelta(days=1), lambda i: rng.beta(2, 5)))
    log_events(workspace, "predictions", answers(100, NOW, lambda i: rng.beta(5, 2), version="2"))
    flush_ingest_log_to_raw(workspace)
    measured = prediction_drift(workspace, check("delay", baseline="1d"), NOW)
    assert measured.value > 1.0 and measured.unit == "psi", measured.detail
    assert measured.labels == {"endpoint": "delay", "model": "flight_delay"}
    assert "100 answers of endpoint delay in the last 1d against 100 in the 1d before" in measured.detail
    too_few = prediction_drift(workspace, check("delay", baseline="1d", min_predictions=500), NOW)
    assert too_few.value is None and "fewer than 500" in too_few.detail
    other = prediction_drift(workspace, check("other"), NOW)
    assert other.value is None and "0 predictions of endpoint other" in other.detail


def test_prediction_drift_without_any_prediction_is_unknown(workspace):
    measured = prediction_drift(workspace, check("delay"), NOW)
    assert measured.value is None


@pytest.fixture
def outcome_lake(workspace):
    """Flights that arrived (late when i is a multiple of 3) and the endpoint's answers for them,
    version 1 a day before version 2; the outcome transforms run on DuckDB."""
    for name in ("flights_clean.sql", "prediction_outcomes.sql"):
        (workspace.root / "transforms").mkdir(exist_ok=True)
        shutil.copy(REPO / "transforms" / name, workspace.root / "transforms")
    shutil.copytree(REPO / "seeds", workspace.root / "seeds")
    flights = [flight(i, arr_delay=40.0 if i % 3 == 0 else 3.0) for i in range(120)]
    log_events(workspace, "flights", flights)
    # version 2 ranks well (late flights high), version 1 at random
    rng = np.random.default_rng(6)
    old = [prediction(f, float(rng.random()), version="1") for f in flights]
    new = [prediction(f, 0.8 if i % 3 == 0 else 0.3, version="2") for i, f in enumerate(flights)]
    for event in new:
        event["request_id"] += "-v2"
        event["predicted_at"] = (datetime.fromisoformat(event["predicted_at"]) + timedelta(days=1)).isoformat()
    log_events(workspace, "predictions", old + new)
    flush_ingest_log_to_raw(workspace)
    load_seeds(workspace)
    run_transforms(workspace, engine="duckdb")
    return workspace


def test_live_auc_is_that_of_the_current_version_over_the_window(outcome_lake):
    now = datetime(2013, 1, 3, tzinfo=timezone.utc)
    measured = live_auc(outcome_lake, check("delay"), now)
    assert measured.value == pytest.approx(1.0) and measured.unit == "auc", measured.detail
    assert measured.labels == {"endpoint": "delay", "model": "flight_delay"}
    assert "over 120 outcomes of flight_delay v2 at endpoint delay in the last 7d" in measured.detail
    too_few = live_auc(outcome_lake, check("delay", min_outcomes=500), now)
    assert too_few.value is None and "120 outcomes" in too_few.detail and "fewer than 500" in too_few.detail


def test_live_auc_without_predictions_or_outcomes_is_unknown(workspace):
    measured = live_auc(workspace, check("delay"), NOW)
    assert measured.value is None and measured.unit == "auc"
