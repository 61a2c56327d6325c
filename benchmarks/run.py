"""Run every benchmark, print a Markdown table with the targets, write benchmarks/results/latest.json.

    python -m benchmarks.run [--quick]      (make bench, make bench QUICK=1)
    python -m benchmarks.run --only s3      (one part, written to results/s3.json)

Each comparison runs both sides in this one run, so their ratio holds on a busy machine even when the
absolute figures move.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import accuracy, encoding, gallery_load, grouping, overhead, workset  # accuracy sets Django up
from benchmarks.local import cli, engine_loop, engine_processes, naive_loop
from benchmarks.match_speed import gallery_speed
from benchmarks.s3 import s3_media
from benchmarks.servers import blocking_server, pipeline

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


@dataclass(frozen=True)
class Plan:
    photos: int
    naive_photos: int
    reprocess_rows: int
    gallery_sizes: tuple[int, ...]
    budget_s: int


REPROCESS_ROWS = 20_000  # photo rows `reprocess --all` queues: a few seconds, enough for a steady rate
FULL = Plan(100, 10, REPROCESS_ROWS, (1_000, 10_000, 100_000, 1_000_000), 20 * 60)
QUICK = Plan(20, 3, REPROCESS_ROWS, (1_000, 10_000, 100_000, 1_000_000), 5 * 60)


def machine() -> dict:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    return {
        "cpu_model": model or platform.processor(),
        "cpu_cores": os.cpu_count(),
        "python": platform.python_version(),
        "commit": commit,
        "load_average_at_start": os.getloadavg()[0],
    }


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (all cores, all processes)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU seconds of this process and of its children that have ended (workers, servers, the CLI...)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def adopt_orphans() -> None:
    """Become the child subreaper (Linux): the CLI's pool processes, orphaned when it exits, are then
    reaped here and their CPU time counts as ours, not as another process's."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def reap_orphans() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def step(name: str, figures: dict, call: Callable[[], dict]) -> None:
    """Run one contender; also note how much of the machine other processes took meanwhile."""
    print(f"... {name}", file=sys.stderr, flush=True)
    started, busy, own = time.monotonic(), busy_cpu_seconds(), own_cpu_seconds()
    figures.update(call())
    time.sleep(0.5)  # let orphans of the step finish exiting
    reap_orphans()
    seconds = time.monotonic() - started
    others = (busy_cpu_seconds() - busy) - (own_cpu_seconds() - own)
    figures[f"seconds_{name}"] = round(seconds, 1)
    figures[f"others_cpu_share_{name}"] = round(max(0.0, others) / (seconds * (os.cpu_count() or 1)), 3)


def load_workset(plan: Plan, figures: dict) -> tuple[Path, list]:
    step("workset", figures, lambda: {"workset": str(workset.generate(plan.photos))})
    folder = Path(figures.pop("workset"))
    photos = workset.load(folder, plan.photos)
    figures["photos"] = len(photos)
    figures["faces_placed"] = sum(len(p.faces) for p in photos)
    return folder, photos


# Parts that `--only` runs alone (the shared machine may not afford the whole run).
def queue_part(folder: Path, photos: list) -> dict:
    """The queue's cost alone: the engine in 1 and 2 processes, the pipeline with its drains, the blocking server."""
    figures = {**engine_loop(folder, photos), **engine_processes(folder, photos, 2)}
    figures.update(pipeline(folder, photos, reprocess_rows=REPROCESS_ROWS))
    figures.update(blocking_server(folder, photos))
    return {key: value for key, value in figures.items() if not key.endswith("_boxes")}


PARTS = {
    "s3": s3_media,
    "grouping": lambda folder, photos: grouping.run(),
    "galleries": lambda folder, photos: gallery_load.run(),
    "queue": queue_part,
    "encoding": lambda folder, photos: encoding.run(),
}


def measure_part(plan: Plan, part: str) -> dict:
    figures: dict = {}
    started = time.monotonic()
    folder, photos = load_workset(plan, figures)
    step(part, figures, lambda: PARTS[part](folder, photos))
    figures["bench_seconds"] = round(time.monotonic() - started, 1)
    return figures


def measure(plan: Plan) -> dict:
    figures: dict = {}
    started = time.monotonic()
    folder, photos = load_workset(plan, figures)
    # The engine right before the pipeline: the 0.9 x target compares them, and this machine's load drifts.
    step("engine", figures, lambda: engine_loop(folder, photos))
    step("engine_2p", figures, lambda: engine_processes(folder, photos, 2))
    step("pipeline", figures, lambda: pipeline(folder, photos, plan.reprocess_rows))
    # Right after the pipeline, on the same photos, all of them: the pipeline / blocking target compares them.
    step("blocking", figures, lambda: blocking_server(folder, photos))
    step("cli", figures, lambda: cli(folder, photos))
    step("naive", figures, lambda: naive_loop(folder, photos[: plan.naive_photos]))
    step("matching", figures, lambda: gallery_speed(list(plan.gallery_sizes)))
    step("galleries", figures, gallery_load.run)
    step("accuracy", figures, accuracy.run)
    step("encoding", figures, encoding.run)
    step("s3", figures, lambda: s3_media(folder, photos))
    step("grouping", figures, grouping.run)
    # Recall on the photos the naive loop ran, for a like-for-like comparison.
    subset = photos[: plan.naive_photos]
    figures["pipeline_recall_naive_subset"] = workset.recall(subset, figures["pipeline_boxes"])
    for key in [k for k in figures if k.endswith("_boxes")]:
        del figures[key]
    figures["bench_seconds"] = round(time.monotonic() - started, 1)
    return figures


@dataclass(frozen=True)
class Target:
    name: str
    holds: Callable[[dict], bool]
    detail: Callable[[dict], str]


def ratio(figures: dict, a: str, b: str) -> float:
    return figures[a] / figures[b] if figures[b] else float("inf")  # KeyError: a contender that did not run


def grouping_holds(f: dict) -> bool:
    return all(
        f[f"groups_pure{run}"] == 1.0 and f[f"stranger_groups{run}"] == 0 and f[f"groups_recall{run}"] >= 0.8
        for run in ("", "_variants")
    )


def ratio_target(name: str, a: str, b: str, at_least: float) -> Target:
    """A target on figure a / figure b, shown as "1.23 x"."""
    return Target(name, lambda f: ratio(f, a, b) >= at_least, lambda f: f"{ratio(f, a, b):.2f} x")


def targets(plan: Plan) -> list[Target]:
    return [
        ratio_target("pipeline 1 worker >= 0.9 x engine alone", "pipeline_photos_per_s_1w", "engine_photos_per_s", 0.9),
        ratio_target(
            "pipeline 2 workers >= 1.7 x 1 worker", "pipeline_photos_per_s_2w", "pipeline_photos_per_s_1w", 1.7
        ),
        ratio_target(
            "pipeline (2 workers) >= 0.95 x blocking server (same photos)",
            "pipeline_photos_per_s_2w",
            "blocking_photos_per_s",
            0.95,
        ),
        ratio_target("drain, 1 worker >= 0.95 x engine alone", "drain_photos_per_s_1w", "engine_photos_per_s", 0.95),
        ratio_target(
            "drain, 2 workers >= 0.95 x engine in 2 processes", "drain_photos_per_s_2w", "engine_photos_per_s_2p", 0.95
        ),
        Target(
            "paired rounds: pipeline (2 workers) >= 0.95 x blocking server, drain (2 workers) >= 0.95 x engine in 2",
            lambda f: min(f["pipeline_blocking_ratio_paired"], f["drain_2w_engine_2p_ratio_paired"]) >= 0.95,
            lambda f: (
                f"pipeline / blocking {f['pipeline_blocking_ratio_paired']:.2f} x, drain / engine "
                f"{f['drain_2w_engine_2p_ratio_paired']:.2f} x (median of {len(f['paired_rounds'])} rounds on "
                f"{f['paired_photos']} photos, each side right after the other)"
            ),
        ),
        Target(
            "CPU per photo: pipeline <= 1.05 x engine",
            lambda f: ratio(f, "cpu_ms_per_photo_pipeline", "cpu_ms_per_photo_engine") <= 1.05,
            lambda f: (
                f"{ratio(f, 'cpu_ms_per_photo_pipeline', 'cpu_ms_per_photo_engine'):.3f} x "
                f"(drain, 1 worker: {ratio(f, 'cpu_ms_per_photo_drain_1w', 'cpu_ms_per_photo_engine'):.3f} x; "
                f"interleaved with the engine, median of {len(f['interleaved_rounds'])} rounds: "
                f"{f['cpu_ratio_drain_engine_interleaved']:.3f} x)"
            ),
        ),
        Target(
            "CPU per photo: pipeline <= 1.05 x the engine's, measured inside the same jobs (no drift between runs)",
            lambda f: f["cpu_ratio_pipeline_engine_same_run"] <= 1.05,
            lambda f: (
                f"{f['cpu_ratio_pipeline_engine_same_run']:.3f} x (drains: "
                f"1 worker {f['cpu_ratio_drain_engine_same_run_1w']:.3f} x, "
                f"2 workers {f['cpu_ratio_drain_engine_same_run_2w']:.3f} x)"
            ),
        ),
        Target(
            "the queue's own CPU per job (empty jobs) < 5% of the engine's per photo",
            lambda f: ratio(f, "queue_cpu_ms_per_job", "cpu_ms_per_photo_engine") < 0.05,
            lambda f: (
                f"{f['queue_cpu_ms_per_job']:.1f} ms = "
                f"{100 * ratio(f, 'queue_cpu_ms_per_job', 'cpu_ms_per_photo_engine'):.1f}% "
                f"(enqueue {f['queue_cpu_ms_per_job_enqueue']:.1f}, Redis {f['queue_cpu_ms_per_job_redis']:.1f}, "
                f"worker and horse {f['queue_cpu_ms_per_job_workers']:.1f})"
            ),
        ),
        Target(
            "pipeline (2 workers) >= 5 x naive loop",
            lambda f: ratio(f, "pipeline_photos_per_s_2w", "naive_photos_per_s") >= 5,
            lambda f: (
                f"{ratio(f, 'pipeline_photos_per_s_2w', 'naive_photos_per_s'):.1f} x "
                f"(1 worker: {ratio(f, 'pipeline_photos_per_s_1w', 'naive_photos_per_s'):.1f} x)"
            ),
        ),
        ratio_target("pipeline (2 workers) >= 2 x CLI --cpus 2", "pipeline_photos_per_s_2w", "cli_photos_per_s", 2),
        Target(
            "pipeline recall >= naive recall (same photos)",
            lambda f: f["pipeline_recall_naive_subset"] >= f["naive_recall"],
            lambda f: (
                f"{f['pipeline_recall_naive_subset']:.3f} vs {f['naive_recall']:.3f} "
                f"on {f['naive_photos']} photos; {f['pipeline_recall']:.3f} on all {f['photos']}"
            ),
        ),
        Target(
            "upload p95 < 100 ms with workers saturated",
            lambda f: f["upload_p95_ms"] < 100,
            lambda f: f"{f['upload_p95_ms']:.0f} ms (blocking server p95 {f['blocking_upload_p95_ms']:.0f} ms)",
        ),
        Target(
            "match vs 100,000 encodings < 10 ms",
            lambda f: f["match_ms_100000"] < 10,
            lambda f: f"{f['match_ms_100000']:.2f} ms",
        ),
        Target(
            "per job, a warm gallery of 100,000 < 10 ms: getting it, and getting it + matching a photo's faces",
            lambda f: f["gallery_load_ms_100000"] < 10 and f["match_overhead_ms_100000"] < 10,
            lambda f: (
                f"{f['gallery_load_ms_100000']:.2f} ms, {f['match_overhead_ms_100000']:.1f} ms (in a forked horse "
                f"{f['match_overhead_forked_ms_100000']:.1f} ms; "
                f"from the database {f['match_overhead_cold_ms_100000']:.0f} ms)"
            ),
        ),
        Target(
            "reprocess --all enqueues > 5,000 photos/s",
            lambda f: f["reprocess_enqueue_per_s"] > 5000,
            lambda f: f"{f['reprocess_enqueue_per_s']:,.0f} /s",
        ),
        Target(
            "accuracy: 4/4 true matches, <= 2/100 strangers",
            lambda f: f["true_matches"] == f["true_probes"] and f["stranger_false_matches"] <= 2,
            lambda f: f"{f['true_matches']}/{f['true_probes']}, {f['stranger_false_matches']}/{f['strangers']}",
        ),
        Target(
            "small faces: found at 110 px, encoded within 0.12 of full size at 110 px and up",
            lambda f: (
                f["recall_110px"] == 1.0
                and all(f[f"encoding_self_distance_{w}px"] <= 0.12 for w in encoding.WIDTHS if w >= 110)
            ),
            lambda f: (
                f"recall {f['recall_110px']:.2f}; distance "
                + ", ".join(f"{f[f'encoding_self_distance_{w}px']:.3f} at {w}" for w in encoding.WIDTHS)
            ),
        ),
        Target(
            "grouping: pure 1.0, no stranger group, recall >= 0.8 (with portrait variants too)",
            grouping_holds,
            lambda f: (
                f"pure {f['groups_pure']:.2f} / {f['groups_pure_variants']:.2f}, "
                f"recall {f['groups_recall']:.2f} / {f['groups_recall_variants']:.2f}, "
                f"stranger groups {f['stranger_groups']} / {f['stranger_groups_variants']}"
            ),
        ),
        Target(
            "group one photo's faces against 100,000 < 100 ms",
            lambda f: f["group_incremental_ms_100000"] < 100,
            lambda f: f"{f['group_incremental_ms_100000']:.0f} ms (10,000: {f['group_incremental_ms_10000']:.0f} ms)",
        ),
        Target(
            "full regrouping of 100,000 faces < 60 s and < 1 GB",
            lambda f: f["group_full_s_100000"] < 60 and f["group_full_mb_100000"] < 1024,
            lambda f: f"{f['group_full_s_100000']:.1f} s, {f['group_full_mb_100000']:.0f} MB",
        ),
        Target(
            f"whole run < {plan.budget_s // 60} min",
            lambda f: f["bench_seconds"] < plan.budget_s,
            lambda f: f"{f['bench_seconds'] / 60:.1f} min",
        ),
    ]


# (key, what it is, format); a key missing from the figures is left out.
ROWS = [
    ("engine_photos_per_s", "Engine alone (detect_faces loop, 1 process)", "{:.2f} photos/s"),
    ("engine_recall", "Engine recall", "{:.3f}"),
    ("naive_photos_per_s", "Naive loop (full size, defaults)", "{:.3f} photos/s"),
    ("naive_recall", "Naive loop recall", "{:.3f}"),
    ("cli_photos_per_s", "face_recognition CLI --cpus 2", "{:.2f} photos/s"),
    ("cli_recall", "CLI recall (by face count)", "{:.3f}"),
    ("blocking_upload_p50_ms", "Blocking server upload p50 (4 clients)", "{:,.0f} ms"),
    ("blocking_upload_p95_ms", "Blocking server upload p95", "{:,.0f} ms"),
    ("blocking_photos_per_s", "Blocking server throughput (2 gunicorn workers)", "{:.2f} photos/s"),
    ("pipeline_photos_per_s_1w", "Pipeline, upload to done, 1 worker", "{:.2f} photos/s"),
    ("pipeline_photos_per_s_2w", "Pipeline, upload to done, 2 workers", "{:.2f} photos/s"),
    ("pipeline_recall", "Pipeline recall", "{:.3f}"),
    ("engine_photos_per_s_2p", "Engine in 2 processes (no queue)", "{:.2f} photos/s"),
    ("drain_photos_per_s_1w", "Drain of a backlog, 1 worker (birth to last done)", "{:.2f} photos/s"),
    ("drain_photos_per_s_2w", "Drain of a backlog, 2 workers", "{:.2f} photos/s"),
    ("cpu_ms_per_photo_engine", "CPU per photo, engine alone", "{:.0f} ms"),
    ("cpu_ms_per_photo_pipeline", "CPU per photo, pipeline 2 workers (web, workers, horses, Redis)", "{:.0f} ms"),
    ("cpu_ms_per_photo_pipeline_1w", "CPU per photo, pipeline 1 worker", "{:.0f} ms"),
    ("cpu_ms_per_photo_drain_1w", "CPU per photo, drain 1 worker (workers, horses, Redis)", "{:.0f} ms"),
    ("cpu_ms_per_photo_drain_2w", "CPU per photo, drain 2 workers", "{:.0f} ms"),
    ("cpu_ms_per_photo_engine_in_jobs_pipeline_2w", "CPU per photo, the engine in the pipeline's jobs", "{:.0f} ms"),
    ("cpu_ratio_pipeline_engine_same_run", "CPU per photo, pipeline 2 workers / the engine in its jobs", "{:.3f} x"),
    ("client_cpu_ms_per_photo_pipeline_2w", "Load generator's CPU per photo, pipeline 2 workers", "{:.1f} ms"),
    ("client_cpu_ms_per_photo_blocking", "Load generator's CPU per photo, blocking server", "{:.1f} ms"),
    (
        "cpu_ratio_drain_engine_interleaved",
        "CPU per photo, drain 1 worker / engine, rounds interleaved (median)",
        "{:.3f} x",
    ),
    ("job_overhead_ms", "One job's time outside the engine (profiled, table below)", "{:.0f} ms"),
    ("queue_cpu_ms_per_job", "The queue's own CPU per job (empty jobs: enqueue, Redis, worker, horse)", "{:.1f} ms"),
    ("upload_p50_ms", "Upload p50, 4 clients, workers saturated", "{:.0f} ms"),
    ("upload_p95_ms", "Upload p95", "{:.0f} ms"),
    ("upload_p99_ms", "Upload p99", "{:.0f} ms"),
    *[
        row
        for n in (1_000, 10_000, 100_000, 1_000_000)
        for row in (
            (f"match_ms_{n}", f"Gallery.match, {n:,} encodings", "{:.3f} ms"),
            (f"compare_faces_ms_{n}", f"face_recognition.compare_faces, {n:,}", "{:.2f} ms"),
            (f"gallery_mb_{n}", f"Gallery memory, {n:,}", "{:.1f} MB"),
        )
    ],
    *[
        row
        for n in (1_000, 10_000, 100_000)
        for row in (
            (f"gallery_load_cold_ms_{n}", f"Gallery.for_owner, {n:,} references, from the database", "{:.1f} ms"),
            (f"gallery_load_ms_{n}", f"Gallery.for_owner, {n:,}, cached (version checked)", "{:.2f} ms"),
            (f"match_overhead_ms_{n}", f"Per job: cached gallery + match a photo's 3 faces, {n:,}", "{:.2f} ms"),
            (f"match_overhead_forked_ms_{n}", f"The same in a forked work horse, {n:,}", "{:.2f} ms"),
            (f"match_overhead_cpu_ms_{n}", f"The same, CPU time (warm, not forked), {n:,}", "{:.2f} ms"),
            (f"match_overhead_cold_ms_{n}", f"Per job before the cache (load + match), {n:,}", "{:.1f} ms"),
        )
    ],
    ("reprocess_enqueue_per_s", "manage.py reprocess --all (20,000+ rows)", "{:,.0f} photos/s"),
    ("reprocess_command_s", "reprocess --all, whole command", "{:.1f} s"),
    ("worker_rss_mb", "Worker parent peak RSS", "{:.0f} MB"),
    ("horse_rss_mb", "Work horse peak RSS (shared pages included)", "{:.0f} MB"),
    ("horse_private_mb", "Work horse peak private memory", "{:.0f} MB"),
    ("s3_put_ms_p50", "S3 PUT of a 4 MB photo (django-storages, moto server), p50", "{:.1f} ms"),
    ("s3_get_ms_p50", "S3 GET of a 4 MB photo (one streamed GET), p50", "{:.1f} ms"),
    ("pipeline_photos_per_s_local_media", "Pipeline, 2 workers, media on local disk", "{:.2f} photos/s"),
    ("pipeline_photos_per_s_s3_media", "Pipeline, 2 workers, media on S3 (same photos)", "{:.2f} photos/s"),
    ("true_matches", "Accuracy: true matches (of 4)", "{}"),
    ("groups_pure", "Grouping: shown groups holding one person", "{:.3f}"),
    ("groups_recall", "Grouping: faces of people with 3+ faces in their group", "{:.3f}"),
    ("stranger_groups", "Grouping: groups of strangers (1,000 portraits)", "{}"),
    ("groups_pure_variants", "Grouping with 2 variants per portrait: pure", "{:.3f}"),
    ("groups_recall_variants", "Grouping with variants: recall", "{:.3f}"),
    ("stranger_groups_variants", "Grouping with variants: stranger groups", "{}"),
    ("group_incremental_ms_10000", "Group one photo's faces, 10,000 faces", "{:.1f} ms"),
    ("group_incremental_ms_100000", "Group one photo's faces, 100,000 faces", "{:.1f} ms"),
    ("group_full_s_10000", "Full regrouping, 10,000 faces", "{:.1f} s"),
    ("group_full_s_100000", "Full regrouping, 100,000 faces", "{:.1f} s"),
    ("group_full_mb_100000", "Full regrouping, 100,000 faces, peak RSS", "{:.0f} MB"),
    ("stranger_false_matches", "Accuracy: strangers matched (of 100)", "{}"),
    *[
        row
        for w in encoding.WIDTHS
        for row in (
            (f"recall_{w}px", f"Faces {w} px wide in a 4032x3024 photo: share found", "{:.2f}"),
            (f"encoding_self_distance_{w}px", f"Faces {w} px wide: encoding to full size (median)", "{:.3f}"),
        )
    ],
    ("bench_seconds", "Whole run", "{:.0f} s"),
]


def table(figures: dict, checks: list[dict]) -> str:
    lines = ["| Figure | Key | Value |", "|---|---|---|"]
    for key, label, fmt in ROWS:
        if key in figures:
            lines.append(f"| {label} | `{key}` | {fmt.format(figures[key])} |")
    if not checks:
        return "\n".join(lines)
    lines += ["", "| Target | Measured | Holds |", "|---|---|---|"]
    for check in checks:
        lines.append(f"| {check['target']} | {check['measured']} | {'yes' if check['holds'] else '**no**'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20 photos and fewer naive runs: under 3 minutes")
    parser.add_argument("--output", type=Path, default=None, help=f"default {RESULTS}, or results/PART.json")
    parser.add_argument("--only", choices=sorted(PARTS), help="run only this part (and the work set it needs)")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    args.output = args.output or (RESULTS.parent / f"{args.only}.json" if args.only else RESULTS)
    adopt_orphans()
    info = machine()
    figures = measure_part(plan, args.only) if args.only else measure(plan)
    checks = []
    for target in targets(plan):
        if args.only and target.name.startswith("whole run"):
            continue  # a part is not the whole run
        try:
            checks.append({"target": target.name, "measured": target.detail(figures), "holds": target.holds(figures)})
        except KeyError as exc:  # a contender that did not run
            if not args.only:  # a part checks only the targets it measures
                checks.append({"target": target.name, "measured": f"missing {exc}", "holds": False})
    info["load_average_at_end"] = os.getloadavg()[0]
    mode = "quick" if args.quick else "full"
    naive = f", naive loop on {figures['naive_photos']}" if "naive_photos" in figures else ""
    print(f"\n{info['cpu_model']}, {info['cpu_cores']} cores, {mode} run, {figures['photos']} photos "
          f"({figures['faces_placed']} faces){naive}\n")  # fmt: skip
    print(table(figures, checks))
    shares = {k.removeprefix("others_cpu_share_"): v for k, v in figures.items() if k.startswith("others_cpu_share_")}
    print("\nShare of the machine's CPU that other processes took during each step (noise): "
          + ", ".join(f"{name} {share:.0%}" for name, share in shares.items()))  # fmt: skip
    if "job_overhead_parts" in figures:
        print()
        print(overhead.table(figures))
    if not args.only:
        print()
        print(accuracy.report(figures))
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": mode,
        "machine": info,
        "figures": {k: _plain(v) for k, v in figures.items() if k != "probes"},
        "accuracy_probes": figures.get("probes", {}),
        "targets": checks,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, sort_keys=False) + "\n")
    print(f"\nWrote {args.output}", file=sys.stderr)


def _plain(value):
    """Floats rounded for reading; NaN and infinity as null, which JSON has."""
    if isinstance(value, float):
        return round(value, 4) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


if __name__ == "__main__":
    main()
