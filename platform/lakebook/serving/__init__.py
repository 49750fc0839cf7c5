"""Model endpoints: registered models answering with online features (predictor.py, in
process) on Ray Serve."""

from .predictor import ModelRef, PredictionRecorder, Predictor, parse_model_uri, resolve_model

__all__ = ["ModelRef", "PredictionRecorder", "Predictor", "parse_model_uri", "resolve_model"]
