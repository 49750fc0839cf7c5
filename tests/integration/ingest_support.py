"""Helpers for the ingest integration tests: a real ``lakebook ingest serve`` child process,
lake readers and small HTTP/Prometheus utilities. No mocks: everything here talks to the
real server over loopback HTTP or reads the real Parquet files."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from events import metric, ndjson, parse_metrics  # noqa: F401 - the ingest tests import them from here
from lakebook.errors import LakebookError
from lakebook.services import Launch, ServiceProcess, free_port, service

NDJSON = {"content-type": "application/x-ndjson"}
JSON = {"content-type": "application/json"}


class IngestServer(ServiceProcess):
    """The ingest service (``lakebook ingest serve``) of the workspace at ``root``, started
    through the service model on a free loopback port, its output in a log file beside it."""

    def __init__(self, root: Path, *, flush_interval_s: float = 5.0, env: dict | None = None,
                 port: int | None = None, log_path: Path | None = None):
        self.root = Path(root)
        port = port or free_port()
        super().__init__(load_workspace(self.root), service("ingest"),
                         Launch(port, options={"flush_interval_s": flush_interval_s}),
                         log_path=log_path or self.root.parent / f"ingest-server-{port}.log", env=env)

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=kwargs.pop("timeout", 30), **kwargs)


def start_ingest_server(root: Path, attempts: int = 3, **kwargs) -> IngestServer:
    """Start and wait until /health answers; a port taken between choosing and binding it
    (another process won the race) is retried on a new port."""
    for attempt in range(attempts):
        server = IngestServer(root, **kwargs).start()
        try:
            server.wait_ready()
            return server
        except LakebookError:
            server.kill()
            if attempt == attempts - 1 or "address already in use" not in server.log_text().lower():
                raise
            kwargs.pop("port", None)
    raise AssertionError("unreachable")


# -- lake ------------------------------------------------------------------------------------
REPO = Path(__file__).resolve().parents[2]


def make_workspace(root: Path, config: str = "name: test\n") -> Path:
    """tests/conftest.py's make_workspace, for module-scoped fixtures (which cannot use the
    function-scoped ``workspace_dir``). It cannot be imported from there by name: with two
    conftest.py files, ``import conftest`` finds whichever pytest loaded last."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "lakebook.yaml").write_text(config)
    shutil.copytree(REPO / "contracts", root / "contracts", ignore=shutil.ignore_patterns("airport_status.yaml"))
    return root


def load_workspace(root: Path):
    from lakebook.workspace import Workspace

    return Workspace.load(root)


def flush(root: Path):
    """Flush the ingest log to the lake from this (test) process; file-locked against the server."""
    from lakebook.ingest import flush_ingest_log_to_raw

    return flush_ingest_log_to_raw(load_workspace(root))


def read_lake(root: Path, zone: str, source: str, columns: list[str] | None = None) -> pa.Table | None:
    """Every row of a lake table, read with pyarrow.dataset (hive ``date=`` partitions; files
    starting with '.' or '_', such as half-written temporaries, are ignored as by any reader)."""
    folder = load_workspace(root).lake.table_dir(zone, source)
    if not folder.is_dir() or not any(folder.glob("*/*.parquet")):
        return None
    return ds.dataset(folder, format="parquet", partitioning="hive").to_table(columns=columns)


def lake_ids(root: Path, source: str = "flights") -> Counter:
    table = read_lake(root, "raw", source, columns=["_event_id"])
    return Counter() if table is None else Counter(table.column("_event_id").to_pylist())


def event_ids(root: Path, events: list, source: str = "flights") -> list[str]:
    """The ids the contract gives these (valid) events, computed here, not by the server."""
    result = load_workspace(root).contract(source).validate(events)
    assert not result.rejected, f"test bug: events meant to be valid were rejected: {result.rejected[:3]}"
    return result.accepted.column("_event_id").to_pylist()


@pytest.fixture
def ingest_server():
    """A factory: ``ingest_server(workspace_dir, flush_interval_s=..., env=...)`` starts a real
    ``lakebook ingest serve`` and waits for it; every server it started is killed afterwards.
    (Imported by the test modules, not put in a conftest.py: ``tests/conftest.py`` is imported
    as ``conftest`` by other tests, and a second conftest.py here would shadow it.)"""
    started: list[IngestServer] = []

    def start(root, **kwargs) -> IngestServer:
        server = start_ingest_server(root, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.kill()
