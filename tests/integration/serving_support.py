"""A workspace for the model endpoints' tests: the example notebook's champion (flight_delay
v1, the session's model template) and a second version trained with lakebook.ml, serving
tokens in a tokens file."""

from __future__ import annotations

from conftest import private_copy
from lakebook import features, ml

TOKEN, OTHER_TOKEN, STAR_TOKEN = "delay-token-4d1f", "other-token-9b2e", "star-token-77c3"
TRAINING_ROWS = 3000


def make_serving_template(model_template, folder):
    """A copy of the model template with flight_delay v2 registered (v1 stays champion), serving
    tokens for the endpoints ``delay``, ``other`` and ``*`` in a tokens file, and aliases
    followed every 0.3 s."""
    from lakebook.workspace import Workspace

    ws = private_copy(model_template, folder)
    secrets = ws.root.parent / "serving-tokens.yaml"
    secrets.write_text(f"delay: {TOKEN}\nother: {OTHER_TOKEN}\n'*': {STAR_TOKEN}\n")
    config = ws.root / "lakebook.yaml"
    config.write_text(config.read_text() + f"serving:\n  tokens_file: {secrets}\n  poll_interval_s: 0.3\n")
    ws = Workspace.load(ws.root)
    assert train_and_register(ws, seed=2) == "2"
    assert str(ml.current_champion(ml.setup_mlflow(ws), "flight_delay").version) == "1"
    return ws


def train_and_register(ws, seed: int) -> str:
    """A logistic-regression delay model on point-in-time features of flight_delay_v1, logged
    and registered as the training notebook does (not made champion); its version."""
    import mlflow

    from lakebook.ml import tabular
    from lakebook.query import LakeSession

    rows = LakeSession(ws).query(
        "SELECT sched_dep_at AS event_timestamp, origin, carrier, tailnum, arr_late, distance, "
        "hour(sched_dep_at AT TIME ZONE 'America/New_York') AS sched_hour_local, "
        "dayofweek(sched_dep_at AT TIME ZONE 'America/New_York') AS sched_weekday "
        f"FROM warehouse.flights_clean WHERE arr_late IS NOT NULL ORDER BY hash(flight_id || '{seed}') "
        f"LIMIT {TRAINING_ROWS}").df()
    data = features.training_set(rows, "flight_delay_v1", ws)
    numeric = [c for c in data.columns if c not in {"event_timestamp", "origin", "carrier", "tailnum", "arr_late"}]
    spec = tabular.TabularSpec(numeric, {"origin": ["EWR", "JFK", "LGA"], "carrier": sorted(data.carrier.unique())})
    ml.setup_mlflow(ws)
    with mlflow.start_run(run_name=f"serving test {seed}"):
        ml.log_data_lineage(ws, ["warehouse.flights_clean"], "flight_delay_v1", {"sample_size": TRAINING_ROWS})
        info = ml.log_classifier(tabular.fit_logistic_regression(spec, data, data.arr_late.astype(int), seed=seed), data)
    return str(mlflow.register_model(info.model_uri, "flight_delay").version)
