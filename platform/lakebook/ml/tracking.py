"""MLflow from the workspace: tracking, artifacts, registry and the ``champion`` alias.

Embedded default: a SQLite backend store and local artifacts in the state dir; a tracking
server by ``ml.tracking_uri``. Nothing is written to the current directory.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from ..config import apply_library_log_level, child_environment, set_library_defaults
from ..errors import MissingDependency, ModelRegistryError

log = logging.getLogger("lakebook.ml")
CHAMPION = "champion"


def tracking_uri(workspace) -> str:
    return workspace.settings.ml.tracking_uri or f"sqlite:///{workspace.mlflow_dir / 'mlflow.db'}"


def is_tracking_server(uri: str) -> bool:
    """Whether ``uri`` is a tracking server's (http, https) rather than a store the client opens."""
    return uri.split(":", 1)[0].lower() in ("http", "https")


def artifact_location(workspace) -> str | None:
    """Where a new experiment's artifacts go: ``ml.artifact_location``; else, with a tracking
    server, None (the server's own artifact store, which it proxies, e.g. an S3 bucket named
    by ``mlflow server --artifacts-destination``: the clients need no access to it); else,
    when the lake is on S3, beside the lake (MLflow's S3 artifact store reads the endpoint and
    credentials from the same environment); else the state dir's mlflow/artifacts."""
    if workspace.settings.ml.artifact_location:
        return workspace.settings.ml.artifact_location
    if is_tracking_server(tracking_uri(workspace)):
        return None
    if workspace.lake_on_s3:
        return str(workspace.lake.mlflow_artifacts)
    return (workspace.mlflow_dir / "artifacts").as_uri()


def setup_mlflow(workspace, experiment: str | None = None):
    """Point MLflow at the workspace's tracking store and experiment; returns an MlflowClient."""
    set_library_defaults("MLFLOW_DISABLE_TELEMETRY")
    try:
        import mlflow
    except ImportError:
        raise MissingDependency("mlflow", "ml") from None
    apply_library_log_level()  # MLflow set its loggers' level when imported
    workspace.mlflow_dir.mkdir(parents=True, exist_ok=True)
    uri = tracking_uri(workspace)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    name = experiment or workspace.settings.ml.experiment
    client = mlflow.MlflowClient(uri, uri)
    if client.get_experiment_by_name(name) is None:
        location = artifact_location(workspace)
        client.create_experiment(name, artifact_location=f"{location}/{name}" if location else None)
    mlflow.set_experiment(name)
    return client


def log_data_lineage(workspace, tables: list[str], feature_service: str | None = None,
                     training_spec: dict | None = None) -> None:
    """On the active run: the feature service, the training-set spec, and each catalog table
    the data came from with its freshness."""
    import mlflow

    from ..catalog import open_catalog

    catalog = open_catalog(workspace)
    sources = {}
    for name in tables:
        t = catalog.table(name)
        sources[name] = {"rows": t.row_count, "last_event_time": str(t.last_event_time),
                         "updated": str(t.last_ingest_time), "location": t.location}
        mlflow.set_tag(f"lakebook.table.{name}", f"rows={t.row_count} last_event={t.last_event_time}")
    if feature_service:
        mlflow.log_param("feature_service", feature_service)
    if training_spec:
        mlflow.log_params({f"training.{k}": v for k, v in training_spec.items()})
    mlflow.log_dict({"feature_service": feature_service, "training_spec": training_spec, "tables": sources},
                    "lakebook/data_lineage.json")


TRAINING_SAMPLE = "lakebook/training_sample.parquet"


def log_training_sample(frame, columns: list[str], *, rows: int = 5000, seed: int = 0) -> None:
    """On the active run: a sample of ``rows`` rows of the training set's ``columns``
    (``TRAINING_SAMPLE``), what the monitor's feature drift compares recent values with."""
    import tempfile

    import mlflow

    sample = frame[columns].sample(n=min(rows, len(frame)), random_state=seed).reset_index(drop=True)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / Path(TRAINING_SAMPLE).name
        sample.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), str(Path(TRAINING_SAMPLE).parent))


def training_sample_of(client, run_id: str):
    """The run's training sample as a DataFrame, or None when the run logged none."""
    import pandas as pd
    from mlflow.exceptions import MlflowException

    try:
        path = client.download_artifacts(run_id, TRAINING_SAMPLE)
    except (MlflowException, OSError):
        return None
    return pd.read_parquet(path)


@dataclass
class Registration:
    name: str
    version: str
    metric: str
    value: float
    champion_value: float | None
    promoted: bool

    def describe(self) -> str:
        against = "no champion yet" if self.champion_value is None else f"champion {self.champion_value:.4f}"
        verdict = "now champion" if self.promoted else "champion kept"
        return f"{self.name} v{self.version}: {self.metric} {self.value:.4f} vs {against} -> {verdict}"


def register_if_better(client, model_uri: str, name: str, metric: str, value: float,
                       champion_score: float | None, *, higher_is_better: bool = True) -> Registration:
    """Register ``model_uri`` as a new version of ``name``; give it the ``champion`` alias only if
    it beats the current champion's score on the same holdout (``champion_score``)."""
    import mlflow

    version = mlflow.register_model(model_uri, name)
    better = champion_score is None or (value > champion_score if higher_is_better else value < champion_score)
    client.set_model_version_tag(name, version.version, metric, f"{value:.6f}")
    if better:
        client.set_registered_model_alias(name, CHAMPION, version.version)
    return Registration(name, str(version.version), metric, value, champion_score, better)


def champion_uri(name: str) -> str:
    return f"models:/{name}@{CHAMPION}"


def current_champion(client, name: str):
    """The champion version, or None when the model or the alias does not exist yet."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def promote(workspace, name: str, version: str) -> None:
    from mlflow.exceptions import MlflowException

    client = setup_mlflow(workspace)
    try:
        client.get_model_version(name, str(version))
    except MlflowException:
        raise ModelRegistryError(f"no version {version} of model {name!r}",
                                 hint="lakebook models list shows the versions") from None
    client.set_registered_model_alias(name, CHAMPION, str(version))


def list_models(workspace) -> list[dict]:
    client = setup_mlflow(workspace)
    rows = []
    for model in client.search_registered_models():
        aliases = {str(v): k for k, v in (model.aliases or {}).items()}
        for version in client.search_model_versions(f"name = '{model.name}'"):
            number = str(version.version)
            rows.append({"name": model.name, "version": number, "alias": aliases.get(number, ""),
                         "run_id": version.run_id, "tags": dict(version.tags or {}),
                         "created": version.creation_timestamp})
    return sorted(rows, key=lambda r: (r["name"], int(r["version"])))


def _ui_command(workspace, port: int | None = None) -> list[str]:
    """``mlflow ui`` over the workspace's tracking store, on loopback, with one worker process
    (one person browses it; MLflow's default of four workers costs a core and ~1 GB)."""
    import sys

    return [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", tracking_uri(workspace),
            *(["--default-artifact-root", location] if (location := artifact_location(workspace)) else []),
            "--host", "127.0.0.1",
            "--port", str(port or workspace.settings.ml.ui_port), "--workers", "1"]


def run_ui(workspace, port: int | None = None) -> int:
    """Run the MLflow UI in the foreground until it stops; returns 0 when stopped by SIGINT or
    SIGTERM, else the UI's exit code.

    The UI runs in its own session and each stop signal is passed on to it once, so MLflow shuts
    its web server down and frees the port whether the signal came from Ctrl-C or from a
    supervisor that signals this process alone. MLflow's background job runner (GenAI judges
    and scheduled trace jobs) stays off: browsing runs and the registry does not use it.
    """
    import signal
    import subprocess

    set_library_defaults("MLFLOW_DISABLE_TELEMETRY")
    environment = child_environment(workspace.root, extra={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    from .._proc import stop_with_parent

    ui = subprocess.Popen(_ui_command(workspace, port), env=environment, start_new_session=True,
                          preexec_fn=stop_with_parent())  # stopped even if this process is killed
    stopped = []

    def pass_on(signum, _frame):
        stopped.append(signum)
        if ui.poll() is None:
            ui.send_signal(signum)

    previous = {s: signal.signal(s, pass_on) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = ui.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 0 if stopped else code


def data_lineage_of(client, run_id: str) -> dict:
    path = client.download_artifacts(run_id, "lakebook/data_lineage.json")
    return json.loads(Path(path).read_text())


def _pip_requirements() -> list[str]:
    """Exact versions of what the logged models need, so logging never resolves an env."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for package in ("lakebook", "mlflow", "scikit-learn", "torch", "pandas", "numpy", "cloudpickle"):
        try:
            pins.append(f"{package}=={version(package).split('+')[0]}")
        except PackageNotFoundError:
            continue
    return pins


def log_classifier(model, rows, *, name: str = "model"):
    """Log a tabular classifier as a pyfunc with its signature and an input example (raw
    training-set rows), with explicit pip requirements."""
    import mlflow
    from mlflow.models import infer_signature

    example = rows[model.spec.input_columns].head(5).reset_index(drop=True)
    signature = infer_signature(example, model.predict(None, example))
    return mlflow.pyfunc.log_model(name=name, python_model=model, signature=signature, input_example=example,
                                   pip_requirements=_pip_requirements())
