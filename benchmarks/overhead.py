"""Where one photo job's CPU time goes outside the engine: the worker parent's around each job, and a
pyinstrument profile (of CPU time) of each job in the work horse, split into the parts the queue adds.

    rqworker ... --worker-class benchmarks.overhead.ProfiledWorker     (BENCH_PROFILE_DIR=folder)

CPU time, not wall time: this machine is shared, and a job's wall time there says more about the other
processes than about the job. pyinstrument hooks every Python call, so parts made of many small Python calls
(the ORM, RQ) read higher than they cost unprofiled: the parts rank the costs, the drain's CPU per photo
(measured without the profiler) says what they add up to.
"""

from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path

from pyinstrument import Profiler
from pyinstrument.frame import Frame
from pyinstrument.session import Session
from pyinstrument.stack_sampler import get_stack_sampler

from jobs.worker import FaceWorker

# (part, function, file the function is in): the innermost part on a call's stack takes its time.
PARTS = [
    ("engine", "detect_faces", "recognition/engine.py"),
    ("storage read", "open_for_reading", "recognition/storage.py"),
    ("renditions", "store_renditions", "recognition/models.py"),
    ("face crops", "store_face_crops", "recognition/models.py"),
    ("faces to the database", "replace_faces", "recognition/models.py"),
    ("gallery load", "versioned", "recognition/matching.py"),
    ("gallery load", "recheck", "recognition/matching.py"),
    ("matching", "apply_matches", "recognition/models.py"),
    ("alerts", "announce_news", "alerts/dispatch.py"),
    ("alerts", "announce_someone_new", "alerts/dispatch.py"),
    ("grouping enqueue", "enqueue_grouping", "jobs/enqueue.py"),
    ("next photo (fair share)", "next_turn", "jobs/process_photo.py"),
    ("job: status, transaction", "process_photo", "jobs/process_photo.py"),
    ("stats recording", "record_job", "jobs/stats.py"),
    ("database connect", "connect", "django/db/backends/base/base.py"),
    ("Redis connect", "connect", "redis/connection.py"),
]
HORSE_REST = "RQ bookkeeping in the horse"


class ProfiledWorker(FaceWorker):
    """FaceWorker noting each job's CPU time in the parent and in the horse, and profiling the horse."""

    def execute_job(self, job, queue) -> None:
        began, reaped = time.process_time(), _children_cpu()
        super().execute_job(job, queue)
        line = {"job": job.id, "parent": time.process_time() - began, "reaped": _children_cpu() - reaped,
                "at": time.process_time()}  # fmt: skip
        with (folder() / "parent.jsonl").open("a") as out:
            out.write(json.dumps(line) + "\n")

    def perform_job(self, job, queue, execution) -> bool:
        get_stack_sampler().timer_func = time.process_time  # the horse's CPU time, not the wall clock's
        profiler = Profiler(interval=0.0005)
        started = time.process_time()  # the horse's CPU time since its fork (a child's starts at 0)
        profiler.start()
        try:
            return super().perform_job(job, queue, execution)
        finally:
            profiler.stop()
            ended = time.process_time()
            profiler.last_session.save(str(folder() / f"{job.id}.pyisession"))
            global _saved
            # What the horse spent since its last job (or its fork) before this one: the order, the job's fetch.
            times = {"pid": os.getpid(), "before": started - _saved, "started": started, "ended": ended,
                     "saved": time.process_time()}  # fmt: skip
            _saved = times["saved"]  # saving is no part of any job
            (folder() / f"{job.id}.horse.json").write_text(json.dumps(times))


_saved = 0.0  # in a horse: its CPU time when it last finished saving a job's profile


def empty_job() -> None:
    """A job that does nothing: all its CPU time is the queue's (servers.queue_cost)."""


def _children_cpu() -> float:
    """CPU time of the horses this process has reaped (a kept horse counts only once it has exited)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def folder() -> Path:
    return Path(os.environ["BENCH_PROFILE_DIR"])


def split(session: Session) -> dict[str, float]:
    """Seconds of the profiled job by part; what no part claims is RQ's own work in the horse."""
    seconds: dict[str, float] = {}

    def walk(frame: Frame, part: str) -> None:
        for name, function, path in PARTS:
            if frame.function == function and (frame.file_path or "").endswith(path):
                part = name
                break
        own = frame.time - sum(child.time for child in frame.children)
        seconds[part] = seconds.get(part, 0.0) + own
        for child in frame.children:
            walk(child, part)

    root = session.root_frame(trim_stem=False)
    if root is not None:
        walk(root, HORSE_REST)
    return seconds


def breakdown(directory: Path, redis_ms: float) -> dict:
    """Mean CPU milliseconds per photo job of each part, from what ProfiledWorker wrote in `directory`;
    redis_ms: Redis's CPU milliseconds per photo over the drain."""
    lines = [json.loads(line) for line in (directory / "parent.jsonl").read_text().splitlines()]
    photo_jobs = [line for line in lines if line["job"].startswith("photo-")]
    order = sorted(lines, key=lambda line: line["at"])
    # The parent's CPU from the end of one job to the start of the next: dequeueing, housekeeping.
    gaps = [b["at"] - b["parent"] - a["at"] for a, b in zip(order, order[1:], strict=False)]
    parts: dict[str, float] = {
        "worker: between jobs (dequeue, housekeeping)": sum(gaps) / max(1, len(gaps)),
        "Redis (the jobs' commands)": redis_ms / 1000,
    }
    parts["horse: exit (freeing its memory)"] = _exits(directory, order) / max(1, len(photo_jobs))
    for line in photo_jobs:
        horse = json.loads((directory / f"{line['job']}.horse.json").read_text())
        profiled = split(Session.load(str(directory / f"{line['job']}.pyisession")))
        # Samples fall on interval edges: what the profile's parts leave of the job's CPU time is RQ's.
        profiled[HORSE_REST] = (
            profiled.get(HORSE_REST, 0.0) + horse["ended"] - horse["started"] - sum(profiled.values())
        )
        timeline = {
            "worker: prepare, fork or hand over, wait, RQ's end of job": line["parent"],
            "horse: before the job (order, fetch; page faults after a fork)": horse["before"],
        }
        for name, value in {**timeline, **profiled}.items():
            parts[name] = parts.get(name, 0.0) + value / len(photo_jobs)
    ms = {name: 1000 * value for name, value in parts.items()}
    engine = ms.pop("engine", 0.0)
    return {
        "job_overhead_ms": sum(ms.values()),
        "job_engine_cpu_ms": engine,
        "job_overhead_jobs": len(photo_jobs),
        "job_overhead_other_jobs": len(lines) - len(photo_jobs),
        "job_overhead_parts": dict(sorted(ms.items(), key=lambda item: -item[1])),
    }


def _exits(directory: Path, order: list[dict]) -> float:
    """CPU seconds horses spent exiting: what the parent reaped beyond what the horse had spent on its jobs.
    A horse is replaced at the end of its last job, so the job whose line reaped it is (almost always) its own."""
    total, horse = 0.0, None
    for line in order:
        path = directory / f"{line['job']}.horse.json"
        horse = json.loads(path.read_text()) if path.exists() else horse
        if line["reaped"] > 0 and horse is not None:
            total += max(0.0, line["reaped"] - horse["saved"])
    return total


def table(figures: dict) -> str:
    """The breakdown as a Markdown table."""
    parts = figures.get("job_overhead_parts")
    if not parts:
        return ""
    lines = [
        f"One photo job's CPU time outside the engine (mean of {figures['job_overhead_jobs']} profiled jobs, "
        f"{figures['job_overhead_other_jobs']} other jobs ran meanwhile; "
        f"engine {figures['job_engine_cpu_ms']:.0f} ms):",
        "",
        "| Part | CPU ms per job |",
        "|---|---|",
    ]
    lines += [f"| {name} | {value:.1f} |" for name, value in parts.items()]
    lines.append(f"| **all outside the engine** (`job_overhead_ms`) | **{figures['job_overhead_ms']:.1f}** |")
    return "\n".join(lines)
