"""Import time: wall time of ``python -c "import lakebook"`` vs ``python -c "pass"``.

Fresh interpreter processes (the venv's python), alternating, several runs, medians. The
target (<= 0.5 s) is checked on the whole ``import lakebook`` process wall time, the
stricter reading; the net import cost (difference of medians) is reported too. For
context, ``-X importtime`` of one run lists the slowest modules, and the same is measured
for ``import lakebook.magics`` (what ``%load_ext lakebook`` imports).

    python bench/import_time.py        # writes bench/results/import_time.json
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PYTHON, REPO, bench_main, clean_env, machine_info, median, write_result  # noqa: E402

NAME = "import_time"
RUNS = int(os.environ.get("BENCH_IMPORT_RUNS", 15))
TARGET_S = 0.5
STATEMENTS = {"pass": "pass", "import_lakebook": "import lakebook", "import_lakebook_magics": "import lakebook.magics"}


def _wall(code: str, env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run([PYTHON, "-c", code], check=True, env=env, cwd=REPO, timeout=60,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def _importtime(code: str, env: dict, top: int = 12) -> list[dict]:
    """Slowest modules (cumulative microseconds) from ``python -X importtime``."""
    out = subprocess.run([PYTHON, "-X", "importtime", "-c", code], env=env, cwd=REPO, timeout=60,
                         capture_output=True, text=True, check=True).stderr
    rows = []
    for line in out.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        self_us, cumulative_us, name = line[len("import time:"):].split("|", 2)
        rows.append({"module": name.strip(), "self_us": int(self_us), "cumulative_us": int(cumulative_us)})
    return sorted(rows, key=lambda r: -r["cumulative_us"])[:top]


def run(log=print) -> dict:
    info = machine_info()
    started = time.perf_counter()
    env = clean_env(PYTHONDONTWRITEBYTECODE="0")
    for code in STATEMENTS.values():  # warm the OS file cache and the .pyc files
        _wall(code, env)
    samples = {k: [] for k in STATEMENTS}
    for r in range(RUNS):
        keys = list(STATEMENTS) if r % 2 == 0 else list(reversed(STATEMENTS))
        for key in keys:
            samples[key].append(_wall(STATEMENTS[key], env))
    med = {k: median(v) for k, v in samples.items()}
    net = med["import_lakebook"] - med["pass"]
    result = {
        "benchmark": NAME,
        "machine": info,
        "setup": {"python": PYTHON, "runs": RUNS, "order": "alternating, after one warm-up run of each",
                  "statements": STATEMENTS, "cwd": str(REPO), "env": "os.environ without LAKEBOOK_*"},
        "medians_s": med,
        "net_import_lakebook_s": net,
        "net_import_lakebook_magics_s": med["import_lakebook_magics"] - med["pass"],
        "samples_s": samples,
        "importtime_top_import_lakebook": _importtime("import lakebook", env),
        "importtime_top_import_lakebook_magics": _importtime("import lakebook.magics", env),
        "targets": {"import_lakebook_le_0.5s": {"target": TARGET_S, "value": med["import_lakebook"],
                                                "met": med["import_lakebook"] <= TARGET_S}},
        "runtime_s": time.perf_counter() - started,
    }
    write_result(NAME, result)
    return result


def summary(result: dict) -> list[str]:
    m = result["medians_s"]
    t = result["targets"]["import_lakebook_le_0.5s"]
    return [
        f"import      python -c 'import lakebook' {m['import_lakebook'] * 1000:.0f} ms vs 'pass' {m['pass'] * 1000:.0f} ms "
        f"(net {result['net_import_lakebook_s'] * 1000:.0f} ms, ratio {m['import_lakebook'] / m['pass']:.2f}); "
        f"target <= {TARGET_S} s: {'MET' if t['met'] else 'NOT MET'}; "
        f"'import lakebook.magics' {m['import_lakebook_magics'] * 1000:.0f} ms",
    ]


if __name__ == "__main__":
    sys.exit(bench_main(run, summary))
