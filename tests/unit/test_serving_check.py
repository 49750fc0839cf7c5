"""The skew check's parts that need no model: its options, finding an endpoint's predictions in
the lake, and comparing the values a prediction used with offline ones."""

import json
from datetime import datetime, timezone

import pytest
from click.testing import CliRunner

from events import log_events
from lakebook.cli import cli
from lakebook.errors import BadRequest, NotFound
from lakebook.ingest import flush_ingest_log_to_raw
from lakebook.serving.check import FeatureSkew, check_serving_skew, compare_prediction, recent_predictions

AT = datetime(2013, 12, 3, 18, tzinfo=timezone.utc)


def event(i: int, endpoint: str = "delay", hour: int = 18, **changes) -> dict:
    return {"request_id": f"r{i}", "predicted_at": AT.replace(hour=hour).isoformat(), "endpoint": endpoint,
            "model": "flight_delay", "version": "1", "output": 0.2, "latency_ms": 3.0,
            "entity": json.dumps({"origin": "JFK", "carrier": "B6", "tailnum": f"N{i}"}), "inputs": "{}",
            "features": json.dumps({"origin_weather:temp_c": 4.0}), "feature_age_s": "{}",
            "missing_features": "[]", **changes}


def test_options_are_checked_before_anything_is_read(workspace):
    with pytest.raises(BadRequest, match="not a duration") as info:
        check_serving_skew(workspace, "delay", since="yesterday")
    assert info.value.hint == "e.g. --since 24h"
    with pytest.raises(BadRequest, match="--sample must be at least 1"):
        check_serving_skew(workspace, "delay", sample=0)
    result = CliRunner().invoke(cli, ["-w", str(workspace.root), "serve", "check", "delay", "--since", "1y"], obj={})
    assert result.exit_code != 0 and "not a duration" in str(result.exception)


def test_an_endpoint_without_predictions_is_named_with_those_that_have_some(workspace):
    with pytest.raises(NotFound, match="no predictions of endpoint 'delay'") as info:
        recent_predictions(workspace, "delay", 10, 3_600_000_000)
    assert "lakebook ingest flush" in info.value.hint
    log_events(workspace, "predictions", [event(1, endpoint="taxi")])
    flush_ingest_log_to_raw(workspace)
    with pytest.raises(NotFound) as info:
        recent_predictions(workspace, "delay", 10, 3_600_000_000)
    assert info.value.hint == "endpoints with predictions: taxi"


def test_the_sample_comes_from_the_window_before_the_newest_prediction(workspace):
    events = [event(i, hour=10 + i % 9) for i in range(40)] + [event(99, endpoint="taxi"), event(98, entity="{bad")]
    log_events(workspace, "predictions", events)
    flush_ingest_log_to_raw(workspace)
    found = recent_predictions(workspace, "delay", 5, 3 * 3_600_000_000)  # 15:00 to 18:00
    in_window = [e for e in events if e["endpoint"] == "delay" and e["predicted_at"] >= AT.replace(hour=15).isoformat()]
    assert [r["in_window"] for r in found] == [len(in_window)] * 5
    assert {r["request_id"] for r in found} <= {e["request_id"] for e in in_window}
    assert found == recent_predictions(workspace, "delay", 5, 3 * 3_600_000_000)  # the same sample again
    everything = recent_predictions(workspace, "delay", 100, 24 * 3_600_000_000)
    assert len(everything) == 41 and {r["request_id"]: r["entity"] for r in everything}["r98"] is None
    assert found[0]["features"] == {"origin_weather:temp_c": 4.0}


def test_each_feature_counts_its_comparisons_and_differences_with_examples():
    skews: dict[str, FeatureSkew] = {}
    row = {"request_id": "r1", "predicted_at": AT, "entity": {"origin": "JFK"},
           "features": {"v:a": 1.0, "v:b": 2.0, "v:c": None, "v:d": 5.0, "v:e": 7.0}}
    compare_prediction(row, {"v:a": 1.0 + 1e-12, "v:b": 2.5, "v:c": 3.0, "v:d": None, "v:e": 7.0}, 1e-9, skews)
    compare_prediction(row, {"v:a": 1.1, "v:b": 2.0, "v:c": None, "v:d": 5.0, "v:e": 7.0}, 0.2, skews)
    assert {n: (s.compared, s.differing) for n, s in skews.items()} == {
        "v:a": (2, 0), "v:b": (2, 1), "v:c": (2, 1), "v:d": (2, 1), "v:e": (2, 0)}
    assert [e["problem"] for n in ("v:b", "v:c", "v:d") for e in skews[n].examples] == [
        "values differ", "the online store had no value",
        "no offline value at that time (older than the view's TTL, or not computed yet)"]
    assert skews["v:b"].examples[0] | {"problem": None} == {
        "request_id": "r1", "predicted_at": AT, "entity": {"origin": "JFK"}, "served": 2.0, "offline": 2.5,
        "problem": None}
