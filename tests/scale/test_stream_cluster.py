"""``stream.ray_address``: the stream service (``lakebook stream start``, a child process) on a
real Ray cluster — a head and a worker node started with ``ray start`` on loopback, token
authentication on — keeps the online store fresh from actors running on the cluster's nodes,
whether it joins the cluster at its GCS address (``host:port``) or through Ray Client
(``ray://host:port``). The cluster is started once for the module: starting it is the slow part (cluster_support.ray_cluster)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from cluster_support import RayCluster, marked_processes
from cluster_support import ray_cluster as start_ray_cluster
from events import log_events
from stream_support import synthetic_flights, synthetic_weather
from test_stream import DELAYS, LATER, STREAM_CONFIG, check, online, wait_until
from test_stream_service import lakebook
from lakebook import features
from lakebook.errors import LakebookError
from lakebook.ingest import flush_ingest_log_to_raw
from lakebook.services import free_port, start_service
from lakebook.workspace import Workspace

pytestmark = pytest.mark.integration

ACTOR_CLASSES = {"SourceReader", "ViewOperator", "SinkActor"}


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """A head and a worker node (cluster_support.ray_cluster), shared by the module's tests."""
    with start_ray_cluster(tmp_path_factory.mktemp("ray-logs")) as cluster:
        yield cluster


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
