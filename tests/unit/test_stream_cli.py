"""The stream service without starting it: its metrics, and where its Ray runtime keeps files."""

import os
import stat
import tempfile
from pathlib import Path

from events import parse_metrics
from lakebook.stream.metrics import exposition
from lakebook.stream.server import RAY_SOCKET_TAIL, SOCKET_PATH_MAX, ray_temp_dir


def test_stream_metrics_per_group_source_and_view():
    status = {"group": "speed",
              "sources": {"flights": {"events": 1200, "events_per_s": 40.5, "committed": 1180, "lag": 20,
                                      "failures": 1}},
              "views": {"origin_delays": {"pushes": 7, "pushed_rows": 19, "last_push_unix": 1.7e9, "late_events": 0}}}
    found = parse_metrics(exposition(status).decode())
    source = (("group", "speed"), ("source", "flights"))
    assert found[("lakebook_stream_events_total", source)] == 1200
    assert found[("lakebook_stream_lag_events", source)] == 20
    assert found[("lakebook_stream_committed_offset", source)] == 1180
    assert found[("lakebook_stream_events_per_second", source)] == 40.5
    assert found[("lakebook_stream_pushed_rows_total", (("view", "origin_delays"),))] == 19
    assert found[("lakebook_stream_last_push_timestamp_seconds", (("view", "origin_delays"),))] == 1.7e9


def test_ray_keeps_its_files_in_the_workspace_ray_dir():
    with tempfile.TemporaryDirectory(dir="/tmp", prefix="lb") as folder:
        short = Path(folder) / "ray"
        assert ray_temp_dir(short) == short and short.is_dir()


def test_a_ray_dir_too_deep_for_unix_sockets_is_reached_through_a_short_private_link(tmp_path):
    deep = tmp_path.joinpath(*["a-rather-long-folder-name"] * 4, ".lakebook", "ray")
    assert len(str(deep)) + RAY_SOCKET_TAIL > SOCKET_PATH_MAX
    link = ray_temp_dir(deep)
    assert len(str(link)) + RAY_SOCKET_TAIL <= SOCKET_PATH_MAX
    assert link.is_symlink() and link.resolve() == deep.resolve()
    assert link.parent.stat().st_uid == os.getuid() and not stat.S_IMODE(link.parent.stat().st_mode) & 0o077
    (link / "probe").write_text("x")
    assert (deep / "probe").read_text() == "x"  # Ray's files land in the workspace
    assert ray_temp_dir(deep) == link
