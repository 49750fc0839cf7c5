"""Tiny notebooks and job definitions for the jobs tests (unit and integration)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import nbformat

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}

# What a notebook cell appends to the run's io file, as %%lake and transforms do inside a run.
REPORT_IO = textwrap.dedent("""
    import json, os
    with open(os.environ["LAKEBOOK_RUN_IO"], "a") as io:
        io.write(json.dumps({"op": "read", "table": "raw.flights"}) + "\\n")
        io.write(json.dumps({"op": "write", "table": "warehouse.job_out"}) + "\\n")
""")

NOTEBOOKS = {
    "ok": ("n = 1\nlabel: str = 'x'",
           ["import os\nprint('run', os.environ['LAKEBOOK_RUN_ID'], 'n', n * 10, label)", REPORT_IO]),
    "fail": ("", ["x = 1", "y = 2", "raise ValueError('boom ' + str(x + y))", "print('never')"]),
    # A cell starts a child process of the kernel (it writes its pid), then the run hangs.
    "slow": ("pidfile = ''", ["import subprocess, time\np = subprocess.Popen(['sleep', '300'])\n"
                              "open(pidfile, 'w').write(str(p.pid))\ntime.sleep(300)"]),
    # Fails on its first attempt (no marker yet), succeeds on the next.
    "flaky": ("marker = ''", ["import os\nif not os.path.exists(marker):\n    open(marker, 'w').close()\n"
                              "    raise RuntimeError('first attempt fails')\nprint('second attempt')"]),
    # Appends "start <run id>" and "end <run id>" around a short sleep.
    "tick": ("log = ''\nseconds = 0.3",
             ["import os, time\nrun = os.environ['LAKEBOOK_RUN_ID']\nopen(log, 'a').write(f'start {run}\\n')\n"
              "time.sleep(seconds)\nopen(log, 'a').write(f'end {run}\\n')"]),
}


def write_notebook(path: Path, parameters: str, cells: list[str]) -> Path:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = KERNELSPEC
    if parameters:
        tagged = nbformat.v4.new_code_cell(parameters)
        tagged.metadata["tags"] = ["parameters"]
        notebook.cells.append(tagged)
    notebook.cells.extend(nbformat.v4.new_code_cell(code) for code in cells)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return path


def add_notebooks(root: Path) -> None:
    for name, (parameters, cells) in NOTEBOOKS.items():
        write_notebook(root / "notebooks" / f"{name}.ipynb", parameters, cells)


def add_job(root: Path, name: str, text: str) -> Path:
    path = root / "jobs" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


REPORT_JOB = ("notebook: notebooks/ok.ipynb\nparameters: {n: 2}\n"
              "schedule: {cron: '0 6 * * *', timezone: Europe/Paris}")


def add_report_job(root: Path) -> None:
    """The test notebooks and one job, ``report``: the ``ok`` notebook, a parameter, a daily cron."""
    add_notebooks(root)
    add_job(root, "report", REPORT_JOB)
