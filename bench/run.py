"""Run lakebook's benchmarks side by side with their baselines.

    python bench/run.py                 # all: ingest, lake_query, import_time, materialize, training_set, transform
    python bench/run.py materialize     # one (or several) by name

Each benchmark runs as its own process (python bench/<name>.py, bounded by a timeout, its
servers killed with it) and writes bench/results/<name>.json with machine info, the raw
samples and the medians; this script then prints a short summary with the ratios and
whether each target is met. Exit status 1 if a benchmark failed (not if a target is missed).
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

BENCHMARKS = {"ingest": 600, "lake_query": 600, "import_time": 300,  # name -> timeout (s)
              "materialize": 480, "training_set": 480, "transform": 600}


def run_one(name: str, timeout_s: int) -> bool:
    print(f"== {name} ==", flush=True)
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(BENCH / f"{name}.py")], start_new_session=True)
    try:
        rc = proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        print(f"{name}: timed out after {timeout_s} s; stopping it and its servers", flush=True)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return False
    except KeyboardInterrupt:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    print(f"({name}: {time.perf_counter() - started:.0f} s, exit {rc})", flush=True)
    return rc == 0


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    ok = {name: run_one(name, BENCHMARKS[name]) for name in names}
    print("\n== summary ==")
    from _common import machine_info

    info = machine_info()
    print(f"machine: {info['cpu_count']} CPUs ({info['cpu_model']}), Python {info['python']}, {info['platform']}, "
          f"git {info['git_commit']}, load average now {info['loadavg_at_start']}")
    for name in names:
        path = BENCH / "results" / f"{name}.json"
        if not ok[name] or not path.exists():
            print(f"{name:11s} FAILED (see the output above)")
            continue
        result = json.loads(path.read_text())
        for line in importlib.import_module(name).summary(result):
            print(line)
    return 0 if all(ok.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
