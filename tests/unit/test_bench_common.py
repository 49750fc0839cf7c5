"""The benchmarks' record of what they measured: which commit (and whether the tree was that
commit), and the filesystem their data was written to."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def common():
    spec = importlib.util.spec_from_file_location("bench_common", BENCH / "_common.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def porcelain(*entries: str) -> str:
    """``git status --porcelain=v1 -z`` output of these entries."""
    return "".join(e + "\0" for e in entries)


HEAD = "0123456789abcdef0123456789abcdef01234567\n"


def test_a_tree_without_changes_is_clean(common):
    state = common.tree_state(HEAD, "")
    assert state == {"git_commit": HEAD.strip(), "git_clean": True, "git_changed_paths": []}


@pytest.mark.parametrize("entry", [
    " M README.md",  # outside platform/: the whole tree counts
    " M platform/lakebook/ingest/flusher.py",
    "?? bench/new_helper.py",  # untracked files count too
    "M  bench/ingest.py",
    "D  tests/unit/test_x.py",
])
def test_any_change_outside_the_results_makes_the_tree_dirty(common, entry):
    state = common.tree_state(HEAD, porcelain(entry))
    assert state["git_clean"] is False
    assert state["git_changed_paths"] == [entry[3:]]


def test_written_results_do_not_make_the_tree_dirty(common):
    # one benchmark's result must not stop the next one of the same run
    state = common.tree_state(HEAD, porcelain(" M bench/results/ingest.json", "?? bench/results/new.json"))
    assert state["git_clean"] is True


def test_a_rename_counts_by_either_path(common):
    out_of_platform = porcelain("R  bench/results/flusher.py", "platform/lakebook/ingest/flusher.py")
    assert common.tree_state(HEAD, out_of_platform)["git_changed_paths"] == ["platform/lakebook/ingest/flusher.py"]
    renamed_twice = porcelain("R  b.py", "a.py", " M c.py")
    assert common.tree_state(HEAD, renamed_twice)["git_changed_paths"] == ["b.py", "a.py", "c.py"]


def test_a_path_with_spaces_stays_whole(common):
    assert common.tree_state(HEAD, porcelain("?? docs/my notes.md"))["git_changed_paths"] == ["docs/my notes.md"]


@pytest.mark.parametrize("head, status", [(None, ""), (HEAD, None), (None, None)])
def test_without_git_the_tree_is_not_known_clean(common, head, status):
    assert common.tree_state(head, status)["git_clean"] is False


def test_a_dirty_tree_is_refused_without_the_flag(common):
    state = common.tree_state(HEAD, porcelain(" M platform/lakebook/config.py"))
    with pytest.raises(common.BenchError) as caught:
        common.check_tree(state, allow_dirty=False)
    assert "platform/lakebook/config.py" in str(caught.value)
    assert "--dirty" in caught.value.hint


def test_an_unknown_tree_is_refused_without_the_flag(common):
    with pytest.raises(common.BenchError, match="no git commit"):
        common.check_tree(common.tree_state(None, None), allow_dirty=False)


def test_with_the_flag_a_dirty_tree_runs_and_says_so(common):
    state = common.tree_state(HEAD, porcelain(" M platform/lakebook/config.py"))
    checked = common.check_tree(state, allow_dirty=True)
    assert checked["dirty_run"] is True
    assert checked["git_changed_paths"] == ["platform/lakebook/config.py"]


def test_a_clean_tree_is_not_a_dirty_run_even_with_the_flag(common):
    assert common.check_tree(common.tree_state(HEAD, ""), allow_dirty=True)["dirty_run"] is False


MOUNTS = """\
/dev/vda / ext4 rw,relatime 0 0
proc /proc proc rw,relatime 0 0
tmpfs /tmp tmpfs rw,nosuid 0 0
/dev/vdb /work xfs rw,relatime 0 0
/dev/vdc /work/my\\040data btrfs rw 0 0
overlay /work/cache overlay rw 0 0
tmpfs /work/cache tmpfs rw 0 0
"""


@pytest.mark.parametrize("path, mount_point, filesystem", [
    ("/tmp/lakebook-bench-ingest-x/ws", "/tmp", "tmpfs"),
    ("/tmp", "/tmp", "tmpfs"),
    ("/work/wt-bench", "/work", "xfs"),
    ("/workspace/x", "/", "ext4"),  # a mount point is a folder, not a string prefix
    ("/tmpfoo", "/", "ext4"),
    ("/work/my data/lake", "/work/my data", "btrfs"),  # /proc/mounts escapes the space as \040
    ("/work/cache/x", "/work/cache", "tmpfs"),  # the last mount on a folder hides the earlier one
    ("/", "/", "ext4"),
])
def test_the_filesystem_is_the_longest_mount_above_the_path(common, path, mount_point, filesystem):
    mount = common.mount_of(path, MOUNTS)
    assert (mount["mount_point"], mount["filesystem"]) == (mount_point, filesystem)


def test_no_mount_table_means_no_filesystem(common):
    assert common.mount_of("/tmp/x", "") is None
