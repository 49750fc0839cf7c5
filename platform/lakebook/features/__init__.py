"""The feature store: Feast configured from the workspace, fed by the batch layer's features.* tables."""

from .store import (
    FeatureStoreError, apply, feature_store, lake_source, materialize, online_features, repo_config, training_set,
)

__all__ = ["FeatureStoreError", "apply", "feature_store", "lake_source", "materialize", "online_features",
           "repo_config", "training_set"]
