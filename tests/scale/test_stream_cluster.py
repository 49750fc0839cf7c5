"""``stream.ray_address``: the stream service (``lakebook stream start``, a child process) on a
real Ray cluster — a head and a worker node started with ``ray start`` on loopback, token
authentication on — keeps the online store fresh from actors running on the cluster's nodes,
whether it joins the cluster at its GCS address (``host:port``) or through Ray Client
(``ray://host:port``). The cluster is started once for the module: starting it is the slow part.

The nodes are stopped through their process groups, never with ``ray stop``, which would end
every Ray process on the machine (the test session's runtime and anyone else's). Every process
of the cluster carries a marker in its environment, so the test can tell its processes from
any other Ray's and check none is left. (``ray start`` registers a node given
``--node-ip-address 127.0.0.1`` under the machine's own address; the stream reaches the head
at 127.0.0.1.)"""

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
from ray_support import processes_with_env
from stream_support import synthetic_flights, synthetic_weather
from test_stream import DELAYS, LATER, STREAM_CONFIG, check, online, wait_until
from test_stream_service import lakebook
from lakebook import features
from lakebook.errors import LakebookError
from lakebook.ingest import flush_ingest_log_to_raw
from lakebook.services import free_port, start_service
from lakebook.stream.ray_node import ray_start_command
from lakebook.workspace import Workspace

pytestmark = pytest.mark.integration

RAY = Path(sys.executable).with_name("ray")
MARKER = "LBTEST_RAY_CLUSTER"  # not LAKEBOOK_…: lakebook reads those as settings
ACTOR_CLASSES = {"SourceReader", "ViewOperator", "SinkActor"}


def marked_processes(marker: str) -> dict[int, str]:
    """The live processes of the cluster marked ``marker``, with their command lines."""
    return processes_with_env(MARKER, marker)


@dataclass
class RayCluster:
    """Ray nodes this test started, each ``ray start --block`` in a session of its own."""

    port: int
    client_port: int
    token: str
    marker: str
    temp_dir: Path
    nodes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def client_address(self) -> str:
        return f"ray://127.0.0.1:{self.client_port}"

    def environment(self, **extra: str) -> dict[str, str]:
        """This process's environment without its own Ray settings, with the cluster's token."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        return {**env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token, **extra}

    def start_node(self, log_path: Path, *args: str, attempts: int = 5) -> None:
        """Start a node and wait until the head counts it alive. On a loaded machine a node's
        start can time out inside Ray (its raylet waits for agents that start late) and the
        node exits: it is started again, up to ``attempts`` times."""
        for _ in range(attempts):
            node = self._spawn(log_path, *args)
            if self._joined(node, len(self.nodes)):
                return
            self._stop_node(node)
            self.nodes.remove(node)
        raise AssertionError(f"a Ray node did not start in {attempts} attempts: {log_path.read_text()[-3000:]}")

    def _spawn(self, log_path: Path, *args: str) -> subprocess.Popen:
        command = ray_start_command(self.temp_dir, 1, *args)
        with open(log_path, "ab") as log:
            self.nodes.append(subprocess.Popen(command, env=self.environment(**{MARKER: self.marker}),
                                               stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                               start_new_session=True))
        return self.nodes[-1]

    def _joined(self, node: subprocess.Popen, expected: int, timeout_s: float = 120) -> bool:
        """Whether the head counts ``expected`` alive nodes before ``node`` exits or time runs out."""
        deadline = time.monotonic() + timeout_s
        while node.poll() is None and time.monotonic() < deadline:
            if self.alive_nodes() == expected:
                return True
            time.sleep(1)
        return False

    def alive_nodes(self) -> int:
        """How many nodes the head counts as alive (``ray status``; 0 while it does not answer)."""
        try:
            done = subprocess.run([str(RAY), "status", "--address", self.address], env=self.environment(),
                                  capture_output=True, text=True, timeout=30)
        except subprocess.TimeoutExpired:
            return 0
        active = done.stdout.partition("Active:")[2].partition("Pending:")[0]
        return len(re.findall(r"^\s*1 node_[0-9a-f]+", active, re.M))

    def stop(self) -> None:
        for node in reversed(self.nodes):
            self._stop_node(node)

    @staticmethod
    def _stop_node(node: subprocess.Popen, timeout_s: float = 30) -> None:
        """SIGTERM the node's process group, SIGKILL what is left of it after ``timeout_s``."""
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


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """A head (its Ray Client server on ``client_port``) and a worker node of one CPU each on
    127.0.0.1, token auth, shared by the module's tests; stopped after them, and then none of
    its processes may be left (any that is, is killed)."""
    temp_dir = Path(tempfile.mkdtemp(prefix="lbrc", dir="/tmp"))  # Ray's socket paths must stay short
    logs = tmp_path_factory.mktemp("ray-logs")
    cluster = RayCluster(free_port(), free_port(), secrets.token_hex(32), secrets.token_hex(8), temp_dir)
    try:
        cluster.start_node(logs / "ray-head.log", "--head", "--port", str(cluster.port),
                           "--ray-client-server-port", str(cluster.client_port), "--include-dashboard", "false")
        cluster.start_node(logs / "ray-worker.log", "--address", cluster.address)
        yield cluster
        cluster.stop()
        assert cluster.leftovers() == {}
    finally:
        cluster.stop()
        for pid in cluster.leftovers(timeout_s=5):  # not to leave them running if the test failed
            os.kill(pid, signal.SIGKILL)
        for session in temp_dir.glob("session_2*"):  # the nodes' own logs, kept with the test's
            shutil.copytree(session / "logs", logs / session.name, ignore_dangling_symlinks=True, dirs_exist_ok=True)
        shutil.rmtree(temp_dir, ignore_errors=True)


def actors_on(cluster: RayCluster) -> tuple[dict[str, int], set[int]]:
    """The stream's actor classes running in the cluster's processes (by class), and the nodes
    they run on (the process group of the raylet that started each: its ``ray start``)."""
    found, nodes = {}, set()
    for pid, command in marked_processes(cluster.marker).items():
        name = command.split()[0].removeprefix("ray::").split(".")[0] if command.startswith("ray::") else ""
        if name in ACTOR_CLASSES:
            found[name] = found.get(name, 0) + 1
            nodes.add(os.getpgid(int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])))
    return found, nodes


@pytest.mark.parametrize("through", ["gcs", "ray_client"])
def test_the_stream_runs_on_a_two_node_ray_cluster_and_keeps_the_online_store_fresh(flights_ws, ray_cluster, through):
    address = ray_cluster.client_address if through == "ray_client" else ray_cluster.address
    config = flights_ws.root / "lakebook.yaml"
    config.write_text(config.read_text() + STREAM_CONFIG + f"  ray_address: {address}\n")
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
        actors, nodes = actors_on(ray_cluster)
        assert actors == {"SourceReader": 2, "ViewOperator": 2, "SinkActor": 1}
        assert nodes and nodes <= {node.pid for node in ray_cluster.nodes}
        assert f"(group speed, {address}; views" in stream.log_text()
        assert not list(ws.ray_dir.glob("session_*"))
        assert "stopped" in lakebook(ws, "stream", "stop")
        assert stream.process.wait(60) == 0
    finally:
        stream.stop()
    wait_until(lambda: actors_on(ray_cluster)[0] == {}, timeout_s=60, what="the stream's actors ending with it")
    flush_ingest_log_to_raw(ws)
    code, out = check(ws, "--since", "12h")
    assert code == 0 and "mismatches: speed 0, online 0" in out, out


@pytest.mark.parametrize("through", ["gcs", "ray_client"])
def test_another_token_is_refused_with_an_error_naming_the_address_and_the_token(workspace, ray_cluster, through):
    """The cluster checks the token on both paths; the stream says what to check (Ray Client
    alone says only that its connection timed out)."""
    address = ray_cluster.client_address if through == "ray_client" else ray_cluster.address
    config = workspace.root / "lakebook.yaml"
    config.write_text(config.read_text() + f"stream:\n  ray_address: {address}\n")
    other = secrets.token_hex(32)
    env = ray_cluster.environment(RAY_AUTH_TOKEN=other, RAY_CLIENT_INITIAL_CONNECTION_TIMEOUT_S="1")
    with pytest.raises(LakebookError) as refused:
        start_service(Workspace.load(workspace.root), "stream", env=env)
    shown = refused.value.message
    assert "exited with 2" in shown and f"error: cannot connect to the Ray cluster at {address}" in shown, shown
    assert "hint: " in shown and "RAY_AUTH_TOKEN" in shown and "host:6379" in shown and other not in shown, shown


# -- the model endpoints on the cluster (serving.ray_address) ------------------------------------
CHAMPION = "models:/flight_delay@champion"
SERVE_TOKEN = "cluster-serve-token-3c9e"


def serving_config(ws, address: str, port: int) -> Workspace:
    """``ws`` serving the champion as ``delay`` on port ``port`` of the cluster at ``address``, its
    token in a tokens file (the replicas, on the cluster's nodes, read it there)."""
    tokens = ws.root.parent / "serving-tokens.yaml"
    tokens.write_text(f"delay: {SERVE_TOKEN}\n")
    config = ws.root / "lakebook.yaml"
    config.write_text(config.read_text() + f"serving:\n  ray_address: {address}\n  port: {port}\n"
                      f"  tokens_file: {tokens}\n  endpoints:\n    delay: {{model: '{CHAMPION}'}}\n")
    return Workspace.load(ws.root)


def replicas_on(cluster: RayCluster, endpoint: str) -> set[int]:
    return {pid for pid, command in marked_processes(cluster.marker).items()
            if command.startswith(f"ray::ServeReplica:{endpoint}:")}


def test_the_endpoints_run_on_the_cluster_answer_on_the_configured_port_and_leave_it_running(model_ws, ray_cluster):
    """Serve's proxy runs on the head only (serving.proxy_location: HeadOnly, the default): the
    two nodes share a machine, and a proxy on each could not both take the configured port."""
    from test_predictor import flights as request_rows

    port = free_port()
    ws = serving_config(model_ws, ray_cluster.address, port)
    service = start_service(ws, "serve", env=ray_cluster.environment())
    try:
        answer = httpx.post(f"http://127.0.0.1:{port}/delay/predict", json=request_rows(ws, 1)[0], timeout=60,
                            headers={"Authorization": f"Bearer {SERVE_TOKEN}"})
        assert answer.status_code == 200 and answer.json()["version"] == "1", answer.text
        assert replicas_on(ray_cluster, "delay")  # the replica is a process of the cluster's nodes
        assert f"({ray_cluster.address})" in service.log_text()
        assert not list(ws.ray_dir.rglob("session_2*"))  # no Ray runtime of the service's own
        assert "the endpoints run on the Ray cluster at" in lakebook(ws, "serve", "logs", "delay")
        assert service.stop() == 0
    finally:
        service.stop()
    wait_until(lambda: not replicas_on(ray_cluster, "delay"), timeout_s=60, what="the endpoint's deletion")
    assert ray_cluster.alive_nodes() == 2
    gone = httpx.post(f"http://127.0.0.1:{port}/delay/predict", json={}, timeout=10)
    assert gone.status_code == 404  # Serve's proxy stays on the cluster for its other applications; ours is gone
    shut_serve_down(ray_cluster)


def shut_serve_down(cluster) -> None:
    """Serve's controller and proxy are detached actors: they outlive the drivers, and a stopped
    node's workers of theirs were seen still running 20 s later. The test leaves the cluster as
    it found it: without Serve."""
    script = f"import ray; from ray import serve; ray.init(address={cluster.address!r}); serve.shutdown()"
    subprocess.run([sys.executable, "-c", script], env=cluster.environment(), check=True, timeout=120,
                   capture_output=True)


def test_the_endpoints_refuse_another_token_with_an_error_naming_the_address_and_the_token(workspace, ray_cluster):
    config = workspace.root / "lakebook.yaml"
    config.write_text(config.read_text() + f"serving:\n  ray_address: {ray_cluster.address}\n")
    other = secrets.token_hex(32)
    with pytest.raises(LakebookError) as refused:
        start_service(Workspace.load(workspace.root), "serve", env=ray_cluster.environment(RAY_AUTH_TOKEN=other))
    shown = refused.value.message
    assert "exited with 2" in shown and f"error: cannot connect to the Ray cluster at {ray_cluster.address}" in shown
    assert "hint: " in shown and "RAY_AUTH_TOKEN" in shown and "host:6379" in shown and other not in shown, shown
