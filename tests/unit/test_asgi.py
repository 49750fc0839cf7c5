"""The loopback rule of ``lakebook ingest serve``: with no tokens configured it serves
127.0.0.1 (or another loopback name) only, unless told ``--insecure-dev``. The check runs
before anything binds; it is tested here on this machine's real addresses, without serving."""

from __future__ import annotations

import socket

import psutil
import pytest

from lakebook.config import load_settings
from lakebook.errors import ConfigError
from lakebook.ingest.server import refuse_unsafe_bind


def machine_addresses() -> list[str]:
    """This machine's own addresses that are not loopback (link-local ones need a zone)."""
    found = [a.address for addrs in psutil.net_if_addrs().values() for a in addrs
             if a.family in (socket.AF_INET, socket.AF_INET6) and "%" not in a.address]
    return [a for a in found if not a.startswith(("127.", "::1"))]


EXPOSED = ["0.0.0.0", "::", *machine_addresses()]
LOOPBACK = ["127.0.0.1", "127.0.0.2", "localhost", "::1"]


def settings(tmp_path, environ=None):
    config = tmp_path / "lakebook.yaml"
    config.write_text("name: bind\n")
    return load_settings(config, environ or {}).ingest


def test_this_machine_has_an_address_to_refuse():
    assert machine_addresses(), "no non-loopback address on this machine: the refusal would go untested"


@pytest.mark.parametrize("host", EXPOSED)
def test_a_non_loopback_bind_without_tokens_is_refused_with_what_to_do(tmp_path, host):
    with pytest.raises(ConfigError) as refused:
        refuse_unsafe_bind(settings(tmp_path), host, allow_insecure=False)
    assert refused.value.message == f"refusing to serve ingest on {host} without tokens"
    assert "LAKEBOOK_INGEST__TOKENS" in refused.value.hint and "--insecure-dev" in refused.value.hint


@pytest.mark.parametrize("host", LOOPBACK)
def test_loopback_is_served_without_tokens(tmp_path, host):
    refuse_unsafe_bind(settings(tmp_path), host, allow_insecure=False)


@pytest.mark.parametrize("host", EXPOSED)
def test_tokens_or_insecure_dev_let_a_non_loopback_bind_pass(tmp_path, host):
    with_tokens = settings(tmp_path, {"LAKEBOOK_INGEST__TOKENS": '{"flights": ["s3cret-token"]}'})
    refuse_unsafe_bind(with_tokens, host, allow_insecure=False)
    refuse_unsafe_bind(settings(tmp_path), host, allow_insecure=True)

