"""`lakebook serve start` as the service model runs it, and the `lakebook serve` commands
against it; and `lakebook up`'s services with the stream beside the endpoints, sharing one Ray
runtime. In a module of its own, before any test starts the session's Ray runtime: the
service alone starts a local Ray runtime of its own, as it does under `lakebook up`."""

from __future__ import annotations

import json
import os
import shutil

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ray_support import processes_with_env
from serving_support import STAR_TOKEN, TOKEN
from test_serving_endpoints import client
from test_predictor import flights as request_rows
from test_stream import STREAM_CONFIG, wait_until
from lakebook.services import ServiceSet, free_port, start_service, status
from lakebook.up import up_launches
from lakebook.workspace import Workspace

pytestmark = pytest.mark.integration
CHAMPION = "models:/flight_delay@champion"

ENV_TOKEN = "env-token-5e6a0c"


def lakebook(ws, *args) -> str:
    from click.testing import CliRunner

    from lakebook.cli import cli

    result = CliRunner().invoke(cli, ["-w", str(ws.root), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def lakebook_error(ws, *args):
    from click.testing import CliRunner

    from lakebook.cli import cli
    from lakebook.errors import LakebookError

    result = CliRunner().invoke(cli, ["-w", str(ws.root), *args])
    assert isinstance(result.exception, LakebookError), result.output
    return result.exception


def test_lakebook_serve_commands_against_a_started_service(serving_template, tmp_path):
    """`lakebook serve start` as the service model runs it (its own local Ray, tokens from the
    environment and the tokens file); deploy, list, status, logs and delete; an ad hoc endpoint
    comes back after a restart; SIGTERM stops it with 0."""
    shutil.copytree(serving_template, tmp_path / "ws", symlinks=True)
    config = tmp_path / "ws" / "lakebook.yaml"
    config.write_text(config.read_text() + f"  endpoints:\n    delay: {{model: '{CHAMPION}'}}\n")
    ws = Workspace.load(tmp_path / "ws")
    port = free_port()
    env = {**os.environ, "LAKEBOOK_SERVING__PORT": str(port), "LAKEBOOK_SERVING__TOKENS": json.dumps({"*": [ENV_TOKEN]}),
           "LAKEBOOK_SERVING__ACCESS_LOG": "true"}  # off by default; on, `serve logs` shows each request
    proxy = f"http://127.0.0.1:{port}"
    service = start_service(ws, "serve", env=env)
    try:
        listed = json.loads(lakebook(ws, "serve", "list", "--json"))
        assert [(r["name"], r["version"], r["status"]) for r in listed] == [("delay", "1", "RUNNING")]
        row = request_rows(ws, 1)[0]
        with client(proxy, token=ENV_TOKEN) as http:  # a token from the service's environment reached the replica
            assert http.post("/delay/predict", json=row).json()["version"] == "1"
        assert "models:/flight_delay/2" in lakebook(ws, "serve", "deploy", "models:/flight_delay/2", "--name", "trial")
        with client(proxy, token=STAR_TOKEN) as http:
            assert http.post("/trial/predict", json=row).json()["version"] == "2"
            assert http.post("/trial/predict", json={}).status_code == 422

        def figures():
            return {r["name"]: r for r in json.loads(lakebook(ws, "serve", "status", "--json"))}

        wait_until(lambda: figures()["trial"]["requests"] == 2 and figures()["delay"]["requests"] == 1, 30,
                   "both endpoints' figures")
        assert figures()["trial"]["rejected"] == 1 and figures()["trial"]["p50_ms"] > 0
        metrics = {(s.name, tuple(s.labels.values())): s.value for f in text_string_to_metric_families(
            httpx.get(f"{service.base_url}/metrics", timeout=30).text) for s in f.samples}
        assert metrics[("lakebook_serving_requests_total", ("trial",))] == 2
        assert metrics[("lakebook_serving_rejected_total", ("trial",))] == 1
        assert metrics[("lakebook_serving_request_duration_seconds_count", ("trial",))] == 2
        assert metrics[("lakebook_serving_model_version", ("trial",))] == 2
        assert metrics[("lakebook_serving_replicas", ("delay",))] == 1
        assert "trial" in lakebook(ws, "serve", "status") and "RUNNING" in lakebook(ws, "serve", "list")
        logs = lakebook(ws, "serve", "logs", "trial")
        assert "POST /trial/predict 200" in logs and "POST /trial/predict 422" in logs
        declared = lakebook_error(ws, "serve", "delete", "delay")
        assert "declared in lakebook.yaml" in declared.message
        assert "did you mean 'trial'?" in lakebook_error(ws, "serve", "logs", "trail").hint
        assert service.stop() == 0
        stopped = lakebook_error(ws, "serve", "list")
        assert "not running" in stopped.message and stopped.hint == "lakebook serve start or lakebook up"

        service = start_service(ws, "serve", env=env)  # the ad hoc endpoint comes back
        listed = {r["name"]: r for r in json.loads(lakebook(ws, "serve", "list", "--json"))}
        assert (listed["trial"]["version"], listed["trial"]["status"]) == ("2", "RUNNING")
        assert "endpoint trial deleted" in lakebook(ws, "serve", "delete", "trial")
        assert [r["name"] for r in json.loads(lakebook(ws, "serve", "list", "--json"))] == ["delay"]
        assert json.loads(ws.serving_endpoints_path.read_text()) == {}
        assert service.stop() == 0
    finally:
        service.stop()
    text = service.log_text()
    assert "lakebook serve: endpoints under" in text
    assert not [t for t in (TOKEN, STAR_TOKEN, ENV_TOKEN) if t in text]
    assert not (ws.serving_dir / "service.json").exists()


def test_up_runs_one_ray_runtime_that_the_stream_and_the_endpoints_join(model_ws, monkeypatch):
    """The ``ray`` service's head, joined with the token made for this start: one GCS process
    for the workspace, a prediction answered with a token from the environment (the replica,
    started by the head, reads it from the head's environment), the stream healthy; and after
    the stop no process of the workspace's Ray left."""
    port = free_port()
    config = model_ws.root / "lakebook.yaml"
    config.write_text(config.read_text() + STREAM_CONFIG + "  enabled: true\n"
                      f"serving:\n  port: {port}\n  endpoints:\n    delay: {{model: '{CHAMPION}'}}\n")
    monkeypatch.setenv("LAKEBOOK_SERVING__TOKENS", json.dumps({"*": [ENV_TOKEN]}))  # the services inherit it
    ws = Workspace.load(model_ws.root)
    launches = up_launches(ws, {name: free_port() for name in ("ingest", "stream", "serve", "lab")})
    del launches["lab"], launches["monitor"]  # not what this test is about
    running = ServiceSet(ws, launches)

    def ours() -> dict[int, str]:  # every service's processes, down to the Ray workers, have it in their environment
        return processes_with_env("LAKEBOOK_WORKSPACE", str(ws.root))

    try:
        running.start()
        assert {r["service"]: r["status"] for r in status(ws)} == dict.fromkeys(["ray", "ingest", "stream", "serve"],
                                                                                "ready")
        assert len([c for c in ours().values() if "gcs_server" in c.split()[0]]) == 1
        with client(f"http://127.0.0.1:{port}", token=ENV_TOKEN) as http:
            answer = http.post("/delay/predict", json=request_rows(ws, 1)[0])
            assert answer.status_code == 200 and answer.json()["version"] == "1", answer.text
        stream = running.by_name["stream"].base_url
        assert httpx.get(stream + "/health", timeout=10).json()["status"] == "ok"
        assert httpx.get(stream + "/status", timeout=10).json()["running"]
    finally:
        running.stop()
    wait_until(lambda: not ours(), 30, "the workspace's Ray processes ending")
    token = launches["ray"].env["RAY_AUTH_TOKEN"]
    assert not [p for p in ws.logs_dir.iterdir() if token in p.read_text() or ENV_TOKEN in p.read_text()]
