"""Dashboards."""

__all__: list[str] = []
