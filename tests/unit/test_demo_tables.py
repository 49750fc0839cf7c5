"""The demo's tables fit the console they are printed on (a pipe is 80 columns, a wide
terminal more): long text wraps within its column, other values keep one line each."""

from __future__ import annotations

import io
from datetime import datetime, timezone

import pytest
from rich.console import Console

from lakebook.demo import BAD_FLIGHTS, TRAINING_SAMPLE, print_rows

REASONS = ["month: 13 is above the maximum 12",
           "origin: 'BOS' is not one of EWR, JFK, LGA; sched_dep_at: timestamp needs a UTC offset, "
           "e.g. 2013-01-01T05:00:00Z (got '2013-01-01 10:15')",
           "invalid JSON: unexpected end of data: line 1 column 37 (char 36)"]
QUARANTINED = [{"index": i, "reasons": reason, "raw": raw.decode()[:40]}
               for i, (reason, raw) in enumerate(zip(REASONS, BAD_FLIGHTS))]
SAMPLE = [{"event_timestamp": datetime(2013, 1, 19, 13, 51, tzinfo=timezone.utc), "origin": "EWR", "carrier": "UA",
           "avg_dep_delay_3h": 2.4, "visib_km": 16.09, "arr_late": False, "avg_dep_delay_7d": 7.229941,
           "plane_age_years": float("nan")}]


def printed(width: int, rows, **options) -> list[str]:
    console = Console(width=width, file=io.StringIO(), color_system=None)
    print_rows(console, rows, **options)
    return console.file.getvalue().splitlines()


def words(lines: list[str]) -> list[str]:
    return " ".join(lines).split()


@pytest.mark.parametrize("width", [80, 120])
def test_the_quarantine_table_wraps_its_reasons_within_their_column(width):
    lines = printed(width, QUARANTINED, wrap=("reasons", "raw"))
    assert max(map(len, lines)) <= width
    assert lines[0].split() == ["index", "reasons", "raw"]
    starts = [n for n, line in enumerate(lines) if line[:1].isdigit()]
    assert [lines[n].split()[0] for n in starts] == ["0", "1", "2"]  # each event starts a row of its own
    reason_column = lines[0].index("reasons")
    for n, reason in zip(starts, REASONS):
        block = lines[n:(starts + [len(lines)])[starts.index(n) + 1]]
        assert not any(line[:reason_column].strip() for line in block[1:])  # nothing spills under the index
        assert all(word in words(block) for word in reason.split()[:4])


def test_a_wide_sample_shows_the_columns_that_fit_and_names_the_others():
    narrow, wide = printed(80, SAMPLE), printed(120, SAMPLE)
    assert max(map(len, narrow)) <= 80 and max(map(len, wide)) <= 120
    assert narrow[0].split() == TRAINING_SAMPLE[:6] and wide[0].split() == TRAINING_SAMPLE
    assert narrow[-1] == "(not shown at this width: avg_dep_delay_7d, plane_age_years)"
    assert wide[2].split() == ["2013-01-19", "13:51", "EWR", "UA", "2.40", "16.09", "False", "7.23"]
