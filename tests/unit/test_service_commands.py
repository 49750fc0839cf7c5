"""Every service command (one that runs until Ctrl-C or SIGTERM) takes Ctrl-C as a stop, also
while it is still starting: exit 0, not click's "Aborted!" and exit 1. The interrupt is raised
where each command starts, in its workspace lookup; nothing is started here."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from lakebook import cli as lakebook_cli

SERVICES = [["ingest", "serve"], ["ingest", "mqtt"], ["stream", "start"], ["models", "ui"], ["serve", "start"],
            ["jobs", "scheduler"], ["dashboards", "serve"], ["monitor", "serve"], ["up"]]


@pytest.fixture
def interrupted_start(monkeypatch):
    """Ctrl-C arrives where every command starts, in its workspace lookup."""
    def interrupted(ctx):
        raise KeyboardInterrupt

    monkeypatch.setattr(lakebook_cli, "_workspace", interrupted)


@pytest.mark.parametrize("command", SERVICES, ids=" ".join)
def test_ctrl_c_while_a_service_starts_is_a_stop(command, interrupted_start, tmp_path):
    result = CliRunner().invoke(lakebook_cli.cli, ["-w", str(tmp_path), *command])
    assert result.exit_code == 0, result.output
    assert "Aborted" not in result.output


def test_ctrl_c_in_a_command_that_is_not_a_service_is_still_an_abort(interrupted_start, tmp_path):
    result = CliRunner().invoke(lakebook_cli.cli, ["-w", str(tmp_path), "ingest", "flush"])
    assert result.exit_code == 1 and "Aborted" in result.output
