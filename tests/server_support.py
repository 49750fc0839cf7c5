"""Servers the integration and scale tiers start for real, each on a free port of 127.0.0.1 in a
folder of its own: PostgreSQL (the catalog's twin) and Redis (the online store's and the bus's)
from Debian's binaries (`make sysdeps` installs both packages), and an MLflow tracking server
from the mlflow wheel."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from lakebook.services import free_port


def _postgres_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        pytest.fail("PostgreSQL is not installed: `make sysdeps` installs Debian's postgresql package")
    return found[-1].parent


def _as_postgres(argv: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as the postgres user."""
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@contextmanager
def postgres_server() -> Iterator[tuple[str, int]]:
    """A PostgreSQL server: (host, port). Trust auth on 127.0.0.1 only; stopped and removed after."""
    bindir = _postgres_bin()
    # not under pytest's folder: that one is private to this user, and the server runs as postgres
    base = Path(tempfile.mkdtemp(prefix="lakebook-test-postgres-"))
    data, sockets = base / "data", base / "sockets"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(sockets, "postgres")
    subprocess.run(_as_postgres([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                                 "--no-sync", "-E", "UTF8"]), check=True, capture_output=True, timeout=120)
    port = free_port()
    log = base / "server.log"
    subprocess.run(_as_postgres([
        str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "start",
        "-o", f"-h 127.0.0.1 -p {port} -k {sockets} -c fsync=off",
    ]), check=True, capture_output=True, timeout=90)
    try:
        yield "127.0.0.1", port
    finally:
        subprocess.run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
                       capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def create_database(host: str, port: int, name: str) -> str:
    """A fresh database ``name`` on the server (dropped first if it exists): its SQLAlchemy URL."""
    import psycopg

    with psycopg.connect(host=host, port=port, user="postgres", dbname="postgres", autocommit=True) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}"')
        con.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://postgres@{host}:{port}/{name}"


@contextmanager
def redis_server(folder: Path) -> Iterator[int]:
    """A real redis-server on a free port of 127.0.0.1, no persistence: its port."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is installed by `make test` (Debian package redis-server)"
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


@dataclass
class MlflowServer:
    """A running ``mlflow server``: its tracking URI and log."""

    uri: str
    process: subprocess.Popen
    log: Path


@contextmanager
def mlflow_server(folder: Path, backend_store_uri: str, artifacts_destination: str,
                  env: dict[str, str] | None = None, timeout_s: float = 120) -> Iterator[MlflowServer]:
    """``mlflow server`` on a free port of 127.0.0.1 with one worker, its runs and registry in
    ``backend_store_uri``, the artifacts it proxies (``mlflow-artifacts:/``) kept in
    ``artifacts_destination`` (e.g. ``s3://bucket/mlflow``, with MLFLOW_S3_ENDPOINT_URL and
    AWS_* in ``env``): clients need no access to the artifact store."""
    port = free_port()
    log = folder / "mlflow-server.log"
    command = [str(Path(sys.executable).with_name("mlflow")), "server", "--backend-store-uri", backend_store_uri,
               "--artifacts-destination", artifacts_destination, "--serve-artifacts", "--host", "127.0.0.1",
               "--port", str(port), "--workers", "1"]
    environment = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
                   **(env or {})}
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=environment,
                                   start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            assert process.poll() is None, f"mlflow server exited: {log.read_text()[-3000:]}"
            try:
                if httpx.get(uri + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"mlflow server did not answer in {timeout_s} s: {log.read_text()[-3000:]}"
            time.sleep(0.5)
        yield MlflowServer(uri, process, log)
    finally:
        _stop_group(process)


def _stop_group(process: subprocess.Popen, timeout_s: float = 20) -> None:
    """SIGTERM the process's group (a server and its workers), SIGKILL what is left after ``timeout_s``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout_s)
            return
        except subprocess.TimeoutExpired:
            continue
