"""The feature store: Feast configured from the workspace, fed by the transforms' features.* tables."""

from .store import (
    apply, feature_store, lake_source, materialize, online_features, repo_config, repo_variables, training_set, utc,
)

__all__ = ["apply", "feature_store", "lake_source", "materialize", "online_features", "repo_config",
           "repo_variables", "training_set", "utc"]
