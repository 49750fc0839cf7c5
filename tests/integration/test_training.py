"""The training notebooks run headless with Papermill on a real kernel, tracked in MLflow."""

import json
import shutil
from pathlib import Path

import mlflow
import nbformat
import papermill
import pytest

from lakebook import features, ml
from lakebook.errors import ModelRegistryError
from lakebook.query import LakeSession

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def run_notebook(ws, name: str, **parameters) -> tuple[dict | None, Path]:
    folder = ws.root / "notebooks"
    folder.mkdir(exist_ok=True)
    shutil.copy(REPO / "notebooks" / name, folder)
    out = folder / f"out-{name}"
    papermill.execute_notebook(str(folder / name), str(out), parameters=parameters, cwd=str(folder),
                               kernel_name="python3", progress_bar=False)
    summary = None
    for cell in nbformat.read(out, as_version=4).cells:
        for output in cell.get("outputs", []):
            for line in output.get("text", "").splitlines():
                if line.startswith("LAKEBOOK_SUMMARY "):
                    summary = json.loads(line[len("LAKEBOOK_SUMMARY "):])
    return summary, out


def training_rows(ws, n: int):
    """The first ``n`` flights of the notebook's sample, with their point-in-time features."""
    rows = LakeSession(ws).query(
        "SELECT sched_dep_at AS event_timestamp, origin, carrier, tailnum, distance, "
        "hour(sched_dep_at AT TIME ZONE 'America/New_York') AS sched_hour_local, "
        "dayofweek(sched_dep_at AT TIME ZONE 'America/New_York') AS sched_weekday "
        f"FROM warehouse.flights_clean WHERE arr_late IS NOT NULL ORDER BY hash(flight_id) LIMIT {int(n)}").df()
    return features.training_set(rows, "flight_delay_v1", ws)


def candidate_runs(client, parent_run_id):
    parent = client.get_run(parent_run_id)
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent_run_id}'")
    return parent, {r.data.params["model_kind"]: r for r in children}


def test_training_is_tracked_and_registration_is_gated_by_the_baseline(flights_ws):
    summary, _ = run_notebook(flights_ws, "02_train_delay_model.ipynb", sample_size=12000, torch_epochs=3)
    client = ml.setup_mlflow(flights_ws)
    parent, candidates = candidate_runs(client, summary["parent_run_id"])
    assert parent.data.params["feature_service"] == "flight_delay_v1"
    assert parent.data.params["training.split"] == "time"
    assert "lakebook.table.warehouse.flights_clean" in parent.data.tags
    lineage = ml.tracking.data_lineage_of(client, parent.info.run_id)
    assert lineage["tables"]["features.origin_delays"]["rows"] > 0
    assert sorted(candidates) == ["sklearn", "torch"]
    best = max(r.data.metrics["holdout_roc_auc"] for r in candidates.values())
    assert summary["holdout_roc_auc"] == pytest.approx(best)
    assert parent.data.metrics["baseline_holdout_roc_auc"] == pytest.approx(summary["baseline_roc_auc"])
    # The gate: registered exactly when the best candidate beats the logistic baseline.
    assert summary["beats_baseline"] == (summary["holdout_roc_auc"] > summary["baseline_roc_auc"])
    versions = client.search_model_versions("name = 'flight_delay'")
    assert (summary["registered_version"] is not None) == summary["beats_baseline"] == bool(versions)


def test_nothing_is_registered_when_the_baseline_wins(flights_ws):
    """An MLP trained for no epoch (its initial weights) cannot beat the logistic baseline:
    the registry is asked what the notebook left there, and it holds nothing."""
    summary, out = run_notebook(flights_ws, "02_train_delay_model.ipynb", sample_size=4000, model_kind="torch",
                                torch_epochs=0)
    assert not summary["beats_baseline"] and summary["holdout_roc_auc"] <= summary["baseline_roc_auc"]
    assert "not registered: torch holdout ROC AUC" in out.read_text()
    client = ml.setup_mlflow(flights_ws)
    _, candidates = candidate_runs(client, summary["parent_run_id"])
    assert sorted(candidates) == ["torch"]  # the candidate was trained and tracked, only not registered
    assert list(client.search_registered_models()) == []
    assert list(client.search_model_versions("name = 'flight_delay'")) == []
    assert ml.current_champion(client, "flight_delay") is None
    assert (summary["registered_version"], summary["promoted"]) == (None, False)


def test_a_worse_model_never_takes_the_champion_alias(flights_ws):
    summary, _ = run_notebook(flights_ws, "02_train_delay_model.ipynb", sample_size=8000, torch_epochs=2)
    client = ml.setup_mlflow(flights_ws)
    _, candidates = candidate_runs(client, summary["parent_run_id"])
    scored = sorted(candidates.values(), key=lambda r: r.data.metrics["holdout_roc_auc"])
    worse, better = [(f"runs:/{r.info.run_id}/model", r.data.metrics["holdout_roc_auc"]) for r in scored]
    assert worse[1] < better[1]
    first = ml.register_if_better(client, worse[0], "delay_guard", "holdout_roc_auc", worse[1], None)
    assert first.promoted  # no champion yet
    same = ml.register_if_better(client, worse[0], "delay_guard", "holdout_roc_auc", worse[1], worse[1])
    up = ml.register_if_better(client, better[0], "delay_guard", "holdout_roc_auc", better[1], worse[1])
    down = ml.register_if_better(client, worse[0], "delay_guard", "holdout_roc_auc", worse[1], better[1])
    assert (same.promoted, up.promoted, down.promoted) == (False, True, False)
    assert str(ml.current_champion(client, "delay_guard").version) == up.version == "3"
    assert "champion kept" in down.describe()

    # The champion loads with pyfunc and predicts on training-set rows.
    rows = training_rows(flights_ws, 5)
    model = mlflow.pyfunc.load_model(ml.champion_uri("delay_guard"))
    predictions = model.predict(rows[model.metadata.get_input_schema().input_names()])
    assert len(predictions) == 5 and all(0.0 <= p <= 1.0 for p in predictions)


def test_a_model_that_beats_the_baseline_is_registered_and_a_worse_one_never_takes_champion(year_ws):
    """On the year lake (the first days of every month) the notebook trains on winter to
    autumn and holds out the latest flights; there the gradient boosting model beats the
    logistic baseline, so the notebook's own register branch runs end to end."""
    first, _ = run_notebook(year_ws, "02_train_delay_model.ipynb", sample_size=12000, torch_epochs=3)
    client = ml.setup_mlflow(year_ws)
    parent, candidates = candidate_runs(client, first["parent_run_id"])
    baseline = parent.data.metrics["baseline_holdout_roc_auc"]
    assert {"baseline_holdout_roc_auc", "baseline_holdout_log_loss"} <= set(parent.data.metrics)
    assert all({"holdout_roc_auc", "holdout_log_loss"} <= set(r.data.metrics) for r in candidates.values())
    best = candidates[first["best_kind"]]
    assert best.data.metrics["holdout_roc_auc"] == pytest.approx(first["holdout_roc_auc"])
    assert first["holdout_roc_auc"] > baseline == pytest.approx(first["baseline_roc_auc"])
    assert first["beats_baseline"] and first["promoted"] and first["champion_score_before"] is None

    (version,) = client.search_model_versions("name = 'flight_delay'")
    assert str(version.version) == first["registered_version"] == "1"
    assert version.run_id == best.info.run_id
    assert float(version.tags["holdout_roc_auc"]) == pytest.approx(first["holdout_roc_auc"], abs=1e-6)
    assert float(version.tags["holdout_roc_auc"]) > baseline
    assert str(ml.current_champion(client, "flight_delay").version) == "1"

    # A deliberately worse configuration on the same sample, hence the same holdout: a
    # gradient boosting model of three trees. The champion is re-scored on that holdout
    # (exactly its own recorded score) and keeps the alias, registered newcomer or not.
    worse, _ = run_notebook(year_ws, "02_train_delay_model.ipynb", sample_size=12000, model_kind="sklearn",
                            gbm_iterations=3)
    assert worse["champion_score_before"] == pytest.approx(first["holdout_roc_auc"])
    assert worse["holdout_roc_auc"] < worse["champion_score_before"]
    assert not worse["promoted"]
    assert str(ml.current_champion(client, "flight_delay").version) == "1"
    versions = sorted(str(v.version) for v in client.search_model_versions("name = 'flight_delay'"))
    assert versions == (["1", "2"] if worse["beats_baseline"] else ["1"])
    assert worse["registered_version"] == ("2" if worse["beats_baseline"] else None)

    # models:/flight_delay@champion loads with pyfunc and predicts on a training-set row.
    model = mlflow.pyfunc.load_model(ml.champion_uri("flight_delay"))
    assert model.metadata.run_id == best.info.run_id
    row = training_rows(year_ws, 1)
    (probability,) = model.predict(row[model.metadata.get_input_schema().input_names()])
    assert 0.0 < probability < 1.0


def test_promote_by_hand_and_list(flights_ws):
    summary, _ = run_notebook(flights_ws, "02_train_delay_model.ipynb", sample_size=6000, model_kind="sklearn")
    client = ml.setup_mlflow(flights_ws)
    _, candidates = candidate_runs(client, summary["parent_run_id"])
    uri = f"runs:/{candidates['sklearn'].info.run_id}/model"
    for score in (0.70, 0.60):
        ml.register_if_better(client, uri, "delay_manual", "holdout_roc_auc", score, 0.70 if score < 0.7 else None)
    listed = [(r["version"], r["alias"]) for r in ml.list_models(flights_ws) if r["name"] == "delay_manual"]
    assert listed == [("1", "champion"), ("2", "")]
    with pytest.raises(ModelRegistryError, match="no version 9"):
        ml.promote(flights_ws, "delay_manual", "9")
    ml.promote(flights_ws, "delay_manual", "2")
    assert str(ml.current_champion(client, "delay_manual").version) == "2"


def test_exploration_notebook_runs(flights_ws):
    _, out = run_notebook(flights_ws, "01_explore_flights.ipynb")
    text = out.read_text()
    assert "image/png" in text  # the charts were drawn
    assert "warehouse.flights_clean: last event" in text
    assert "raw.flights  (by transforms/flights_clean.sql)" in text
