"""A local S3-compatible server for the object-storage tests: moto's standalone server
(`moto_server`, from the dev extras) in a process of its own on loopback.

What it does not emulate (README, "The lake on S3-compatible storage"): S3's consistency and
latency, request throttling (503 SlowDown), multipart limits, and credentials (any key pair
is accepted). It keeps everything in memory: a stopped server loses its buckets.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REGION = "us-east-1"


@dataclass
class S3Server:
    """A running moto server and the environment a lakebook process needs to use it."""

    endpoint: str
    process: subprocess.Popen
    log: Path

    @property
    def env(self) -> dict[str, str]:
        """Endpoint, region and (test) credentials the way every AWS SDK reads them: from
        the environment, never from lakebook.yaml."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
                "AWS_ACCESS_KEY_ID": "lakebook-test", "AWS_SECRET_ACCESS_KEY": "lakebook-test-secret",
                "AWS_EC2_METADATA_DISABLED": "true"}

    def client(self):
        import boto3

        env = self.env
        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every key under ``prefix`` (all pages)."""
        found: list[str] = []
        for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            found += [item["Key"] for item in page.get("Contents", [])]
        return found

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_s3_server(log_dir: Path, timeout_s: float = 30) -> S3Server:
    """Start moto's server on a free loopback port; returns once it answers."""
    exe = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
    port = free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / "moto.log"
    with log.open("wb") as out:
        process = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT,
                                   env={**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "false"})
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited ({process.returncode}): {log.read_text()[-2000:]}")
        try:
            httpx.get(endpoint + "/moto-api/", timeout=1)
            return S3Server(endpoint, process, log)
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"moto_server did not answer on {endpoint} within {timeout_s} s: {log.read_text()[-2000:]}")


# -- fixtures of the S3 test modules (import them: ``from s3_support import bucket, s3, s3_env``) ------

@pytest.fixture(scope="module")
def s3(tmp_path_factory) -> S3Server:
    """One moto server for the module."""
    server = start_s3_server(tmp_path_factory.mktemp("moto"))
    yield server
    server.stop()


@pytest.fixture
def s3_env(s3, monkeypatch) -> dict:
    """This process and its children (servers, the CLI) reach the S3 server through the
    environment alone."""
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    return s3.env


@pytest.fixture
def bucket(s3, s3_env) -> str:
    """A fresh bucket of the module's server."""
    return s3.create_bucket(f"lake-{uuid.uuid4().hex[:12]}")
