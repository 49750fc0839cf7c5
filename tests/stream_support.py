"""Helpers for the speed layer's tests: a workspace with the example transforms, seeds and
feature declarations, and synthetic flights whose delays, cancellations and order vary."""

from __future__ import annotations

import random
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
START = datetime(2013, 3, 1, tzinfo=timezone.utc)


def with_feature_repo(workspace, seeds: bool = True):
    """The example's transforms, seeds and feature repository in ``workspace`` (seeds loaded)."""
    for folder in ("transforms", "seeds", "feature_repo"):
        if not (workspace.root / folder).exists():
            shutil.copytree(REPO / folder, workspace.root / folder)
    if seeds:
        from lakebook.transform import load_seeds

        load_seeds(workspace)
    return workspace


def synthetic_flights(n: int, seed: int = 7, start: datetime = START, hours: int = 40) -> list[dict]:
    """``n`` flights events over ``hours`` hours: delays from -20 to 200 minutes, 5% cancelled."""
    rnd = random.Random(seed)
    events = []
    for i in range(n):
        at = start + timedelta(minutes=rnd.randrange(0, 60 * hours))
        cancelled = rnd.random() < 0.05
        events.append({
            "year": at.year, "month": at.month, "day": at.day, "sched_dep_time": at.hour * 100 + at.minute,
            "dep_time": None if cancelled else (at.hour * 100 + at.minute) % 2400,
            "dep_delay": None if cancelled else float(rnd.randrange(-20, 200)),
            "carrier": rnd.choice(["UA", "AA", "B6", "DL"]), "flight": i % 9999 + 1,
            "origin": rnd.choice(["EWR", "JFK", "LGA"]), "dest": "ORD",
            "time_hour": at.replace(minute=0).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "sched_dep_at": at.strftime("%Y-%m-%dT%H:%M:%SZ")})
    return events


def synthetic_weather(n: int, seed: int = 7, start: datetime = START) -> list[dict]:
    rnd = random.Random(seed)
    return [{"origin": ("EWR", "JFK", "LGA")[i % 3], "time_hour": (start + timedelta(hours=i // 3)).strftime("%Y-%m-%dT%H:%M:%SZ"),
             "temp": float(rnd.randrange(10, 90)), "humid": rnd.random() * 100, "wind_speed": float(rnd.randrange(0, 30)),
             "precip": 0.0, "visib": float(rnd.randrange(1, 11))} for i in range(n)]


def events_table(workspace, source: str, events: list[dict]):
    """The events as the bus hands them over: the contract's columns, ``_event_id``, ``_ingested_at``."""
    result = workspace.contract(source).validate(events)
    assert not result.rejected, result.rejected[:3]
    return result.accepted


def micro_batches(table, size: int, seed: int = 1):
    """The table's rows shuffled, in batches of ``size``."""
    order = list(range(table.num_rows))
    random.Random(seed).shuffle(order)
    shuffled = table.take(order)
    return [shuffled.slice(lo, size) for lo in range(0, shuffled.num_rows, size)]


def latest_revisions(speed_tables: list):
    """The last revision of every (keys, event_timestamp) row, as sorted Python rows."""
    revisions = {}
    for table in speed_tables:
        for row in table.drop_columns([c for c in table.column_names if c.startswith("_")]).to_pylist():
            revisions[(row["origin"], row["event_timestamp"])] = row
    return sorted(revisions.values(), key=lambda r: (r["origin"], r["event_timestamp"])) if revisions else []


def sorted_rows(table) -> list[dict]:
    return sorted(table.to_pylist(), key=lambda r: (r["origin"], r["event_timestamp"]))
