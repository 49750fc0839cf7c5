"""``stream.ray_address``: the stream service (``lakebook stream start``, a child process) on a
real Ray cluster — a head and a worker node started with ``ray start`` on loopback, token
authentication on — keeps the online store fresh from actors running on the cluster's nodes.

The nodes are stopped through their process groups, never with ``ray stop``, which would end
every Ray process on the machine (the test session's runtime and anyone else's). Every process
of the cluster carries a marker in its environment, so the test can tell its processes from
any other Ray's and check none is left."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from events import log_events
from stream_support import synthetic_flights, synthetic_weather
from test_stream import DELAYS, LATER, STREAM_CONFIG, check, online, wait_until
from test_stream_service import lakebook
from lakebook import features
from lakebook.ingest import flush_ingest_log_to_raw
from lakebook.services import free_port, start_service
from lakebook.workspace import Workspace

pytestmark = pytest.mark.integration

RAY = Path(sys.executable).with_name("ray")
MARKER = "LAKEBOOK_TEST_RAY_CLUSTER"
ACTOR_CLASSES = {"SourceReader", "ViewOperator", "SinkActor"}
NODE_PORTS = ("--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
              "--dashboard-agent-grpc-port", "--runtime-env-agent-port", "--metrics-export-port")


def marked_processes(marker: str) -> dict[int, str]:
    """The live processes whose environment holds ``MARKER=marker``, with their command lines."""
    found, wanted = {}, f"{MARKER}={marker}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if wanted in (entry / "environ").read_bytes().split(b"\0"):
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # ended meanwhile, or a kernel thread
            continue
    return found


@dataclass
class RayCluster:
    """Ray nodes this test started, each ``ray start --block`` in a session of its own."""

    port: int
    token: str
    marker: str
    temp_dir: Path
    nodes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def environment(self, **extra: str) -> dict[str, str]:
        """This process's environment without its own Ray settings, with the cluster's token."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        return {**env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token, **extra}

    def start_node(self, log_path: Path, *args: str) -> None:
        ports = [str(p) for name in NODE_PORTS for p in (name, free_port())]
        command = [str(RAY), "start", "--block", "--node-ip-address", "127.0.0.1", "--num-cpus", "1",
                   "--temp-dir", str(self.temp_dir), "--disable-usage-stats", *ports, *args]
        with open(log_path, "ab") as log:
            self.nodes.append(subprocess.Popen(command, env=self.environment(**{MARKER: self.marker}),
                                               stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                               start_new_session=True))

    def alive_nodes(self) -> int:
        """How many nodes the head counts as alive (``ray status``)."""
        done = subprocess.run([str(RAY), "status", "--address", self.address], env=self.environment(),
                              capture_output=True, text=True, timeout=60)
        active = done.stdout.partition("Active:")[2].partition("Pending:")[0]
        return len(re.findall(r"^\s*1 node_[0-9a-f]+", active, re.M))

    def stop(self, timeout_s: float = 30) -> None:
        """SIGTERM each node's process group, SIGKILL what is left of it after ``timeout_s``."""
        for node in reversed(self.nodes):
            _signal_group(node.pid, signal.SIGTERM)
            try:
                node.wait(timeout_s)
            except subprocess.TimeoutExpired:
                pass
            _signal_group(node.pid, signal.SIGKILL)
            node.wait(10)

    def leftovers(self, timeout_s: float = 20) -> dict[int, str]:
        """The cluster's processes still running ``timeout_s`` after the stop."""
        deadline = time.monotonic() + timeout_s
        while (left := marked_processes(self.marker)) and time.monotonic() < deadline:
            time.sleep(0.2)
        return left


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


@pytest.fixture
def ray_cluster(tmp_path):
    """A head and a worker node of one CPU each on 127.0.0.1, token auth; stopped (and every
    process of theirs killed) after the test, whatever happened."""
    temp_dir = Path(tempfile.mkdtemp(prefix="lbrc", dir="/tmp"))  # Ray's socket paths must stay short
    cluster = RayCluster(free_port(), secrets.token_hex(32), secrets.token_hex(8), temp_dir)
    try:
        cluster.start_node(tmp_path / "ray-head.log", "--head", "--port", str(cluster.port),
                           "--ray-client-server-port", str(free_port()), "--include-dashboard", "false")
        wait_until(lambda: cluster.alive_nodes() == 1, timeout_s=120, what="the Ray head answering")
        cluster.start_node(tmp_path / "ray-worker.log", "--address", cluster.address)
        wait_until(lambda: cluster.alive_nodes() == 2, timeout_s=120, what="the worker node joining the head")
        yield cluster
    finally:
        cluster.stop()
        for pid in cluster.leftovers(timeout_s=5):  # not to leave them running if the test failed
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(temp_dir, ignore_errors=True)


def actors_on(cluster: RayCluster) -> dict[str, int]:
    """The stream's actor classes whose processes belong to the cluster's nodes, by class."""
    found: dict[str, int] = {}
    for command in marked_processes(cluster.marker).values():
        name = command.split()[0].removeprefix("ray::").split(".")[0] if command.startswith("ray::") else ""
        if name in ACTOR_CLASSES:
            found[name] = found.get(name, 0) + 1
    return found


def test_the_stream_runs_on_a_two_node_ray_cluster_and_keeps_the_online_store_fresh(flights_ws, ray_cluster):
    config = flights_ws.root / "lakebook.yaml"
    config.write_text(config.read_text() + STREAM_CONFIG + f"  ray_address: {ray_cluster.address}\n")
    ws = Workspace.load(flights_ws.root)
    features.apply(ws)
    stream = start_service(ws, "stream", env=ray_cluster.environment())
    try:
        status = lambda: httpx.get(stream.base_url + "/status", timeout=10).json()  # noqa: E731
        log_events(ws, "flights", synthetic_flights(600, seed=21, start=LATER))
        log_events(ws, "weather", synthetic_weather(30, seed=21, start=LATER))
        wait_until(lambda: status()["sources"]["flights"]["events"] == 600
                   and all(s["lag"] == 0 for s in status()["sources"].values()), what="the stream reading every event")
        shown = json.loads(lakebook(ws, "stream", "status", "--json"))
        assert shown["running"] and shown["views"]["origin_delays"]["pushes"] > 0
        assert all(s["failures"] == 0 for s in shown["sources"].values()), shown
        for origin in ("EWR", "JFK", "LGA"):  # nothing was materialized: these values are the stream's
            assert online(ws, "origin_delays", DELAYS, origin)["departures_1h"] is not None, origin
        # the actors run in worker processes of the cluster's nodes, not in a Ray of the stream's own
        assert actors_on(ray_cluster) == {"SourceReader": 2, "ViewOperator": 2, "SinkActor": 1}
        assert f"(group speed, {ray_cluster.address}; views" in stream.log_text()
        assert not list(ws.ray_dir.glob("session_*"))
        assert "stopped" in lakebook(ws, "stream", "stop")
        assert stream.process.wait(60) == 0
    finally:
        stream.stop()
    flush_ingest_log_to_raw(ws)
    code, out = check(ws, "--since", "12h")
    assert code == 0 and "mismatches: speed 0, online 0" in out, out
    ray_cluster.stop()
    assert ray_cluster.leftovers() == {}
