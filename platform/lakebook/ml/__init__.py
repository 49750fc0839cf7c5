"""Training with MLflow: tracking from the workspace, tabular models that carry their
preprocessing, registration and the guarded ``champion`` alias."""

from .tracking import (
    CHAMPION, Registration, champion_uri, current_champion, list_models, log_classifier,
    log_data_lineage, log_training_sample, promote, register_if_better, run_ui, setup_mlflow, tracking_uri,
)

__all__ = [
    "CHAMPION", "Registration", "champion_uri", "current_champion", "list_models",
    "log_classifier", "log_data_lineage", "log_training_sample", "promote", "register_if_better", "run_ui", "setup_mlflow", "tracking_uri",
]
