"""``lakebook models ui``: the MLflow UI over the workspace's tracking store, on loopback only,
and stopped cleanly (its port freed, no process left) by SIGINT or SIGTERM."""

import signal
import socket
import subprocess
import sys

import httpx
import psutil
import pytest

from lakebook._proc import wait_until_answering
from lakebook.services import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def tracked_workspace(workspace):
    """A workspace whose tracking store holds a run and a registered model with a champion."""
    import mlflow
    import numpy as np
    import pandas as pd

    from lakebook import ml
    from lakebook.ml import tabular

    client = ml.setup_mlflow(workspace)
    rng = np.random.default_rng(0)
    rows = pd.DataFrame({"late_share_3h": rng.random(300), "origin": rng.choice(["EWR", "JFK", "LGA"], 300)})
    labels = (rows.late_share_3h + rng.normal(0, 0.3, 300) > 0.5).astype(int)
    spec = tabular.TabularSpec(numeric=["late_share_3h"], categorical={"origin": ["EWR", "JFK", "LGA"]})
    with mlflow.start_run(run_name="ui check") as run:
        mlflow.log_metric("holdout_roc_auc", 0.71)
        info = ml.log_classifier(tabular.fit_logistic_regression(spec, rows, labels), rows)
    ml.register_if_better(client, info.model_uri, "flight_delay", "holdout_roc_auc", 0.71, None)
    return workspace, run.info


def start_models_ui(root, port: int, log_path) -> subprocess.Popen:
    """``lakebook models ui`` as a user starts it; its output goes to a file (nobody reads a pipe)."""
    command = [sys.executable, "-m", "lakebook", "-w", str(root), "models", "ui", "--port", str(port)]
    with open(log_path, "ab") as log_file:  # the child keeps its own descriptor
        return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT)


def wait_for_ui(process: subprocess.Popen, url: str, log_path, timeout_s: float = 120) -> None:
    wait_until_answering(process, f"{url}/health", name="models ui", timeout_s=timeout_s, poll_s=0.2,
                         log_text=lambda: log_path.read_text(errors="replace"))


def listening_addresses(process: subprocess.Popen) -> set[tuple[str, int]]:
    """Every (ip, port) the UI's process tree listens on."""
    tree = psutil.Process(process.pid)
    return {(c.laddr.ip, c.laddr.port) for p in [tree, *tree.children(recursive=True)]
            for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT left by closed connections is fine
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_models_ui_serves_the_workspace_tracking_store_on_loopback(tracked_workspace, tmp_path, stop_signal):
    workspace, run = tracked_workspace
    port, log_path = free_port(), tmp_path / "models-ui.log"
    url = f"http://127.0.0.1:{port}"
    ui, tree = start_models_ui(workspace.root, port, log_path), []
    try:
        wait_for_ui(ui, url, log_path)
        assert f"MLflow UI on {url}" in log_path.read_text()
        listening = listening_addresses(ui)
        assert ("127.0.0.1", port) in listening
        assert {ip for ip, _ in listening} == {"127.0.0.1"}, listening
        tree = psutil.Process(ui.pid).children(recursive=True)

        with httpx.Client(base_url=url, timeout=30) as client:
            assert client.get("/").status_code == 200
            experiment = client.get("/api/2.0/mlflow/experiments/get-by-name",
                                    params={"experiment_name": workspace.settings.ml.experiment}).json()["experiment"]
            assert experiment["experiment_id"] == run.experiment_id
            logged = client.get("/api/2.0/mlflow/runs/get", params={"run_id": run.run_id}).json()["run"]
            assert {m["key"]: m["value"] for m in logged["data"]["metrics"]} == {"holdout_roc_auc": 0.71}
            models = client.get("/api/2.0/mlflow/registered-models/search").json()["registered_models"]
            assert [(m["name"], m["aliases"]) for m in models] == [
                ("flight_delay", [{"alias": "champion", "version": "1"}])]
            version = client.get("/api/2.0/mlflow/registered-models/alias",
                                 params={"name": "flight_delay", "alias": "champion"}).json()["model_version"]
            assert version["run_id"] == run.run_id

        ui.send_signal(stop_signal)
        assert ui.wait(timeout=60) == 0
        gone, alive = psutil.wait_procs(tree, timeout=30)
        assert not alive, f"left running: {alive}"
        assert port_is_free(port)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/health", timeout=2)
    finally:  # a failed test leaves no server behind either
        for process in [p for p in tree if p.is_running()]:
            process.kill()
        if ui.poll() is None:
            ui.kill()
            ui.wait()
