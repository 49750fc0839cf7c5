"""The speed layer: the event bus its readers consume (bus.py; backends chosen by ``stream.bus``)."""

from .bus import Bus, BusBatch, open_bus

__all__ = ["Bus", "BusBatch", "open_bus"]
