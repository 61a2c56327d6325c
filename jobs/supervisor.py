"""Process supervision for `manage.py runsite`: children that die with their parent, restarts with
backoff, and a pid file that tells a second start about a running stack (or cleans up a dead one's).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

log = logging.getLogger("photosite.runsite")

PR_SET_PDEATHSIG = 1
# A child that exits this many times within RESTART_WINDOW seconds stops the stack instead.
MAX_EXITS = 5
RESTART_WINDOW = 60.0
MAX_BACKOFF = 30.0


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Ask Linux to send `sig` to this process when its parent dies (prctl PR_SET_PDEATHSIG).

    Call it in the child, right after the fork. The setting survives exec; elsewhere it does nothing.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)


def _child_setup(parent_pid: int, sig: int) -> Callable[[], None]:
    def setup() -> None:
        die_with_parent(sig)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return setup


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def listening_on(pid: int, port: int) -> bool:
    """Whether the process `pid` (or one of its children) listens on TCP `port`."""
    try:
        process = psutil.Process(pid)
        for candidate in (process, *process.children(recursive=True)):
            for conn in candidate.net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                    return True
    except psutil.Error:
        return False
    return False


@dataclass
class Child:
    """One supervised process: how to start it, how to tell it is ready, how to stop it."""

    name: str
    command: Callable[[], list[str]]  # called at each start, so a restart may change (say) a worker's name
    ready: Callable[[subprocess.Popen], None] | None = None  # raises when the process did not come up
    stop_timeout: float = 30.0
    death_signal: int = signal.SIGTERM  # what the child gets when runsite dies without stopping it
    cwd: Path | None = None
    process: subprocess.Popen | None = None
    starts: int = 0
    exits: deque[float] = field(default_factory=deque)
    restart_at: float | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


class ChildKeepsDying(RuntimeError):
    pass


class Supervisor:
    """Starts children in order, restarts one that dies on its own, stops them in reverse order."""

    backoff_base = 1.0  # seconds before the first restart; doubled for each exit in the window

    def __init__(self, children: list[Child], record: Callable[[list[Child]], None] = lambda children: None) -> None:
        self.children = children
        self.record = record  # told the pids after every start, for the pid file

    def start(self, child: Child) -> None:
        child.starts += 1
        child.process = subprocess.Popen(
            child.command(),
            cwd=child.cwd,
            # Their own session: Ctrl-C reaches only runsite, which stops them in order.
            start_new_session=True,
            preexec_fn=_child_setup(os.getpid(), child.death_signal),  # noqa: PLW1509 (single-threaded)
        )
        self.record(self.children)
        if child.ready is not None:
            child.ready(child.process)

    def check(self) -> None:
        """One round: notice children that exited, restart the ones whose backoff is over."""
        now = time.monotonic()
        for child in self.children:
            if child.process is not None and child.restart_at is None and child.process.poll() is not None:
                self._exited(child, now)
            if child.restart_at is not None and now >= child.restart_at:
                child.restart_at = None
                log.info("Restarting %s", child.name)
                try:
                    self.start(child)
                except RuntimeError as exc:
                    log.error("%s did not come back: %s", child.name, exc)
                    if child.process is not None and child.process.poll() is None:
                        child.process.kill()
                        child.process.wait()

    def _exited(self, child: Child, now: float) -> None:
        code = child.process.returncode
        child.exits.append(now)
        while child.exits and now - child.exits[0] > RESTART_WINDOW:
            child.exits.popleft()
        how = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
        if len(child.exits) >= MAX_EXITS:
            raise ChildKeepsDying(
                f"{child.name} keeps dying ({len(child.exits)} exits in {RESTART_WINDOW:.0f} s, the last {how})"
            )
        delay = min(self.backoff_base * 2.0 ** (len(child.exits) - 1), MAX_BACKOFF)
        log.warning("%s (pid %s) %s; restarting it in %.1f s", child.name, child.pid, how, delay)
        child.restart_at = now + delay

    def stop(self) -> None:
        """Stop the children one SIGTERM each, last started first; a child that does not stop is killed."""
        for child in reversed(self.children):
            child.restart_at = None
            if not child.alive():
                continue
            child.process.send_signal(signal.SIGTERM)
            try:
                child.process.wait(timeout=child.stop_timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0f s; killing it", child.name, child.stop_timeout)
                child.process.kill()
                child.process.wait()

    def kill(self) -> None:
        for child in self.children:
            if child.alive():
                child.process.kill()


class AlreadyRunning(RuntimeError):
    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        super().__init__(f"photosite is already running (pid {pid if pid else 'unknown'})")


class PidFile:
    """var/runsite.pid, locked while runsite runs (the lock goes with the process, even on SIGKILL).

    The lines after the pid list the children (pid and start time), so the next start can stop what a
    runsite that was killed left behind.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = None

    def acquire(self) -> list[tuple[int, float]]:
        """Take the lock; raises AlreadyRunning if a live runsite holds it. Returns a dead one's children."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(self.path, "a+")  # noqa: SIM115 (held open for the lock)
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.seek(0)
            first = self.file.readline().strip()
            self.file.close()
            raise AlreadyRunning(int(first) if first.isdigit() else None) from None
        self.file.seek(0)
        lines = self.file.read().splitlines()
        leftovers = []
        for line in lines[1:]:
            pid, _, started = line.partition(" ")
            with contextlib.suppress(ValueError):
                leftovers.append((int(pid), float(started.split()[0])))
        self.write([])
        return leftovers

    def write(self, pids: list[int]) -> None:
        lines = [str(os.getpid())]
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                lines.append(f"{pid} {psutil.Process(pid).create_time()}")
        self.file.seek(0)
        self.file.truncate()
        self.file.write("\n".join(lines) + "\n")
        self.file.flush()

    def release(self) -> None:
        if self.file is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
            self.file.close()
            self.file = None


def stop_leftovers(leftovers: list[tuple[int, float]], timeout: float = 10.0) -> int:
    """Stop the processes a dead runsite left (only those still the same processes); returns how many."""
    found = []
    for pid, started in leftovers:
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(pid)
            if abs(process.create_time() - started) < 0.01:
                found.extend([process, *process.children(recursive=True)])
    for process in found:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    _, alive = psutil.wait_procs(found, timeout=timeout)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=5)
    return len(found)
