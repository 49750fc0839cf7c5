"""The speed layer: the event bus (bus.py; backends chosen by ``stream.bus``), window operators
generated from the feature declarations and kept up to date from the bus by a Ray job that pushes
fresh values to the online store and appends them to the lake's ``speed`` zone; and the
consistency check against the batch layer."""

from .bus import Bus, BusBatch, open_bus

__all__ = ["Bus", "BusBatch", "open_bus"]
