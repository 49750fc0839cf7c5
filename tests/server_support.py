"""Servers the integration and scale tiers start for real from Debian's binaries, each on a
free port of 127.0.0.1 in a folder of its own: PostgreSQL (the catalog's twin) and Redis (the
online store's and the bus's). `make sysdeps` installs both packages."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

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
