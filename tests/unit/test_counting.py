"""Counting the events of a body from its bytes (lakebook.ingest.counting) gives what
decoding it would, and refuses a body over the limit before anything is decoded."""

from __future__ import annotations

import random

import orjson
import pytest

from lakebook.errors import PayloadTooLarge
from lakebook.ingest import counting
from lakebook.ingest.counting import check_event_count, json_array_items, ndjson_lines

TRICKY = ["a,b", "q\"[x", "{]", "back\\", "\\\"", "\\\\\"", "", "é,🛫", "\n"]


def value(rng: random.Random, depth: int = 0):
    pick = rng.random()
    if depth > 3 or pick < 0.35:
        return rng.choice([1, -2.5, None, True, *TRICKY])
    if pick < 0.65:
        return [value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(["a", "b,", "c\"}", "d\\"]): value(rng, depth + 1) for _ in range(rng.randint(0, 3))}


@pytest.mark.parametrize("slice_bytes", [1 << 20, 61], ids=["one-slice", "many-slices"])
def test_counts_equal_what_decoding_finds(monkeypatch, slice_bytes):
    monkeypatch.setattr(counting, "_SLICE", slice_bytes)
    rng = random.Random(20)
    for n in range(200):
        items = [value(rng) for _ in range(rng.randint(1, 25))]
        body = orjson.dumps(items, option=orjson.OPT_INDENT_2 if n % 2 else 0)
        assert json_array_items(b"  " + body + b"\n") == len(orjson.loads(body))
        lines = b"\n".join(orjson.dumps(i) if rng.random() < 0.8 else rng.choice([b"", b" \t", b"\r"]) for i in items)
        assert ndjson_lines(lines) == sum(1 for line in lines.split(b"\n") if line.strip())


def test_a_body_over_the_limit_is_refused_and_one_under_it_is_not_counted():
    body = b"[" + b",".join([b"{}"] * 5000) + b"]"
    with pytest.raises(PayloadTooLarge, match="holds 5,000 events, over the limit of 4,999 events per request"):
        check_event_count(body, b",", json_array_items, 4999)
    check_event_count(body, b",", json_array_items, 5000)
    check_event_count(body, b",", lambda b: pytest.fail("counted"), 5000)  # 4,999 commas: at most 5,000 events
    check_event_count(b"{}\n" * 10, b"\n", ndjson_lines, None)
