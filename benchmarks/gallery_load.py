"""What a job pays to get its owner's gallery and match a photo's faces, for galleries of 1,000 to 100,000
references: read from the database (cold), and from the process's cache once warm (version check included).

On a database of its own (SQLite, subprocesses): one user with one reference per person (the worst case
for the per-person minimum, as match_ms_<n>): the stored encodings of ../shared/faces first (the 1,023
faces of benchmarks/accuracy's cache), then synthetic ones for volume (a real encoding moved about 0.65
away: another person). The probes are the 3 faces of a photo: real encodings moved 0.3 away.

    gallery_load_cold_ms_<n>    Gallery.for_owner with nothing cached: the version, then every reference
    gallery_load_ms_<n>         the same once cached: one query for the version, then the cached gallery
    match_overhead_ms_<n>       per job: gallery_load_ms + matching the photo's 3 faces (Gallery.match)
    match_overhead_cold_ms_<n>  the same with a cold gallery (what every job paid before the cache)
    match_overhead_forked_ms_<n>  the same in a work horse forked after its parent warmed the gallery, as
                                FaceWorker does (after the horse's first query of its own)
    *_cpu_ms_<n>                the CPU time of the same (steadier than wall time on a shared machine)

Wall figures are the fastest of repeated runs (timeit's advice), CPU figures the mean.

    python -m benchmarks.gallery_load
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "photosite.settings")
os.environ.setdefault("SECRET_KEY", "benchmarks-only-not-a-secret")

import django  # noqa: E402

django.setup()

from benchmarks import accuracy, services  # noqa: E402
from benchmarks.workset import CACHE_DIR, portrait_files  # noqa: E402
from recognition import engine  # noqa: E402

SIZES = (1_000, 10_000, 100_000)
PEOPLE_AND_GROUPS = ["people/obama/portrait_2012.jpg", "people/biden/vp_portrait_2013.jpg", "groups/obama_biden.jpg"]


def real_encodings() -> np.ndarray:
    found = accuracy.encodings(portrait_files() + PEOPLE_AND_GROUPS)
    return np.stack([np.asarray(vector, dtype=np.float32) for faces in found.values() for vector in faces])


def moved(vectors: np.ndarray, distance: float, rng: np.random.Generator) -> np.ndarray:
    offsets = rng.normal(0, 1, vectors.shape)
    return (vectors + offsets / np.linalg.norm(offsets, axis=1, keepdims=True) * distance).astype(np.float32)


def volume(count: int, seed: int = 12) -> tuple[np.ndarray, int]:
    """count encodings, the real ones first; and how many of them are real."""
    real = real_encodings()
    taken = min(count, len(real))
    rng = np.random.default_rng(seed)
    synthetic = moved(real[rng.integers(len(real), size=count - taken)], 0.65, rng)
    return np.concatenate([real[:taken], synthetic]), taken


def checkpoint(count: int) -> dict:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        cursor.execute("PRAGMA journal_mode=DELETE")
    return {}


def populate(count: int) -> dict:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from recognition.models import Person, ReferencePhoto, ReferenceStatus

    call_command("migrate", verbosity=0)
    owner = get_user_model().objects.create_user("bench")
    vectors, _ = volume(count)
    for start in range(0, count, 5000):
        people = Person.objects.bulk_create(
            [Person(owner=owner, name=f"p{k}") for k in range(start, min(start + 5000, count))]
        )
        ReferencePhoto.objects.bulk_create(
            [
                ReferencePhoto(
                    person=person,
                    image="references/b/r.jpg",
                    status=ReferenceStatus.DONE,
                    encoding=engine.encoding_to_bytes(vectors[start + k]),
                )  # fmt: skip
                for k, person in enumerate(people)
            ],
            batch_size=1000,
        )
    return {}


def _timed(call: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Fastest wall milliseconds and mean CPU milliseconds of call() over repeats runs."""
    walls = []
    cpu = time.process_time()
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        walls.append((time.perf_counter() - started) * 1000)
    return min(walls), (time.process_time() - cpu) * 1000 / repeats


def measure(count: int) -> dict:
    from django.core.management import call_command
    from django.db import connections

    from recognition.matching import GALLERIES, Gallery
    from recognition.models import Person

    call_command("migrate", verbosity=0)  # a database made before the latest migrations
    owner_id = Person.objects.values_list("owner_id", flat=True).first()
    real = min(count, len(real_encodings()))
    rng = np.random.default_rng(4)
    probes = moved(real_encodings()[rng.integers(1000, size=3)], 0.3, rng)
    repeats = 5 if count >= 100_000 else 20

    def cold() -> Gallery:
        GALLERIES.clear()
        return Gallery.for_owner(owner_id)

    def job(gallery: Callable[[], Gallery]) -> None:
        gallery().match(probes)

    warm = lambda: Gallery.for_owner(owner_id)  # noqa: E731
    figures = {"real": real}
    figures["gallery_load_cold_ms"], figures["gallery_load_cold_cpu_ms"] = _timed(cold, repeats)
    figures["match_overhead_cold_ms"], figures["match_overhead_cold_cpu_ms"] = _timed(lambda: job(cold), repeats)
    Gallery.for_owner(owner_id)
    figures["gallery_load_ms"], figures["gallery_load_cpu_ms"] = _timed(warm, 200)
    figures["match_overhead_ms"], figures["match_overhead_cpu_ms"] = _timed(lambda: job(warm), 200)
    assert len(Gallery.for_owner(owner_id)) == count
    figures["gallery_cache_mb"] = GALLERIES.nbytes / 2**20

    # As FaceWorker: the parent has the gallery; each job's horse is forked with no database connection.
    forked = []
    for _ in range(10):
        Gallery.for_owner(owner_id)
        connections.close_all()
        reader, writer = os.pipe()
        pid = os.fork()
        if pid == 0:  # the work horse
            # A job's first query (SQLite reads the schema of a new connection) is the job's cost, not ours.
            Person.objects.exists()
            wall, cpu = _timed(lambda: job(warm), 1)
            os.write(writer, json.dumps([wall, cpu]).encode())
            os._exit(0)
        os.close(writer)
        with os.fdopen(reader) as answer:
            forked.append(json.loads(answer.read()))
        os.waitpid(pid, 0)
    figures["match_overhead_forked_ms"] = min(wall for wall, _ in forked)
    figures["match_overhead_forked_cpu_ms"] = float(np.mean([cpu for _, cpu in forked]))
    return figures


def child(step: str, count: int, database: str) -> dict:
    return services.run_step("benchmarks.gallery_load", database, "--step", step, "--references", str(count))


def database_of(count: int) -> Path:
    """The populated database, made once per size and engine (a few minutes at 100,000 on 2 busy cores)."""
    path = CACHE_DIR / f"galleries-{count}-{accuracy._engine_key()}.sqlite3"
    if not path.exists():
        with tempfile.TemporaryDirectory(dir=CACHE_DIR) as folder:
            database = Path(folder) / "db.sqlite3"
            child("populate", count, str(database))
            child("checkpoint", count, str(database))  # one file, without its write-ahead log
            database.rename(path)
    return path


def run(sizes: tuple[int, ...] = SIZES) -> dict:
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    real_encodings()  # fills the cache once, before the children read it
    figures = {}
    for count in sizes:
        measured = child("measure", count, str(database_of(count)))
        figures[f"gallery_real_references_{count}"] = measured.pop("real")
        for key, value in measured.items():
            figures[f"{key}_{count}"] = value
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--step", choices=("populate", "checkpoint", "measure"))
    parser.add_argument("--references", type=int, default=10_000)
    args = parser.parse_args()
    if args.step:
        steps = {"populate": populate, "checkpoint": checkpoint, "measure": measure}
        print(json.dumps(steps[args.step](args.references)))
        return
    print(json.dumps(run(), indent=1))


if __name__ == "__main__":
    main()
