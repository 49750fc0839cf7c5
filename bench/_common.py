"""Helpers shared by the benchmarks: machine info, statistics, result files, workspaces."""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
RESULTS_PATH = "bench/results"  # the benchmarks' output: writing one result must not make the tree dirty
PYTHON = sys.executable
ALLOW_DIRTY = False  # set by --dirty (bench_main, run.py)


class BenchError(Exception):
    """A benchmark refuses to run or to write its result; ``hint`` says what to do."""

    def __init__(self, message: str, hint: str):
        super().__init__(message)
        self.hint = hint

    def report(self) -> int:
        """Print it as the CLI does; the exit status of a refusal."""
        print(f"error: {self}\nhint: {self.hint}", file=sys.stderr)
        return 2


def _git(*args: str) -> str | None:
    """The output of a git command in this repository; None if git is missing or fails."""
    try:
        out = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def changed_paths(porcelain_z: str) -> list[str]:
    """The paths ``git status --porcelain=v1 -z`` lists (tracked changes and untracked files),
    except the benchmarks' results. A rename counts if either of its paths does."""
    entries = porcelain_z.split("\0")
    changed, i = [], 0
    while i < len(entries):
        entry, i = entries[i], i + 1
        if len(entry) < 4:
            continue
        paths = [entry[3:]]
        if entry[0] in "RC":  # the path it was renamed or copied from comes next
            paths.append(entries[i])
            i += 1
        changed += [p for p in paths if p != RESULTS_PATH and not p.startswith(RESULTS_PATH + "/")]
    return changed


def tree_state(head: str | None, porcelain_z: str | None) -> dict:
    """What a result records of the source it ran: the commit, and whether the tree is that
    commit (unknown counts as not clean)."""
    changed = changed_paths(porcelain_z) if porcelain_z is not None else None
    return {"git_commit": head.strip() if head else None,
            "git_clean": bool(head) and changed == [],
            "git_changed_paths": changed if changed is None else changed[:50]}


def source_state() -> dict:
    return tree_state(_git("rev-parse", "HEAD"),
                      _git("status", "--porcelain=v1", "-z", "--untracked-files=all"))


def check_tree(state: dict, allow_dirty: bool) -> dict:
    """``state`` with ``dirty_run`` set; a BenchError if the tree is not clean and ``--dirty``
    was not given (results are only comparable when they name the code they measured)."""
    if not state["git_clean"] and not allow_dirty:
        what = (f"{len(state['git_changed_paths'])} changed path(s), e.g. {state['git_changed_paths'][0]}"
                if state["git_changed_paths"] else "no git commit could be read")
        raise BenchError(f"the working tree is not a clean commit ({what})",
                         hint="commit or stash the changes, or pass --dirty (the result then says so)")
    return {**state, "dirty_run": not state["git_clean"]}


def mount_of(path: str, mounts: str) -> dict | None:
    """The /proc/mounts entry (mount point, filesystem type, device) that holds ``path``: the
    longest mount point that is ``path`` or a folder above it; of equal ones the last mounted."""
    best = None
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = _unescape_mount(fields[1])
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(best["mount_point"])):
            best = {"mount_point": point, "filesystem": fields[2], "device": _unescape_mount(fields[0])}
    return best


def _unescape_mount(field: str) -> str:
    """/proc/mounts writes space, tab, newline and backslash as octal escapes (\\040 ...)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def data_dir_info(path: str | None = None) -> dict:
    """Where a benchmark writes its lake and temp data (the temp dir by default) and its filesystem."""
    path = os.path.realpath(path or tempfile.gettempdir())
    try:
        mounts = Path("/proc/mounts").read_text()
    except OSError:
        mounts = ""
    return {"path": path, **(mount_of(path, mounts) or {"mount_point": None, "filesystem": None, "device": None})}


def loadavg() -> list[float] | None:
    try:
        return list(os.getloadavg())
    except OSError:
        return None


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _versions(*names: str) -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def machine_info(data_dir: str | None = None) -> dict:
    """The machine, the source and the load, at the start of a run (see check_tree)."""
    return {
        "timestamp_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": _cpu_model(),
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "platform": platform.platform(),
        "loadavg_at_start": loadavg(),
        "data_dir": data_dir_info(data_dir),
        **check_tree(source_state(), ALLOW_DIRTY),
        "versions": _versions("lakebook", "duckdb", "pyarrow", "orjson", "uvicorn", "starlette", "httpx",
                              "uvloop", "httptools", "ipython"),
    }


def bench_main(run, summary, argv: list[str] | None = None) -> int:
    """The command line of one benchmark: ``python bench/<name>.py [--dirty]``; prints its summary."""
    global ALLOW_DIRTY
    parser = argparse.ArgumentParser(description=sys.modules["__main__"].__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dirty", action="store_true",
                        help="run from a tree with uncommitted changes (the result records them)")
    ALLOW_DIRTY = parser.parse_args(argv).dirty
    try:
        print("\n".join(summary(run())))
    except BenchError as exc:
        return exc.report()
    return 0


def median(values) -> float:
    return float(statistics.median(values))


def percentile(values, q: float) -> float:
    """Linear-interpolated percentile (q in 0..100)."""
    data = sorted(values)
    if not data:
        return float("nan")
    k = (len(data) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(data) - 1)
    return float(data[lo] + (data[hi] - data[lo]) * (k - lo))


def geomean(values) -> float:
    return float(statistics.geometric_mean(values))


def write_result(name: str, data: dict) -> Path:
    """Write bench/results/<name>.json; refused if the tree is not clean now (without --dirty)
    or is no longer the commit the run started from."""
    state = check_tree(source_state(), ALLOW_DIRTY)
    started = data["machine"]["git_commit"]
    if state["git_commit"] != started:
        raise BenchError(f"the commit changed during the run ({started} -> {state['git_commit']})",
                         hint="run the benchmark again from one commit")
    data["machine"]["loadavg_at_end"] = loadavg()
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path


def make_workspace(root: Path, config: str = "name: bench\n") -> Path:
    """A workspace folder with the example contracts copied in (as tests/conftest.py does)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "lakebook.yaml").write_text(config)
    shutil.copytree(REPO / "contracts", root / "contracts")
    return root


def clean_env(**extra: str) -> dict[str, str]:
    """os.environ without LAKEBOOK_* settings leaking in, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEBOOK_")}
    env.update(extra)
    return env


class Timer:
    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.s = time.perf_counter() - self.t0


def synthetic_flight(at, flight: int, carrier: str, origin: str, rng) -> dict:
    """A valid event of the flights contract scheduled at ``at`` (UTC), its delays drawn from ``rng``."""
    delay = round(rng.gauss(10, 30), 1)
    return {"year": at.year, "month": at.month, "day": at.day, "dep_time": 517,
            "sched_dep_time": at.hour * 100 + at.minute, "dep_delay": delay, "arr_time": 830, "sched_arr_time": 819,
            "arr_delay": round(delay + rng.gauss(0, 9), 1), "carrier": carrier, "flight": flight,
            "tailnum": f"N{rng.randrange(10000, 99999)}", "origin": origin,
            "dest": rng.choice(("IAH", "MIA", "ATL", "ORD", "LAX", "BOS")), "air_time": 227.0, "distance": 1400.0,
            "hour": at.hour, "minute": at.minute, "time_hour": at.replace(minute=0, second=0).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "sched_dep_at": at.strftime("%Y-%m-%dT%H:%M:%SZ")}
