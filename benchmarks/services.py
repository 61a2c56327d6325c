"""Helpers for the benchmarks that run real servers: ports, processes, HTTP uploads, /proc memory."""

from __future__ import annotations

import http.client
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
MANAGE = [sys.executable, str(BASE_DIR / "manage.py")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_step(module: str, database: str, *args: str) -> dict:
    """Run `python -m <module> <args>` in a fresh process on the SQLite file `database` (so that its memory and
    its times are its own); the step prints its figures as JSON on its last line of output."""
    env = dict(os.environ, SQLITE_PATH=database, DJANGO_SETTINGS_MODULE="photosite.settings")
    env.pop("DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=BASE_DIR, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise RuntimeError(f"{module} {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """A child in its own session (so one signal stops it and its children), output to a log file."""
    with log.open("ab") as out:
        return subprocess.Popen(
            command, cwd=BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop(process: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM to the child's session (it and its children), SIGKILL if it does not end in time."""
    if process.poll() is not None:
        return
    _signal(process, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _signal(process, signal.SIGKILL)
        process.wait()


def _signal(process: subprocess.Popen, signum: int) -> None:
    try:
        if os.getpgid(process.pid) == process.pid:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)
    except ProcessLookupError:
        pass


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def manage(*args: str, env: dict[str, str]) -> str:
    """Run a management command to the end; its stdout."""
    done = subprocess.run([*MANAGE, *args], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


@dataclass
class Reply:
    status: int
    body: bytes
    ms: float

    def json(self) -> dict:
        return json.loads(self.body)


class Client:
    """A plain HTTP client (one connection per request, like separate users) with an optional token."""

    def __init__(self, port: int, token: str = "", host: str = "127.0.0.1") -> None:
        self.host, self.port = host, port
        self.headers = {"Authorization": f"Token {token}"} if token else {}

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> Reply:
        started = time.perf_counter()
        connection = http.client.HTTPConnection(self.host, self.port, timeout=300)
        try:
            connection.request(method, path, body=body, headers={**self.headers, **(headers or {})})
            response = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        return Reply(response.status, data, (time.perf_counter() - started) * 1000)

    def get(self, path: str) -> Reply:
        return self.request("GET", path)

    def post_json(self, path: str, data: dict) -> Reply:
        return self.request("POST", path, json.dumps(data).encode(), {"Content-Type": "application/json"})

    def upload(self, path: str, filename: str, data: bytes, field: str = "image") -> Reply:
        boundary = uuid.uuid4().hex
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        body = head + data + f"\r\n--{boundary}--\r\n".encode()
        return self.request("POST", path, body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})


def upload_all(client: Client, path: str, files: list[Path], clients: int = 4) -> list[Reply]:
    """Upload every file from `clients` concurrent clients, each sending its next file as soon as one returns."""
    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(lambda f: client.upload(path, f.name, f.read_bytes()), files))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


# Memory, from /proc (Linux).


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process in kB; empty when it is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    values = {}
    for line in lines:
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


def private_kb(pid: int) -> int:
    """Memory only this process holds (private clean + dirty pages): what one more of it costs."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    return sum(
        int(line.split()[1]) for line in text.splitlines() if line.startswith(("Private_Clean", "Private_Dirty"))
    )


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


class MemoryWatch:
    """Samples RQ worker parents and their forked work horses; keeps each one's peak.

    Cheap enough to run beside a timed run: peak RSS is the kernel's own high-water mark (VmHWM), so a
    sample now and then sees every peak of a living process. Private memory needs smaps_rollup, which
    walks the whole address space (about 5 ms of CPU for a work horse): it is read at most once per
    PRIVATE_EVERY seconds per horse. Read at 20 Hz it took a quarter of a core from the timed workers."""

    PRIVATE_EVERY = 2.0

    def __init__(self) -> None:
        self.worker_kb = 0
        self.horse_kb = 0
        self.horse_private_kb = 0
        self.horses: set[int] = set()
        self._private_read: dict[int, float] = {}

    def sample(self, worker_pids: list[int]) -> None:
        now = time.monotonic()
        for pid in worker_pids:
            self.worker_kb = max(self.worker_kb, _status(pid).get("VmHWM", 0))
            for horse in children(pid):
                self.horses.add(horse)
                self.horse_kb = max(self.horse_kb, _status(horse).get("VmHWM", 0))
                if now - self._private_read.get(horse, -math.inf) >= self.PRIVATE_EVERY:
                    self._private_read[horse] = now
                    self.horse_private_kb = max(self.horse_private_kb, private_kb(horse))
