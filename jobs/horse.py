"""A work horse that runs many jobs: forked once, handed one job after another over a pipe.

RQ forks a fresh horse for every job. On this product's jobs that fork costs more than the queue should:
a horse forked from the 230 MB worker parent takes about 27,000 minor page faults and 60-80 ms of system time
for one photo (10,000 and 24 ms for the same photo in a loop), its caches start cold, and it reconnects to
the database and Redis. A kept horse pays that once per WORKER_HORSE_JOBS jobs.

What RQ guarantees stays as it is, because the parent still watches the horse while a job runs: it keeps
the heartbeats, kills the horse past the job's timeout (+60 s, as RQ does), and a horse that dies mid-job
(killed, out of memory, crashed) ends its job exactly as RQ ends it: RQ's own monitor_work_horse runs on
the dead horse. A job's own timeout is still the horse's SIGALRM. A fresh horse replaces the old one after
WORKER_HORSE_JOBS jobs, after any job that failed (a timeout may have stopped it anywhere) or left a database
transaction open, and once it has grown past WORKER_HORSE_MAX_MB resident, so a leak lasts at most that long.

The protocol: the parent writes one JSON line per job (job id, queue, execution id) to the horse's orders
pipe; the horse answers at once that it took it (a horse that died while idle takes nothing, and a fresh
one gets the job), runs the job as RQ's horse would and writes one JSON line back (ok). An exit line (or
the pipe's end) tells the horse to exit; the end of the replies pipe tells the parent the horse is gone.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import select
import time

import psutil
from django.conf import settings
from django.db import connections
from rq.executions import Execution
from rq.job import Job
from rq.queue import Queue
from rq.utils import now
from rq.worker import WorkerStatus

log = logging.getLogger(__name__)


class KeepsItsHorse:
    """A mixin for rq.Worker subclasses: one work horse for many jobs (see the module's docstring)."""

    # How long a retiring horse may take to exit, and an idle one to take a job, before it is killed (seconds).
    horse_exit_timeout = 10
    horse_take_timeout = 10

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._orders = self._replies = -1  # the parent's ends of the horse's pipes
        self._buffer = b""  # what the horse wrote that was not read yet
        self._horse_jobs = 0  # jobs the current horse has run

    # The parent's side

    def execute_job(self, job: Job, queue: Queue) -> None:
        execution = self.prepare_execution(job)
        self._hand_over(job, queue, execution)
        self.monitor_work_horse(job, queue, execution)
        self.set_state(WorkerStatus.IDLE)

    def _hand_over(self, job: Job, queue: Queue, execution: Execution) -> None:
        """Give the job to the kept horse, or to a fresh one when there is none or the kept one does not take
        it (it died while idle: killed, out of memory). A fresh horse that dies at once fails the job in the
        monitor, as RQ's would."""
        if self._horse_pid:
            if self._send(job, queue, execution) and self._took():
                return
            log.warning("Worker %s: idle work horse %s was gone; forking another", self.name, self._horse_pid)
            self._reap()
        self.fork_work_horse(job, queue)
        if self._send(job, queue, execution):
            self._took()

    def fork_work_horse(self, job: Job, queue: Queue) -> None:
        """Fork a horse that serves jobs until it is told to exit (the job itself comes through the pipe)."""
        orders_in, orders_out = os.pipe()
        replies_in, replies_out = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(orders_out)
            os.close(replies_in)
            os.setpgrp()  # as RQ's horse: a process group of its own, for kill_horse
            self._orders, self._replies = orders_in, replies_out
            self.main_work_horse(job, queue)
            os._exit(0)  # not reached: main_work_horse ends with os._exit
        os.close(orders_in)
        os.close(replies_out)
        self._orders, self._replies, self._buffer = orders_out, replies_in, b""
        self._horse_pid = pid
        self._horse_jobs = 0
        self.procline(f"Forked {pid} at {time.time()}")

    def _send(self, job: Job, queue: Queue, execution: Execution) -> bool:
        """Write the job's order to the horse; False when the horse is gone."""
        order = {"job": job.id, "queue": queue.name, "execution": execution.id}
        try:
            os.write(self._orders, (json.dumps(order) + "\n").encode())
        except BrokenPipeError:
            return False
        return True

    def _took(self) -> bool:
        """Whether the horse took the order (it says so as soon as it reads it); one that does not is killed."""
        if not self._readable(self.horse_take_timeout):
            self.kill_horse()
            return False
        reply = self._read_reply()
        return reply is not None and "took" in reply

    def monitor_work_horse(self, job: Job, queue: Queue, execution: Execution) -> None:
        """Wait for the horse's reply as RQ waits for its exit: heartbeats, and a kill past the timeout."""
        job.started_at = now()
        reply = None
        while True:
            if self._readable(self.job_monitoring_interval):
                reply = self._read_reply()
                break
            working_time = (now() - job.started_at).total_seconds()
            if job.timeout != -1 and working_time > job.timeout + 60:
                self.heartbeat(self.job_monitoring_interval + 60)
                self.kill_horse()
                break
            self.maintain_heartbeats(job, execution)
        if reply is None:
            # Killed, crashed or out of memory mid-job: RQ's monitor reaps it (wait4 returns at once) and ends
            # the job as RQ always has ("Work-horse terminated unexpectedly", retried when it may be).
            self._close_pipes()
            super().monitor_work_horse(job, queue, execution)
            return
        self.executions.pop(execution.id, None)
        self._horse_jobs += 1
        reason = self._reason_to_retire(reply)
        if reason:
            log.debug("Worker %s: retiring work horse %s: %s", self.name, self._horse_pid, reason)
            self.retire_horse()

    def _readable(self, timeout: float) -> bool:
        return b"\n" in self._buffer or bool(select.select([self._replies], [], [], timeout)[0])

    def _read_reply(self) -> dict | None:
        """The horse's next line, or None when the pipe ended (the horse is gone)."""
        while b"\n" not in self._buffer:
            chunk = os.read(self._replies, 4096)
            if not chunk:
                return None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return json.loads(line)

    def _reason_to_retire(self, reply: dict) -> str:
        if not reply.get("ok"):
            return "its job failed"
        if not reply.get("clean"):
            return "its job left a database transaction open"
        if self._horse_jobs >= settings.WORKER_HORSE_JOBS:
            return f"it ran {self._horse_jobs} jobs"
        with contextlib.suppress(psutil.Error):
            mb = psutil.Process(self._horse_pid).memory_info().rss / 2**20
            if mb > settings.WORKER_HORSE_MAX_MB:
                return f"it uses {mb:.0f} MB"
        return ""

    def retire_horse(self) -> None:
        """Let an idle horse exit; kill it if it has not within horse_exit_timeout."""
        if not self._horse_pid:
            return
        pid = self._horse_pid
        # An order to exit, not only the end of the pipe: a process forked from the parent meanwhile (RQ's
        # scheduler, restarted) holds a copy of the pipe's end, and the horse would never see it end.
        with contextlib.suppress(OSError):
            os.write(self._orders, b'{"exit": true}\n')
        self._close_pipes()
        deadline = time.monotonic() + self.horse_exit_timeout
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(pid, os.WNOHANG) == (0, 0):
                if time.monotonic() > deadline:
                    self.kill_horse()
                    os.waitpid(pid, 0)
                    break
                time.sleep(0.005)
        self._horse_pid = 0

    def _reap(self) -> None:
        """Make sure the horse is dead, and reap it."""
        self.kill_horse()
        self._close_pipes()
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self._horse_pid, 0)
        self._horse_pid = 0

    def let_horse_finish(self) -> None:
        """After Redis went away mid-job: wait for the horse's reply (or its end), then let it go."""
        with contextlib.suppress(OSError, ValueError):
            while self._horse_pid and self._replies >= 0:
                reply = self._read_reply()
                if reply is None or "ok" in reply:
                    break
        self.retire_horse()

    def _close_pipes(self) -> None:
        for fd in (self._orders, self._replies):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._orders = self._replies = -1
        self._buffer = b""

    def teardown(self) -> None:
        if not self.is_horse:
            self.retire_horse()
        super().teardown()

    # The horse's side

    def main_work_horse(self, job: Job, queue: Queue) -> None:
        """The horse: serve jobs from the orders pipe until told to exit. Never returns."""
        random.seed()
        self.setup_work_horse_signals()
        self._is_horse = True
        self.log = logging.getLogger("rq.worker")
        try:
            self._serve()
        except BaseException:  # as RQ's horse: whatever escapes a job ends the horse, and the parent sees it
            log.exception("Work horse %s: stopped", os.getpid())
            os._exit(1)
        os._exit(0)

    def _serve(self) -> None:
        with os.fdopen(self._orders, "rb") as orders:
            for line in orders:
                order = json.loads(line)
                if order.get("exit"):
                    return
                self._reply({"took": order["job"]})
                job = self.job_class.fetch(order["job"], connection=self.connection, serializer=self.serializer)
                queue = self._queue_named(order["queue"])
                execution = Execution(order["execution"], job.id, connection=self.connection, worker_name=self.name)
                self.executions = {execution.id: execution}
                os.environ["RQ_JOB_ID"] = job.id
                keep_database_connections()
                ok = self.perform_job(job, queue, execution)
                self._reply({"ok": ok, "clean": not in_transaction()})

    def _reply(self, message: dict) -> None:
        os.write(self._replies, (json.dumps(message) + "\n").encode())

    def _queue_named(self, name: str) -> Queue:
        for queue in self.queues:
            if queue.name == name:
                return queue
        return self.queue_class(name, connection=self.connection, serializer=self.serializer)


def keep_database_connections() -> None:
    """Before a job in a kept horse: drop a database connection that broke (a restarted server), keep a
    working one, so that jobs do not connect one by one."""
    for connection in connections.all(initialized_only=True):
        if connection.connection is not None and not connection.is_usable():
            connection.close()


def in_transaction() -> bool:
    """Whether a job left a transaction open: the next job must not run inside it (a fresh horse takes it)."""
    return any(connection.in_atomic_block for connection in connections.all(initialized_only=True))
