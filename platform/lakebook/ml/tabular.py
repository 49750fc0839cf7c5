"""Tabular binary classifiers that travel with their preprocessing.

A ``TabularSpec`` says which columns of a training-set frame a model reads: numeric ones and
categorical ones with their known categories (one-hot). The models are MLflow pyfunc ``PythonModel``s whose
``predict`` takes raw training-set rows and returns the probability of the positive class,
so ``mlflow.pyfunc.load_model("models:/name@champion").predict(rows)`` works as is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

try:
    from mlflow.pyfunc import PythonModel
except ImportError:  # pragma: no cover - the [ml] extra is missing; using the models says so
    PythonModel = object


@dataclass
class TabularSpec:
    numeric: list[str]
    categorical: dict[str, list[str]] = field(default_factory=dict)

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """Float features; missing numeric values stay NaN (each model imputes its own way)."""
        parts = [frame[self.numeric].apply(pd.to_numeric, errors="coerce").to_numpy(dtype="float64")]
        for column, categories in self.categorical.items():
            values = frame[column].astype("object").to_numpy()
            parts.append(np.stack([(values == c).astype("float64") for c in categories], axis=1))
        return np.concatenate(parts, axis=1)

    @property
    def input_columns(self) -> list[str]:
        return self.numeric + list(self.categorical)


class SklearnClassifier(PythonModel):
    """A fitted scikit-learn pipeline behind the spec; predicts P(positive)."""

    def __init__(self, spec: TabularSpec, pipeline):
        self.spec = spec
        self.pipeline = pipeline

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return self.pipeline.predict_proba(self.spec.matrix(frame))[:, 1]

    def predict(self, context, model_input, params=None):
        return self.predict_proba(pd.DataFrame(model_input))


class TorchMLPClassifier(PythonModel):
    """A small PyTorch MLP (CPU) with its imputation and scaling; predicts P(positive)."""

    def __init__(self, spec: TabularSpec, medians, means, stds, state_dict, hidden: tuple[int, ...]):
        self.spec, self.medians, self.means, self.stds = spec, medians, means, stds
        self.state_dict, self.hidden = state_dict, hidden
        self._net = None

    def _network(self):
        if self._net is None:
            self._net = build_mlp(len(self.means), self.hidden)
            self._net.load_state_dict(self.state_dict)
            self._net.eval()
        return self._net

    def _scaled(self, frame: pd.DataFrame) -> np.ndarray:
        x = self.spec.matrix(frame)
        x = np.where(np.isnan(x), self.medians, x)
        return ((x - self.means) / self.stds).astype("float32")

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        import torch

        with torch.no_grad():
            logits = self._network()(torch.from_numpy(self._scaled(frame))).squeeze(1)
        return torch.sigmoid(logits).numpy().astype("float64")

    def predict(self, context, model_input, params=None):
        return self.predict_proba(pd.DataFrame(model_input))

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_net"] = None
        return state


def build_mlp(inputs: int, hidden: tuple[int, ...]):
    import torch.nn as nn

    layers, width = [], inputs
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


def fit_gradient_boosting(spec: TabularSpec, frame: pd.DataFrame, labels, *, seed: int = 0,
                          max_iter: int = 300) -> SklearnClassifier:
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(max_iter=max_iter, learning_rate=0.03, max_leaf_nodes=15,
                                           min_samples_leaf=200, l2_regularization=1.0, random_state=seed)
    return SklearnClassifier(spec, model.fit(spec.matrix(frame), np.asarray(labels, dtype=int)))


def fit_logistic_regression(spec: TabularSpec, frame: pd.DataFrame, labels, *, seed: int = 0) -> SklearnClassifier:
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pipeline = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(),
                             LogisticRegression(max_iter=1000, random_state=seed))
    return SklearnClassifier(spec, pipeline.fit(spec.matrix(frame), np.asarray(labels, dtype=int)))


def fit_torch_mlp(spec: TabularSpec, frame: pd.DataFrame, labels, *, seed: int = 0, epochs: int = 8,
                  hidden: tuple[int, ...] = (64, 32), batch_size: int = 256, lr: float = 2e-3) -> TorchMLPClassifier:
    import torch

    torch.manual_seed(seed)
    x = spec.matrix(frame)
    medians = np.nan_to_num(np.nanmedian(x, axis=0))
    x = np.where(np.isnan(x), medians, x)
    means, stds = x.mean(axis=0), x.std(axis=0)
    stds[stds == 0] = 1.0
    xt = torch.from_numpy(((x - means) / stds).astype("float32"))
    yt = torch.from_numpy(np.asarray(labels, dtype="float32"))
    net = build_mlp(x.shape[1], hidden)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-4)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for batch in torch.randperm(len(xt), generator=generator).split(batch_size):
            optimizer.zero_grad()
            loss_fn(net(xt[batch]).squeeze(1), yt[batch]).backward()
            optimizer.step()
    return TorchMLPClassifier(spec, medians, means, stds, net.state_dict(), hidden)


def time_split(frame: pd.DataFrame, time_column: str = "event_timestamp", holdout: float = 0.2):
    """Earlier rows train, the latest ``holdout`` share is held out (no peeking at the future)."""
    ordered = frame.sort_values(time_column, kind="stable").reset_index(drop=True)
    cut = int(len(ordered) * (1 - holdout))
    return ordered.iloc[:cut], ordered.iloc[cut:]
