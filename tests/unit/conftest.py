"""Unit tests never start a JVM, a Ray cluster or a server: starting Spark here is an error."""

import pytest


@pytest.fixture(autouse=True)
def no_spark(monkeypatch):
    def refuse(*args, **kwargs):
        raise RuntimeError("unit tests must not start Spark; put this test in tests/integration")

    monkeypatch.setattr("lakebook.transform.spark.spark_session", refuse)
