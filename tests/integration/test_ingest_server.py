"""``lakebook ingest serve --host <an address of this machine>`` with no tokens: the real
command exits with the error and its hint (status 2), and nothing listens on that address."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from lakebook.services import free_port

pytestmark = pytest.mark.integration


def this_machines_address() -> str:
    import psutil

    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family == socket.AF_INET and not a.address.startswith("127."):
                return a.address
    pytest.fail("no non-loopback IPv4 address on this machine to try")


def accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.mark.parametrize("which", ["this machine's address", "every address"])
def test_serving_an_exposed_address_without_tokens_exits_with_the_error_and_binds_nothing(workspace_dir, which):
    host = this_machines_address() if which == "this machine's address" else "0.0.0.0"
    port = free_port()
    try:
        done = subprocess.run([sys.executable, "-m", "lakebook", "-w", str(workspace_dir), "ingest", "serve",
                               "--host", host, "--port", str(port)], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:  # it served instead of refusing (and was stopped by the timeout)
        pytest.fail(f"lakebook ingest serve --host {host} did not refuse")
    assert done.returncode == 2, done.stderr  # the exit status of every lakebook error
    assert f"error: refusing to serve ingest on {host} without tokens" in done.stderr
    assert "LAKEBOOK_INGEST__TOKENS" in done.stderr and "--insecure-dev" in done.stderr
    assert "listening" not in done.stderr and "Traceback" not in done.stderr
    assert not accepts(this_machines_address(), port) and not accepts("127.0.0.1", port)
