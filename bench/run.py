"""Run lakebook's benchmarks side by side with their baselines.

    python bench/run.py                 # all: ingest, lake_query, import_time, materialize, training_set, transform,
                                        #      freshness, stream_throughput, freshness_value, serve, jobs, dashboard,
                                        #      monitor, compaction, s3_lake
    python bench/run.py materialize     # one (or several) by name
    python bench/run.py --dirty ...     # from a tree with uncommitted changes (each result says so)

Each benchmark runs as its own process (python bench/<name>.py, bounded by a timeout, its
servers killed with it) and writes bench/results/<name>.json with machine info, the raw
samples and the medians; this script then prints a short summary with the ratios and
whether each target is met. Exit status 1 if a benchmark failed (not if a target is missed),
2 if nothing ran: an unknown name, or a tree that is not a clean commit without --dirty.
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
              "materialize": 480, "training_set": 480, "transform": 600,
              "freshness": 600, "stream_throughput": 480, "freshness_value": 480, "serve": 480, "jobs": 480,
              "dashboard": 600, "monitor": 480, "compaction": 600, "s3_lake": 900}


def run_one(name: str, timeout_s: int, dirty: bool) -> bool:
    print(f"== {name} ==", flush=True)
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(BENCH / f"{name}.py"), *(["--dirty"] if dirty else [])],
                            start_new_session=True)
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
    import _common

    dirty = "--dirty" in argv
    names = [a for a in argv if a != "--dirty"] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    _common.ALLOW_DIRTY = dirty
    try:
        info = _common.machine_info()  # refuses a tree that is not a clean commit before anything runs
    except _common.BenchError as exc:
        return exc.report()
    ok = {name: run_one(name, BENCHMARKS[name], dirty) for name in names}
    print("\n== summary ==")
    tree = "clean" if info["git_clean"] else "DIRTY (--dirty)"
    print(f"machine: {info['cpu_count']} CPUs ({info['cpu_model']}), Python {info['python']}, {info['platform']}, "
          f"git {info['git_commit']} ({tree}), data on {info['data_dir']['filesystem']} "
          f"({info['data_dir']['path']}), load average at start {info['loadavg_at_start']}, now {_common.loadavg()}")
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
