"""The speed layer: window operators generated from the feature declarations, kept up to date
from the event bus by a Ray job that pushes fresh values to the online store and appends them
to the lake's ``speed`` zone; and the consistency check against the batch layer."""

__all__: list[str] = []
