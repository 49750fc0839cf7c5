"""Helpers shared by the benchmarks: machine info, statistics, result files, workspaces."""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
PYTHON = sys.executable


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "platform"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("+dirty(platform/)" if dirty.stdout.strip() else "")


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


def machine_info() -> dict:
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {
        "timestamp_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": _cpu_model(),
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "platform": platform.platform(),
        "loadavg_at_start": load,
        "git_commit": git_commit(),
        "versions": _versions("lakebook", "duckdb", "pyarrow", "orjson", "uvicorn", "starlette", "httpx",
                              "uvloop", "httptools", "ipython"),
    }


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
    RESULTS.mkdir(parents=True, exist_ok=True)
    if isinstance(data.get("machine"), dict):
        data["machine"]["loadavg_at_end"] = os.getloadavg()
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
