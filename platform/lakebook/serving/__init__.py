"""Model endpoints: registered models answering with online features (predictor.py, in
process) on Ray Serve (app.py: one application per endpoint; server.py: the service that
deploys them and follows model aliases; endpoints.py: what an endpoint is, apart from Ray)."""

from .endpoints import all_endpoints, deployment_options
from .predictor import ModelRef, PredictionRecorder, Predictor, parse_model_uri, resolve_model

__all__ = ["ModelRef", "PredictionRecorder", "Predictor", "all_endpoints", "deployment_options", "parse_model_uri",
           "resolve_model"]
