"""The consistency check's comparison, on plain rows."""

from datetime import datetime, timezone

from lakebook.features.windows import parse_definitions
from lakebook.stream.check import compare_rows, newest_per_entity, same

DEFINITION = parse_definitions({"delays": {
    "input": "raw.flights", "keys": ["origin"], "event_time": "sched_dep_at", "bucket": "1h",
    "features": {"n": {"agg": "count", "window": "1h"}, "mean": {"agg": "mean", "of": "dep_delay", "window": "3h"}}},
}, "windows.yaml")["delays"]
T1, T2 = datetime(2013, 3, 1, 10, tzinfo=timezone.utc), datetime(2013, 3, 1, 11, tzinfo=timezone.utc)


def row(origin, at, n, mean):
    return {"origin": origin, "event_timestamp": at, "n": n, "mean": mean}


def test_numbers_agree_within_the_tolerance_and_null_only_with_null():
    assert same(1.0, 1.0 + 1e-12, 1e-9) and not same(1.0, 1.001, 1e-9) and same(1.0, 1.001, 1e-2)
    assert same(None, float("nan"), 1e-9) and not same(None, 0.0, 1e-9) and not same(0.0, None, 1e-9)
    assert same(0.0, 1e-12, 1e-9)  # absolute near zero
    assert same("JFK", "JFK", 0) and not same("JFK", "EWR", 0)


def test_rows_are_compared_by_entity_and_time_then_feature_by_feature():
    batch = [row("JFK", T1, 3.0, 10.0), row("JFK", T2, 1.0, 12.0), row("EWR", T1, 2.0, None)]
    speed = [row("JFK", T1, 3.0, 10.0 + 1e-13), row("JFK", T2, 2.0, 12.0), row("LGA", T1, 1.0, 1.0)]
    found = compare_rows(DEFINITION, batch, speed, "speed", 1e-9)
    assert [(m.entity, m.event_timestamp, m.feature, m.batch, m.other, m.problem) for m in found] == [
        ({"origin": "EWR"}, T1, None, True, False, "missing in the speed layer"),
        ({"origin": "JFK"}, T2, "n", 1.0, 2.0, "speed value differs"),
        ({"origin": "LGA"}, T1, None, False, True, "not in the batch recomputation"),
    ]


def test_the_online_store_is_compared_with_each_entitys_newest_row():
    batch = [row("JFK", T1, 3.0, 10.0), row("JFK", T2, 1.0, 12.0), row("EWR", T1, 2.0, None)]
    assert sorted(r["event_timestamp"] for r in newest_per_entity(DEFINITION, batch)) == [T1, T2]
