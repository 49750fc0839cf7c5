"""The prediction recorder on a real SQLite ingest log: answers that arrive close together
share one append; no prediction is lost at a replica's close: what the ingest log refuses then
goes to the workspace's spill file (serving/spill.py), and the next recorder appends it to the
log before anything else. The log is made to refuse appends by putting a file that is not a
database where it was."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import stat
import time
from contextlib import contextmanager

import pytest

from lakebook.ingest import flush_ingest_log_to_raw
from lakebook.query import LakeSession
from lakebook.serving.predictor import PredictionRecorder
from lakebook.serving.spill import spill


def predictions(n: int, start: int = 0) -> list[dict]:
    """Prediction records as ``Predictor`` makes them."""
    return [{"request_id": f"req-{i:04d}", "predicted_at": "2026-01-02T03:04:05.000006Z", "endpoint": "delay",
             "model": "flight_delay", "version": "1", "output": 0.25, "latency_ms": 4.0,
             "entity": json.dumps({"origin": "JFK", "carrier": "B6", "tailnum": "N625JB"}),
             "inputs": json.dumps({"distance": 1069, "flight": i}), "features": "{}", "feature_age_s": "{}",
             "missing_features": "[]"} for i in range(start, start + n)]


def appends_to_the_log(ws) -> int:
    with sqlite3.connect(ws.ingest_log_path) as con:
        return con.execute("SELECT count(*) FROM batches WHERE source = 'predictions'").fetchone()[0]


def test_answers_arriving_within_the_gather_time_share_one_append(workspace):
    recorder = PredictionRecorder(workspace)
    for record in predictions(10):  # 90 ms apart in all, well inside GATHER_S
        recorder.add([record])
        time.sleep(0.01)
    recorder.close()
    assert recorder.written == 10 and appends_to_the_log(workspace) <= 2


@contextmanager
def refused_appends(ws):
    """The ingest log's file set aside and a file that is not a database in its place: every
    connection made meanwhile fails (a damaged log; a connection made before would still write
    to the file set aside). The log is put back afterwards."""
    path = ws.ingest_log_path
    aside = path.parent / "aside"
    aside.mkdir()
    for part in path.parent.glob(path.name + "*"):
        part.rename(aside / part.name)
    path.write_bytes(b"this is not a SQLite database\n" * 100)
    try:
        yield
    finally:
        path.unlink()
        for part in aside.iterdir():
            part.rename(path.parent / part.name)
        aside.rmdir()


def record_through_a_broken_log(ws, records: list[dict]) -> PredictionRecorder:
    recorder = PredictionRecorder(ws)
    with refused_appends(ws):
        recorder.add(records)
        recorder.close()
    return recorder


def request_ids_in_the_lake(ws) -> list[str]:
    flush_ingest_log_to_raw(ws)
    return [r["request_id"] for r in
            LakeSession(ws).query("SELECT request_id FROM raw.predictions ORDER BY request_id").table.to_pylist()]


def test_predictions_the_log_refuses_at_close_are_spilled_then_appended_once_by_the_next_recorder(workspace):
    records = predictions(5)
    spilled = workspace.serving_dir / "predictions.spill.jsonl"
    broken = record_through_a_broken_log(workspace, records)
    assert broken.written == 0 and broken.failure is not None
    assert [json.loads(line) for line in spilled.read_text().splitlines()] == records
    assert stat.S_IMODE(spilled.stat().st_mode) == 0o600

    PredictionRecorder(workspace).close()  # the next replica's recorder: the spill goes first
    assert not spilled.exists()
    PredictionRecorder(workspace).close()  # and only once
    assert request_ids_in_the_lake(workspace) == [r["request_id"] for r in records]
    assert workspace.predictions_spill_path == spilled


def test_a_line_cut_short_by_a_crash_is_skipped_with_a_warning_and_the_rest_appended(workspace, caplog):
    spilled = workspace.predictions_spill_path
    spill(spilled, predictions(2))
    with spilled.open("ab") as f:  # a writer that died mid-line
        f.write(json.dumps(predictions(1, start=2)[0]).encode()[:40])
    spill(spilled, predictions(1, start=3))  # the next writer starts on a line of its own
    with caplog.at_level(logging.WARNING, logger="lakebook.serving"):
        recorder = PredictionRecorder(workspace)
        recorder.close()
    assert recorder.unspilled == 3 and not spilled.exists()
    assert [r.getMessage() for r in caplog.records if "skipped line 3" in r.getMessage()]
    assert request_ids_in_the_lake(workspace) == ["req-0000", "req-0001", "req-0003"]


def test_a_spill_file_made_with_a_wider_mode_is_narrowed_to_the_owner(workspace):
    spilled = workspace.predictions_spill_path
    spilled.parent.mkdir(parents=True)
    spilled.touch(mode=0o644)
    os.chmod(spilled, 0o644)
    spill(spilled, predictions(1))
    assert stat.S_IMODE(spilled.stat().st_mode) == 0o600


@pytest.mark.parametrize("garbage", [b"[1, 2]\n", b"\n\n"])
def test_lines_that_are_not_records_are_never_appended(workspace, garbage):
    spilled = workspace.predictions_spill_path
    spilled.parent.mkdir(parents=True)
    spilled.write_bytes(garbage)
    recorder = PredictionRecorder(workspace)
    recorder.close()
    assert recorder.unspilled == 0 and not spilled.exists() and recorder.failure is None


def test_a_records_json_is_strict_json_even_for_a_value_that_is_not_a_number():
    from lakebook.serving.predictor import _json

    def refuse(constant):
        raise ValueError(constant)

    assert json.loads(_json({"v:f": float("nan"), "v:g": 1.5}), parse_constant=refuse) == {"v:f": None, "v:g": 1.5}
