"""Notebook jobs: a run through the scheduler vs bare Papermill, and how late cron ticks start.

Set-up: a fresh temporary workspace (no data: the notebooks compute in the kernel), the
scheduler started as the ``jobs`` service through the service model (its own process, the
settings' defaults: a round every ``jobs.tick_s`` = 0.5 s), as ``lakebook up`` starts it.

(a) One notebook of CELLS cells (a ``parameters`` cell and small computations that print),
run ROUNDS times each way, the first side alternating between rounds:

- scheduler: ``run_job(ws, name, wait=False)`` queues a manual run for the leading scheduler
  (what ``lakebook jobs run`` does), then the run record is polled every POLL_S until it is
  finished; the time is the manual trigger to the finished record: the scheduler's next round,
  the claim, a supervisor forked from its fork server, the notebook's own process, Papermill on
  a new kernel, the output's HTML, the record;
- bare: ``papermill.execute_notebook`` of the same notebook with the same parameters in this
  process (Papermill imported beforehand), on a new kernel each time.

Goal: the median scheduler time <= 1.1 x the median bare time (also the median of the rounds'
paired ratios). Both produce an output notebook; the scheduler's is checked to have run every cell.

(b) Cron lateness: a job on a seconds-level schedule (``*/CRON_EVERY_S * * * * *``,
max_concurrent CRON_CONCURRENCY so that runs do not wait for each other) enabled for
CRON_WINDOW_S. Its notebook records the start time of its own process (the one the supervisor
forks to run Papermill, seen from the kernel: its start in clock ticks since boot, from
/proc/<pid>/stat, plus the boot's wall-clock time from CLOCK_BOOTTIME; psutil's create_time
adds the boot time in whole seconds from /proc/stat, off by up to a second).
Lateness = that start - the tick's scheduled time; also reported: the claim (the record's
``started_at``) - the scheduled time. Goal: p99 of the process lateness <= 1 s.

    python bench/jobs.py [--dirty]                 # writes bench/results/jobs.json
    BENCH_JOBS_ROUNDS=3 BENCH_JOBS_CRON_WINDOW_S=20 python bench/jobs.py --dirty   # a short probe
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import bench_main, machine_info, make_workspace, median, percentile, write_result  # noqa: E402

NAME = "jobs"
CELLS = 20
ROUNDS = int(os.environ.get("BENCH_JOBS_ROUNDS", "7"))
POLL_S = 0.02
CRON_EVERY_S = int(os.environ.get("BENCH_JOBS_CRON_EVERY_S", "3"))
CRON_CONCURRENCY = 3
CRON_WINDOW_S = float(os.environ.get("BENCH_JOBS_CRON_WINDOW_S", "90"))
GOAL_RATIO = 1.1
GOAL_LATENESS_P99_S = 1.0
FINISHED = ("succeeded", "failed", "timed_out", "cancelled")


# -- the notebooks --------------------------------------------------------------------------------------
def twenty_cells(cells: int = CELLS) -> list[str]:
    """The sources of the benchmark notebook's cells after its parameters cell: small
    computations that each print, as a report notebook's cells do."""
    return [f"x{i} = sum(range(scale * {i + 1}))\nprint({i}, x{i})" for i in range(cells - 1)]


STAMP_CELL = ("import json, os, time\n"
              "runner = os.getppid()  # the process the supervisor forked to run Papermill\n"
              "ticks = int(open(f'/proc/{runner}/stat').read().rsplit(')', 1)[1].split()[19])  # its start\n"
              "booted = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)\n"
              "with open(stamps, 'a') as out:\n"
              "    out.write(json.dumps({'run': int(os.environ['LAKEBOOK_RUN_ID']), 'process_started': "
              "booted + ticks / os.sysconf('SC_CLK_TCK'), 'kernel_at': time.time()}) + '\\n')")


def write_notebook(path: Path, parameters: str, cells: list[str]) -> Path:
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    tagged = nbformat.v4.new_code_cell(parameters)
    tagged.metadata["tags"] = ["parameters"]
    notebook.cells = [tagged, *(nbformat.v4.new_code_cell(c) for c in cells)]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return path


def build(root: Path, stamps: Path) -> None:
    """The workspace's two jobs: ``twenty`` (manual only) and ``ticks`` (seconds-level cron, disabled
    until the lateness phase)."""
    make_workspace(root)
    write_notebook(root / "notebooks" / "twenty.ipynb", "scale = 1000", twenty_cells())
    write_notebook(root / "notebooks" / "ticks.ipynb", "stamps = ''", [STAMP_CELL])
    jobs = root / "jobs"
    jobs.mkdir()
    (jobs / "twenty.yaml").write_text("notebook: notebooks/twenty.ipynb\nparameters: {scale: 1000}\n")
    (jobs / "ticks.yaml").write_text(
        f"notebook: notebooks/ticks.ipynb\nparameters: {{stamps: '{stamps}'}}\n"
        f"schedule: {{cron: '*/{CRON_EVERY_S} * * * * *'}}\nmax_concurrent: {CRON_CONCURRENCY}\n"
        "catchup: skip\nenabled: false\n")


# -- pure parts (tests/unit/test_bench_jobs.py) ------------------------------------------------------------
def round_order(index: int) -> tuple[str, str]:
    return ("scheduler", "bare") if index % 2 == 0 else ("bare", "scheduler")


def run_figures(rounds: list[dict]) -> dict:
    """Medians per side, their ratio and the median of the rounds' paired ratios."""
    sides = {side: median([r[side] for r in rounds]) for side in ("scheduler", "bare")}
    paired = median([r["scheduler"] / r["bare"] for r in rounds])
    ratio = sides["scheduler"] / sides["bare"]
    phases = {k: median([r[k] for r in rounds]) for k in ("queued_to_claimed_s", "claimed_to_finished_s") if k in rounds[0]}
    return {"median_s": sides, "scheduler_phases_median_s": phases, "ratio_of_medians": ratio, "median_paired_ratio": paired,
            "overhead_s": sides["scheduler"] - sides["bare"], "goal": GOAL_RATIO, "met": ratio <= GOAL_RATIO}


def lateness(runs: list[dict], stamps: list[dict]) -> dict:
    """Per cron run (by its stamp): process start - scheduled time, and claim - scheduled time;
    p50/p99/max of each. A tick whose run left no stamp counts as missed."""
    by_run = {s["run"]: s for s in stamps}
    process, claim, missed = [], [], []
    for run in runs:
        due = run["scheduled_time"].timestamp()
        if run["started_at"] is not None:
            claim.append(run["started_at"].timestamp() - due)
        if run["id"] in by_run:
            process.append(by_run[run["id"]]["process_started"] - due)
        else:
            missed.append(run["id"])
    p99 = percentile(process, 99) if process else float("inf")
    return {"ticks": len(runs), "missed": missed, "process_s": _spread(process), "claim_s": _spread(claim),
            "goal_p99_s": GOAL_LATENESS_P99_S, "met": not missed and p99 <= GOAL_LATENESS_P99_S}


def _spread(values: list[float]) -> dict:
    if not values:
        return {"p50": None, "p99": None, "max": None, "samples": []}
    return {"p50": percentile(values, 50), "p99": percentile(values, 99), "max": max(values),
            "samples": [round(v, 4) for v in values]}


# -- measuring ------------------------------------------------------------------------------------------
def wait_finished(store, run_id: int) -> dict:
    while (run := store.run(run_id))["status"] not in FINISHED:
        time.sleep(POLL_S)
    return run


def through_scheduler(ws, store, phases: list[dict]) -> float:
    """Seconds from the manual trigger to the finished record; the record's phases appended."""
    from lakebook.jobs import run_job

    started = time.perf_counter()
    queued = run_job(ws, "twenty", wait=False)
    run = wait_finished(store, queued["id"])
    seconds = time.perf_counter() - started
    if run["status"] != "succeeded":
        raise RuntimeError(f"run {run['id']}: {run['status']} {run['reason']}")
    phases.append(record_phases(run))
    return seconds


def record_phases(run: dict) -> dict:
    """Where a run's time went, by its record: queued until claimed by a scheduler round, then
    claimed until finished (supervisor, notebook process, Papermill, HTML, the record)."""
    return {"queued_to_claimed_s": (run["started_at"] - run["queued_at"]).total_seconds(),
            "claimed_to_finished_s": (run["finished_at"] - run["started_at"]).total_seconds()}


def bare_papermill(ws, out: Path) -> float:
    from lakebook.jobs._papermill import import_papermill

    papermill = import_papermill()
    notebook = ws.root / "notebooks" / "twenty.ipynb"
    started = time.perf_counter()
    papermill.execute_notebook(str(notebook), str(out), parameters={"scale": 1000}, cwd=str(notebook.parent),
                               kernel_name="python3", progress_bar=False)
    return time.perf_counter() - started


def measure_runs(ws, store, log) -> list[dict]:
    bare_out = ws.root / "bare-output.ipynb"
    through_scheduler(ws, store, [])  # warm-up: the first kernel start and the first run of each side
    bare_papermill(ws, bare_out)
    rounds = []
    for index in range(ROUNDS):
        sample, phases = {}, []
        for side in round_order(index):
            sample[side] = through_scheduler(ws, store, phases) if side == "scheduler" else bare_papermill(ws, bare_out)
        rounds.append({**sample, **phases[0]})
        log(f"  round {index + 1}: scheduler {sample['scheduler']:.2f} s, bare {sample['bare']:.2f} s")
    return rounds


def measure_lateness(ws, store, stamps: Path, log) -> dict:
    """The cron job enabled for CRON_WINDOW_S; then disabled, the ticks still queued cancelled
    (the window's end, not a miss) and the runs in flight waited for."""
    from lakebook.jobs import cancel_run, set_enabled

    set_enabled(ws, "ticks", True)
    started = time.time()
    time.sleep(CRON_WINDOW_S)
    set_enabled(ws, "ticks", False)
    for run in store.runs("ticks", limit=10_000, statuses=["queued"]):
        cancel_run(ws, run["id"])
    while store.runs("ticks", limit=10_000, statuses=["running"]):
        time.sleep(0.2)
    runs = [r for r in store.runs("ticks", limit=10_000) if r["trigger"] == "cron" and r["status"] != "cancelled"]
    log(f"  {len(runs)} cron runs over {time.time() - started:.0f} s")
    lines = stamps.read_text().splitlines() if stamps.exists() else []
    return lateness(runs, [json.loads(line) for line in lines])


def run(log=print) -> dict:
    from lakebook.jobs import JobStore
    from lakebook.services import start_service
    from lakebook.workspace import Workspace

    info = machine_info()
    started = time.perf_counter()
    for name in [k for k in os.environ if k.startswith("LAKEBOOK_")]:
        del os.environ[name]
    with tempfile.TemporaryDirectory(prefix="lakebook-bench-jobs-") as tmp:
        stamps = Path(tmp) / "stamps.jsonl"
        build(Path(tmp) / "ws", stamps)
        ws = Workspace.load(Path(tmp) / "ws")
        scheduler = start_service(ws, "jobs")
        store = JobStore(ws)
        try:
            rounds = measure_runs(ws, store, log)
            ticks = measure_lateness(ws, store, stamps, log)
        finally:
            store.close()
            scheduler.stop()
    result = {
        "benchmark": NAME,
        "machine": info,
        "setup": {
            "scheduler": "the jobs service via services.start_service (its own process), jobs.tick_s "
                         f"{ws.settings.jobs.tick_s}, executor local; run record polled every {POLL_S} s",
            "notebook": f"{CELLS} cells (parameters + {CELLS - 1} small computations that print), kernel python3",
            "rounds": f"{ROUNDS} rounds after one warm-up run of each side, the first side alternating",
            "cron": f"*/{CRON_EVERY_S} * * * * *, max_concurrent {CRON_CONCURRENCY}, enabled for {CRON_WINDOW_S:g} s",
            "knobs": "BENCH_JOBS_ROUNDS, BENCH_JOBS_CRON_WINDOW_S, BENCH_JOBS_CRON_EVERY_S (defaults 7, 90, 3)",
        },
        "rounds": rounds,
        "run": run_figures(rounds),
        "cron_lateness": ticks,
        "runtime_s": time.perf_counter() - started,
    }
    write_result(NAME, result)
    return result


def summary(result: dict) -> list[str]:
    r, c = result["run"], result["cron_lateness"]
    mark = {True: "met", False: "MISSED"}
    return [
        f"jobs        20-cell notebook: scheduler {r['median_s']['scheduler']:.2f} s, bare Papermill "
        f"{r['median_s']['bare']:.2f} s: {r['ratio_of_medians']:.2f}x (paired {r['median_paired_ratio']:.2f}x; "
        f"goal <= {r['goal']}x {mark[r['met']]}); queued to claimed "
        f"{r['scheduler_phases_median_s'].get('queued_to_claimed_s', float('nan')):.2f} s, claimed to finished "
        f"{r['scheduler_phases_median_s'].get('claimed_to_finished_s', float('nan')):.2f} s",
        f"            cron lateness over {c['ticks']} ticks ({len(c['missed'])} missed): process start p50 "
        f"{_ms(c['process_s']['p50'])}, p99 {_ms(c['process_s']['p99'])} (goal p99 <= {c['goal_p99_s']:g} s "
        f"{mark[c['met']]}); claim p99 {_ms(c['claim_s']['p99'])}",
    ]


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


if __name__ == "__main__":
    sys.exit(bench_main(run, summary))
