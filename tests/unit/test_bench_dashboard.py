"""The dashboard benchmark's pure parts: the rounds' order, the render figures and goal, the
snapshot figures and goal, when the pool counts as refilled, kernels from their command lines and
their memory per pool."""

from __future__ import annotations

import pytest
from bench_support import load_bench

KERNEL_A, KERNEL_B = "0b5e2a9c-1111-4c4c-8d8d-000000000001", "0b5e2a9c-2222-4c4c-8d8d-000000000002"


@pytest.fixture(scope="module")
def bench():
    return load_bench("dashboard")


def test_the_first_side_alternates_between_rounds(bench):
    assert [bench.round_order(i) for i in range(4)] == [("lakebook", "stock"), ("stock", "lakebook")] * 2


def test_render_figures_are_medians_their_ratio_and_the_paired_ratios_median(bench):
    rounds = [{"lakebook": 2.0, "stock": 5.0}, {"lakebook": 3.0, "stock": 4.0}, {"lakebook": 2.5, "stock": 6.0}]
    out = bench.render_figures(rounds)
    assert out["median_s"] == {"lakebook": 2.5, "stock": 5.0}
    assert out["ratio_of_medians"] == pytest.approx(0.5) and out["saved_s"] == pytest.approx(2.5)
    assert out["median_paired_ratio"] == pytest.approx(2.5 / 6.0)
    assert out["met"]
    assert not bench.render_figures([{"lakebook": 2.6, "stock": 5.0}])["met"]


def test_the_render_goal_needs_the_paired_ratio_too(bench):
    rounds = [{"lakebook": 1.0, "stock": 4.0}, {"lakebook": 2.0, "stock": 3.0}, {"lakebook": 2.0, "stock": 3.5}]
    out = bench.render_figures(rounds)
    assert out["ratio_of_medians"] == pytest.approx(2 / 3.5) and out["median_paired_ratio"] > 0.5
    assert not out["met"]


def test_the_snapshot_goal_holds_for_the_http_and_the_chromium_medians(bench):
    out = bench.snapshot_figures([0.005, 0.006, 0.5], [0.15, 0.19, 0.3])
    assert out["http_ttlb_s"]["median"] == 0.006 and out["chromium_load_s"]["median"] == 0.19
    assert out["http_ttlb_s"]["p95"] == pytest.approx(0.4506) and out["met"]
    assert not bench.snapshot_figures([0.005], [0.21])["met"]
    assert not bench.snapshot_figures([0.25], [0.1])["met"]


def test_the_pool_is_refilled_once_its_fills_outnumber_the_pages_that_took_a_kernel(bench):
    start = f"[Voila] Kernel pool of nb.ipynb {bench.FILLED} 1 kernel(s)\n"
    taken = f"[Voila] {bench.TAKEN}: {KERNEL_A} for nb.ipynb\n"
    assert not bench.pool_refilled("")
    assert bench.pool_refilled(start)
    assert not bench.pool_refilled(start + taken)
    assert bench.pool_refilled(start + taken + start)
    assert bench.taken_kernel(start + taken) == KERNEL_A and bench.taken_kernel(start) is None


def test_kernels_are_idle_when_the_same_ones_used_almost_no_cpu(bench):
    assert bench.settled({1: 10.0, 2: 3.0}, {1: 10.01, 2: 3.0})
    assert not bench.settled({1: 10.0}, {1: 10.5})  # still running the notebook
    assert not bench.settled({1: 10.0}, {1: 10.0, 2: 0.1})  # a kernel started in between


def test_a_kernel_is_known_by_its_connection_file(bench):
    assert bench.kernel_id_of(["python", "-m", "ipykernel_launcher", "-f", f"/tmp/x/kernel-{KERNEL_A}.json"]) == KERNEL_A
    assert bench.kernel_id_of(["python", "-m", "voila", "notebook.ipynb"]) is None


def test_pool_memory_sums_each_pools_kernels_and_leaves_others_out(bench):
    mib = 2**20
    kernels = [{"id": KERNEL_A, "rss": 300 * mib, "uss": 200 * mib}, {"id": KERNEL_B, "rss": 100 * mib, "uss": 50 * mib},
               {"id": "other", "rss": 999 * mib, "uss": 999 * mib}]
    pools = bench.pool_memory(kernels, {KERNEL_A: "a.ipynb", KERNEL_B: "a.ipynb"})
    assert pools == {"a.ipynb": {"kernels": 2, "rss_mib": 400.0, "uss_mib": 250.0}}


def test_a_pages_phases_split_its_time_at_the_navigations_marks(bench):
    timing = {"redirects_end_ms": 20, "response_start_ms": 120, "response_end_ms": 150, "dom_content_loaded_ms": 400,
              "rendered_ms": 2400, "load_ms": 900, "redirects": 2}
    phases = bench.page_phases(timing)
    assert phases == pytest.approx({"redirects": 0.02, "to_first_byte": 0.1, "html": 0.03, "to_dom_loaded": 0.25,
                                    "to_rendered": 2.0})
    assert sum(phases.values()) == pytest.approx(timing["rendered_ms"] / 1000)
    rounds = [{"pages": {side: {"phases_s": dict(phases, html=h)} for side in ("lakebook", "stock")}}
              for h in (0.01, 0.03, 0.05)]
    assert bench.phase_medians(rounds)["stock"]["html"] == pytest.approx(0.03)
