"""Contenders that serve HTTP: the blocking server, and the project itself (gunicorn, Redis, RQ workers)."""

from __future__ import annotations

import os
import re
import resource
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil
import redis
from rq import Queue, Worker
from rq.job import Job, JobStatus

from benchmarks import overhead, services, workset
from benchmarks.accuracy import REFERENCES
from benchmarks.local import engine_loop, engine_processes
from benchmarks.services import Client, MemoryWatch, free_port, percentile
from benchmarks.workset import FACES_DIR, WorkPhoto
from jobs import redis_server
from jobs.enqueue import QUEUE_NAMES, UPLOADS, photo_job_id

GUNICORN_WORKERS = 2  # as `manage.py runsite` starts by default


def base_env(tmp: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("DATABASE_URL", None)
    env.update(
        SECRET_KEY=os.environ.get("SECRET_KEY") or "benchmarks-only-not-a-secret",
        SQLITE_PATH=str(tmp / "db.sqlite3"),
        MEDIA_ROOT=str(tmp / "media"),
        VAR_DIR=str(tmp / "var"),
        UPLOAD_RATE_LIMIT="1000000/hour",
        SECURE_COOKIES="0",
        LOG_LEVEL="WARNING",
    )
    env.update({"DJANGO_SETTINGS_MODULE": "photosite.settings", **extra})
    return env


def gunicorn(app: str, port: int, env: dict[str, str], log: Path, *extra: str):
    command = [sys.executable, "-m", "gunicorn", app, "--bind", f"127.0.0.1:{port}",
               "--workers", str(GUNICORN_WORKERS), "--timeout", "300", *extra]  # fmt: skip
    process = services.start(command, env, log)

    def answers() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited; see {log}")
        try:
            Client(port).get("/")
            return True
        except OSError:
            return False

    services.wait_for(answers, 120, f"gunicorn on port {port}", interval=0.2)
    return process


def blocking_server(folder: Path, photos: list[WorkPhoto], clients: int = 4) -> dict:
    """Upload latency when the view itself detects, encodes and matches (4 concurrent clients)."""
    with tempfile.TemporaryDirectory(prefix="bench-blocking-") as tmp:
        env = base_env(Path(tmp), DJANGO_SETTINGS_MODULE="benchmarks.blocking_settings")
        port = free_port()
        process = gunicorn("benchmarks.blocking:application", port, env, Path(tmp, "gunicorn.log"), "--preload")
        try:
            client = Client(port)
            started, own = time.perf_counter(), client_cpu_seconds()
            replies = services.upload_all(client, "/upload/", [p.path(folder) for p in photos], clients)
            seconds = time.perf_counter() - started
            own = client_cpu_seconds() - own
        finally:
            services.stop(process)
    bad = [r for r in replies if r.status != 200]
    if bad:
        raise RuntimeError(f"blocking server answered {bad[0].status}: {bad[0].body[:300]!r}")
    found = {photo.name: [f["box"] for f in r.json()["faces"]] for photo, r in zip(photos, replies, strict=True)}
    latencies = [r.ms for r in replies]
    return {
        "blocking_upload_p50_ms": percentile(latencies, 50),
        "blocking_upload_p95_ms": percentile(latencies, 95),
        "blocking_photos_per_s": len(photos) / seconds,
        "client_cpu_ms_per_photo_blocking": own * 1000 / len(photos),
        "blocking_recall": workset.recall(photos, found),
        "blocking_uploads": len(photos),
    }


class Site:
    """The project on a fresh database and media folder: embedded Redis, gunicorn, RQ workers."""

    def __init__(self, **media_env: str) -> None:
        """media_env: settings of the media storage (S3_*), local disk without them."""
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-site-"))
        self.redis_port, self.web_port = free_port(), free_port()
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.env = base_env(self.tmp, REDIS_URL=self.redis_url, **media_env)
        self.processes = []
        self.workers = []
        self.memory = MemoryWatch()

    def log(self, name: str) -> Path:
        return self.tmp / f"{name}.log"

    def __enter__(self) -> Site:
        try:
            with self.log("redis").open("w") as log:
                server = redis_server.start(
                    self.redis_port, self.tmp / "redis", stdout=log, stderr=log, start_new_session=True
                )
            self.processes.append(server)
            services.manage("migrate", "--noinput", env=self.env)
            # As `manage.py runsite` serves the site: 4 threads per web worker.
            self.web = gunicorn("photosite.wsgi", self.web_port, self.env, self.log("gunicorn"), "--threads", "4")
            self.processes.append(self.web)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, exc_type=None, *exc) -> None:
        for process in reversed(self.processes + self.workers):
            services.stop(process)
        if exc_type is None:
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:  # keep the logs of what went wrong
            print(f"benchmark site failed; logs and data kept in {self.tmp}", file=sys.stderr)

    @property
    def sqlite_path(self) -> str:
        return self.env["SQLITE_PATH"]

    def user(self, username: str) -> Client:
        """A new user with an API token (manage.py drf_create_token)."""
        script = f"from django.contrib.auth import get_user_model; get_user_model().objects.create_user({username!r})"
        services.manage("shell", "-c", script, env=self.env)
        output = services.manage("drf_create_token", username, env=self.env)
        token = output.split()[2]  # "Generated token <key> for user <name>"
        return Client(self.web_port, token)

    def start_workers(self, count: int, *args: str, **env: str) -> float:
        """Start `count` workers (extra rqworker arguments and environment); returns the earliest one's birth,
        the moment it started taking jobs (its models are loaded by then)."""
        connection = redis.Redis.from_url(self.redis_url)
        names = {f"bench-{time.monotonic_ns()}-{number}" for number in range(count)}
        for name in names:
            # As runsite starts them: with the scheduler (one of them holds its lock and runs it).
            command = [*services.MANAGE, "rqworker", *QUEUE_NAMES, "--with-scheduler", "--name", name, *args]
            self.workers.append(services.start(command, {**self.env, **env}, self.log(name)))

        def registered() -> bool:
            return names <= {worker.name for worker in Worker.all(connection=connection)}

        services.wait_for(registered, 120, "workers to register", interval=0.05)
        births = [w.birth_date for w in Worker.all(connection=connection) if w.name in names and w.birth_date]
        return min(birth.replace(tzinfo=UTC).timestamp() for birth in births)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds of every process of the site by role: Redis, web (gunicorn and its workers), workers (the
        RQ workers, their work horses and scheduler; a child that ended and was reaped counts in its parent's
        children's times)."""
        roles = {"redis": self.processes[:1], "web": self.processes[1:], "workers": self.workers}
        return {role: sum(_tree_cpu(process.pid) for process in processes) for role, processes in roles.items()}

    def stop_workers(self) -> None:
        for process in self.workers:
            services.stop(process)
        self.workers = []

    def add_people(self, client: Client) -> None:
        """Obama, Biden and Hayes as this user's known people; waits until their references are encoded."""
        people = []
        for name, relative in REFERENCES.items():
            person = client.post_json("/api/people/", {"name": name}).json()
            path = FACES_DIR / relative
            reply = client.upload(f"/api/people/{person['id']}/references/", path.name, path.read_bytes())
            assert reply.status == 202, reply.body
            people.append(person["id"])

        def encoded() -> bool:
            return all(client.get(f"/api/people/{pk}/").json()["references"][0]["status"] == "done" for pk in people)

        services.wait_for(encoded, 120, "reference encodings", interval=0.3)

    def user_with_people(self, username: str) -> Client:
        """A new user whose known people are encoded, by a worker started for that and stopped again: the
        user's photos can then wait as a backlog for the workers a step starts."""
        client = self.user(username)
        self.start_workers(1)
        self.add_people(client)
        self.stop_workers()
        return client

    def pipeline_run(
        self, username: str, workers: int, folder: Path, photos: list[WorkPhoto], clients: int = 4
    ) -> dict:
        """A new user uploads every photo while `workers` workers (started first, their people encoded)
        take them: run_uploads' figures, the workers stopped afterwards."""
        client = self.user(username)
        self.start_workers(workers)
        self.add_people(client)
        run = self.run_uploads(client, folder, photos, clients)
        self.stop_workers()
        return run

    def finished(self, ids: list[int]) -> list[tuple[int, str, str | None]]:
        with sqlite3.connect(self.sqlite_path, timeout=30) as db:
            marks = ",".join("?" * len(ids))
            return db.execute(
                f"SELECT id, status, processed_at FROM recognition_photo WHERE id IN ({marks}) "  # noqa: S608
                "AND status IN ('done', 'failed')",
                ids,
            ).fetchall()

    def run_uploads(self, client: Client, folder: Path, photos: list[WorkPhoto], clients: int = 4) -> dict:
        """Upload every photo from `clients` concurrent clients; time from the first upload to the last done."""
        pids = [p.pid for p in self.workers]
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                self.memory.sample(pids)
                time.sleep(0.25)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        cpu, own = self.cpu_seconds(), client_cpu_seconds()
        started = time.time()
        try:
            replies = self.upload(client, folder, photos, clients)
            ids = [r.json()["id"] for r in replies]
            last = self.wait_until_done(ids)
        finally:
            stop.set()
            watcher.join()
        return {
            "photos_per_s": len(photos) / (last - started),
            "cpu_ms_per_photo": _spent(cpu, self.cpu_seconds(), len(photos)),
            "client_cpu_ms_per_photo": (client_cpu_seconds() - own) * 1000 / len(photos),
            "engine_cpu_ms": self.engine_cpu_ms(ids),
            "latencies": [r.ms for r in replies],
            **self.outcome(client, photos, ids),
        }

    def upload(self, client: Client, folder: Path, photos: list[WorkPhoto], clients: int = 4) -> list:
        replies = services.upload_all(client, "/api/photos/", [p.path(folder) for p in photos], clients)
        bad = [r for r in replies if r.status != 202]
        if bad:
            raise RuntimeError(f"upload answered {bad[0].status}: {bad[0].body[:300]!r}")
        return replies

    def wait_until_done(self, ids: list[int]) -> float:
        """Wait until every photo is done or failed; when the last one was, and its horse was reaped."""
        services.wait_for(lambda: len(self.finished(ids)) == len(ids), 1800, "photos processed", interval=0.1)
        time.sleep(0.5)  # the last work horse exits and its worker reaps it: its CPU time is then counted
        rows = self.finished(ids)
        return max(datetime.fromisoformat(at).replace(tzinfo=UTC).timestamp() for _, _, at in rows if at)

    def engine_cpu_ms(self, ids: list[int]) -> float:
        """The engine's CPU time per photo inside these photos' jobs, from their results: measured in the
        same processes at the same moments as the run's CPU, so the ratio of the two does not drift with
        this machine's speed as a loop run minutes apart does."""
        connection = redis.Redis.from_url(self.redis_url)
        jobs = Job.fetch_many([photo_job_id(pk) for pk in ids], connection=connection)
        results = [job.return_value() for job in jobs if job]
        spent = [result["engine_cpu_ms"] for result in results if result]
        if len(spent) != len(ids):
            raise RuntimeError(f"{len(ids) - len(spent)} photo jobs left no result")
        return sum(spent) / len(spent)

    def outcome(self, client: Client, photos: list[WorkPhoto], ids: list[int]) -> dict:
        failed = [pk for pk, status, _ in self.finished(ids) if status == "failed"]
        found = {}
        for photo, pk in zip(photos, ids, strict=True):
            found[photo.name] = [face["box"] for face in client.get(f"/api/photos/{pk}/").json()["faces"]]
        return {"failed": len(failed), "boxes": found}

    def drain(self, client: Client, folder: Path, photos: list[WorkPhoto], workers: int, *args: str, **env: str):
        """Upload every photo with no worker running, then start `workers` and time them from the first one's
        birth to the last photo done: the queue's throughput without uploads competing for the cores."""
        ids = [r.json()["id"] for r in self.upload(client, folder, photos)]
        born = self.start_workers(workers, *args, **env)
        cpu = self.cpu_seconds()  # from the workers' birth: their start (Django, the models) is not per photo
        last = self.wait_until_done(ids)
        cpu = _spent(cpu, self.cpu_seconds(), len(photos))
        self.stop_workers()
        return {"photos_per_s": len(photos) / (last - born), "seconds": last - born, "cpu": cpu,
                "engine_cpu_ms": self.engine_cpu_ms(ids), **self.outcome(client, photos, ids)}  # fmt: skip

    def reprocess_all(self, rows: int) -> dict:
        """Time `manage.py reprocess --all` over `rows` photo rows (made directly, no files behind them)."""
        script = (
            "from django.contrib.auth import get_user_model\n"
            "from recognition.models import Photo\n"
            "owner = get_user_model().objects.create_user('bulk')\n"
            f"Photo.objects.bulk_create([Photo(owner=owner, image=f'photos/bulk/{{i}}.jpg', status='done', "
            f"sha256=f'{{i:064x}}') for i in range({rows})], batch_size=2000)\n"
        )
        services.manage("shell", "-c", script, env=self.env)
        connection = redis.Redis.from_url(self.redis_url)
        before = connection.llen("rq:queue:low")
        started = time.perf_counter()
        output = services.manage("reprocess", "--all", env=self.env)
        wall = time.perf_counter() - started
        queued = connection.llen("rq:queue:low") - before
        # The command prints "N photos queued on the low queue in S s (R photos/s)": its own clock, from the
        # first batch to the last, without Python and Django starting up. R is from the unrounded seconds.
        rate = re.search(r"\(([\d,]+) photos/s\)", output)
        if rate is None:
            raise RuntimeError(f"reprocess printed no rate: {output[-300:]!r}")
        return {
            "reprocess_enqueue_per_s": float(rate[1].replace(",", "")),
            "reprocess_command_s": wall,
            "reprocess_rows": queued,
        }


def client_cpu_seconds() -> float:
    """CPU seconds of this process, every thread: the load generator's uploads, polling and memory samples.
    Not counted in the contenders' CPU per photo, but it runs on the same cores, so it is printed beside it."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _tree_cpu(pid: int) -> float:
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for member in tree:
        try:
            times = member.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def _spent(before: dict[str, float], after: dict[str, float], photos: int) -> dict[str, float]:
    """CPU milliseconds per photo by role, and all of them."""
    spent = {role: (after[role] - before[role]) * 1000 / photos for role in after}
    return {"all": sum(spent.values()), **spent}


def pipeline(folder: Path, photos: list[WorkPhoto], reprocess_rows: int, clients: int = 4) -> dict:
    """Throughput with 1 then 2 workers, upload latency while they are saturated, memory, CPU, bulk enqueue;
    then the drain of a backlog by 1 and 2 workers."""
    figures: dict = {}
    with Site() as site:
        latencies: list[float] = []
        boxes: dict = {}
        for workers in (1, 2):
            run = site.pipeline_run(f"bench{workers}w", workers, folder, photos, clients)
            figures[f"pipeline_photos_per_s_{workers}w"] = run["photos_per_s"]
            figures[f"pipeline_failed_{workers}w"] = run["failed"]
            figures[f"client_cpu_ms_per_photo_pipeline_{workers}w"] = run["client_cpu_ms_per_photo"]
            figures[f"cpu_ms_per_photo_engine_in_jobs_pipeline_{workers}w"] = run["engine_cpu_ms"]
            for role, ms in run["cpu_ms_per_photo"].items():
                suffix = "" if role == "all" else f"_{role}"
                figures[f"cpu_ms_per_photo_pipeline_{workers}w{suffix}"] = ms
            latencies += run["latencies"]
            boxes = run["boxes"]
        figures["cpu_ms_per_photo_pipeline"] = figures["cpu_ms_per_photo_pipeline_2w"]
        figures["cpu_ratio_pipeline_engine_same_run"] = (
            figures["cpu_ms_per_photo_pipeline_2w"] / figures["cpu_ms_per_photo_engine_in_jobs_pipeline_2w"]
        )
        figures["pipeline_recall"] = workset.recall(photos, boxes)
        figures["pipeline_boxes"] = boxes
        figures["upload_p50_ms"] = percentile(latencies, 50)
        figures["upload_p95_ms"] = percentile(latencies, 95)
        figures["upload_p99_ms"] = percentile(latencies, 99)
        figures["uploads_timed"] = len(latencies)
        figures["worker_rss_mb"] = site.memory.worker_kb / 1024
        figures["horse_rss_mb"] = site.memory.horse_kb / 1024
        figures["horse_private_mb"] = site.memory.horse_private_kb / 1024
        figures.update(drains(site, folder, photos))
        figures.update(interleaved(site, folder, photos[:INTERLEAVED_PHOTOS]))
        figures.update(paired_throughput(site, folder, photos[:INTERLEAVED_PHOTOS]))
        figures.update(job_overhead(site, folder, photos[:PROFILED_JOBS]))
        figures.update(queue_cost(site))
        figures.update(site.reprocess_all(reprocess_rows))
    return figures


def drains(site: Site, folder: Path, photos: list[WorkPhoto]) -> dict:
    """A backlog drained by 1 then 2 workers. They run at niceness 0 here, as the engine contenders do: this
    measures what the queue costs, not the priority uploads get (WORKER_NICENESS, measured by upload_p95_ms)."""
    figures: dict = {}
    for workers in (1, 2):
        client = site.user_with_people(f"drain{workers}w")
        run = site.drain(client, folder, photos, workers, WORKER_NICENESS="0")
        figures[f"drain_photos_per_s_{workers}w"] = run["photos_per_s"]
        figures[f"drain_failed_{workers}w"] = run["failed"]
        for role, ms in run["cpu"].items():
            figures[f"cpu_ms_per_photo_drain_{workers}w" + ("" if role == "all" else f"_{role}")] = ms
        figures[f"drain_recall_{workers}w"] = workset.recall(photos, run["boxes"])
        figures[f"cpu_ms_per_photo_engine_in_jobs_drain_{workers}w"] = run["engine_cpu_ms"]
        figures[f"cpu_ratio_drain_engine_same_run_{workers}w"] = run["cpu"]["all"] / run["engine_cpu_ms"]
    return figures


INTERLEAVED_PHOTOS = 20
INTERLEAVED_ROUNDS = 3


def interleaved(site: Site, folder: Path, photos: list[WorkPhoto], rounds: int = INTERLEAVED_ROUNDS) -> dict:
    """CPU per photo of the engine loop and of a one-worker drain, one after the other on the same photos,
    `rounds` times. This machine's CPU time per photo drifts by 10-15% over minutes, so steps run minutes
    apart cannot show a 5% difference; each round's ratio can. The median round is the figure."""
    rounds_seen = []
    for number in range(rounds):
        engine = engine_loop(folder, photos)["cpu_ms_per_photo_engine"]
        client = site.user_with_people(f"interleaved{number}")
        run = site.drain(client, folder, photos, 1, WORKER_NICENESS="0")
        drain = run["cpu"]["all"]
        rounds_seen.append({"engine": round(engine, 1), "drain": round(drain, 1), "ratio": round(drain / engine, 4),
                            "engine_in_jobs": round(run["engine_cpu_ms"], 1)})  # fmt: skip
    middle = sorted(rounds_seen, key=lambda r: r["ratio"])[len(rounds_seen) // 2]
    return {
        "cpu_ratio_drain_engine_interleaved": middle["ratio"],
        "cpu_ms_per_photo_engine_interleaved": middle["engine"],
        "cpu_ms_per_photo_drain_interleaved": middle["drain"],
        "interleaved_rounds": rounds_seen,
    }


def paired_throughput(site: Site, folder: Path, photos: list[WorkPhoto], rounds: int = INTERLEAVED_ROUNDS) -> dict:
    """The two throughput goals with both sides run one right after the other on the same photos, `rounds`
    times: a drain by 2 workers against the engine in 2 processes, the pipeline with 2 workers against the
    blocking server. This machine's speed drifts by 10% within minutes (the engine's CPU per photo inside
    the jobs of one full run went from 597 to 684 ms), more than the goals' 5%, so contenders run minutes
    apart cannot show them; each round's ratio can, and the median round is the figure."""
    seen = []
    for number in range(rounds):
        engine = engine_processes(folder, photos, 2)["engine_photos_per_s_2p"]
        client = site.user_with_people(f"paired-drain{number}")
        drain = site.drain(client, folder, photos, 2, WORKER_NICENESS="0")["photos_per_s"]
        pipeline = site.pipeline_run(f"paired-pipeline{number}", 2, folder, photos)["photos_per_s"]
        blocking = blocking_server(folder, photos)["blocking_photos_per_s"]
        seen.append({"engine_2p": round(engine, 3), "drain_2w": round(drain, 3),
                     "drain_ratio": round(drain / engine, 4), "pipeline_2w": round(pipeline, 3),
                     "blocking": round(blocking, 3), "pipeline_ratio": round(pipeline / blocking, 4)})  # fmt: skip

    def median(key: str) -> float:
        return sorted(r[key] for r in seen)[len(seen) // 2]

    return {
        "drain_2w_engine_2p_ratio_paired": median("drain_ratio"),
        "pipeline_blocking_ratio_paired": median("pipeline_ratio"),
        "paired_rounds": seen,
        "paired_photos": len(photos),
    }


PROFILED_JOBS = 10


def job_overhead(site: Site, folder: Path, photos: list[WorkPhoto]) -> dict:
    """A backlog drained by one profiling worker (benchmarks/overhead.py): one job's time, part by part."""
    client = site.user_with_people("profiled")
    directory = site.tmp / "profiles"
    directory.mkdir()
    run = site.drain(client, folder, photos, 1, "--worker-class", "benchmarks.overhead.ProfiledWorker",
               WORKER_NICENESS="0", BENCH_PROFILE_DIR=str(directory))  # fmt: skip
    return overhead.breakdown(directory, redis_ms=run["cpu"]["redis"])


EMPTY_JOBS = 300


def queue_cost(site: Site, jobs: int = EMPTY_JOBS) -> dict:
    """The queue's own CPU per job, unprofiled: `jobs` jobs that do nothing, put on the photo queue with RQ's
    enqueue (as uploads are) while one worker waits, and run by it to the last: the enqueue in this process,
    Redis, the worker parent and its work horses (forked and replaced as in production), the figures each job
    records. A photo job costs this plus its own work (detection and encoding, storage, renditions, the database)."""
    site.start_workers(1, WORKER_NICENESS="0")
    connection = redis.Redis.from_url(site.redis_url)
    queue = Queue(UPLOADS, connection=connection)
    before = site.cpu_seconds()
    began = time.process_time()
    for _ in range(jobs):
        last = queue.enqueue("benchmarks.overhead.empty_job")
    enqueue_s = time.process_time() - began
    # One worker takes them in order: the last one finished, all are.
    services.wait_for(lambda: last.get_status(refresh=True) == JobStatus.FINISHED, 300, "empty jobs", interval=0.05)
    spent = _spent(before, site.cpu_seconds(), jobs)
    site.stop_workers()
    return {
        "queue_cpu_ms_per_job": spent["workers"] + spent["redis"] + enqueue_s * 1000 / jobs,
        "queue_cpu_ms_per_job_enqueue": enqueue_s * 1000 / jobs,
        "queue_cpu_ms_per_job_redis": spent["redis"],
        "queue_cpu_ms_per_job_workers": spent["workers"],
        "queue_jobs": jobs,
    }
