"""Grouping unknown faces ("Who is this?"): quality on ../shared/faces, cost on 10,000 and 100,000 faces.

Quality, nobody known: every face of people/, groups/ and the 1,000 portraits is clustered with the
project's rule (recognition.grouping.cluster, the settings' thresholds). Obama and Biden have three or
more faces in the set and must each form one group; the portraits are 1,000 different people with one
photo each and must form no group. Then again with two variants of every portrait (crop, scale, blur,
light, flip; two of them each), so that each portrait is a person with three faces who should form a
group of their own: leaving faces alone is no longer free.

    groups_pure      shown groups (>= FACES_GROUP_MIN_FACES faces) that hold one person only
    groups_recall    faces of the people with >= 3 faces that are in their person's largest group
    stranger_groups  shown groups whose faces are mostly of people with fewer than 3 faces

Cost, on a database of its own (SQLite, subprocesses): the stored encodings of the set (the 1,023 real
faces and their 2,000 variants) plus synthetic people for volume (a real encoding moved about 0.65 away
makes a new person; their faces scatter about 0.35 apart; 40% of faces are strangers seen once).

    group_full_s_<n>         manage.py group_faces --full for one user with n faces (regroup_owner)
    group_full_mb_<n>        peak RSS of that process (Python, Django and numpy included)
    group_incremental_ms_<n> one new photo's 3 faces against those n grouped and ungrouped faces

    python -m benchmarks.grouping [--quick]
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import random
import resource
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "photosite.settings")
os.environ.setdefault("SECRET_KEY", "benchmarks-only-not-a-secret")

import django  # noqa: E402

django.setup()

from PIL import Image, ImageEnhance, ImageFilter, ImageOps  # noqa: E402

from benchmarks import accuracy, services  # noqa: E402
from benchmarks.workset import CACHE_DIR, FACES_DIR, portrait_files  # noqa: E402
from recognition import engine  # noqa: E402
from recognition.grouping import Rule, cluster  # noqa: E402

PEOPLE_AND_GROUPS = sorted(
    str(path.relative_to(FACES_DIR))
    for folder in ("people", "groups")
    for path in (FACES_DIR / folder).rglob("*")
    if path.suffix.lower() in (".jpg", ".jpeg", ".png")
)
REFERENCES = {"obama": "people/obama/portrait_2012.jpg", "biden": "people/biden/vp_portrait_2013.jpg",
              "clinton": "people/clinton/senate.jpg"}  # fmt: skip
OPERATIONS = ("crop", "scale", "blur", "light", "flip")
SIZES = (10_000, 100_000)


# Who is who in the set.


def labelled_faces(found: dict[str, list[np.ndarray]]) -> tuple[np.ndarray, list[str]]:
    """Every face with who it is: a portrait is its file; people/<name>/ is name; in the group photos,
    obama_biden.jpg is Obama (left) and Biden (right), and in the Situation Room photo the faces within
    0.52 of Obama's, Biden's or Clinton's reference are them (0.43-0.50 there, see ../shared/faces/README)."""
    vectors, labels = [], []
    references = {name: found[path][0] for name, path in REFERENCES.items()}
    for relative, faces in found.items():
        for number, vector in enumerate(faces):
            if relative.startswith("portraits/"):
                label = relative
            elif relative.startswith("people/"):
                label = relative.split("/")[1] if number == 0 else f"{relative}#{number}"  # collins' patch
            else:
                distances = {name: float(np.linalg.norm(vector - ref)) for name, ref in references.items()}
                name = min(distances, key=distances.get)
                label = name if distances[name] < 0.52 else f"{relative}#{number}"
            vectors.append(vector)
            labels.append(label)
    return np.stack(vectors).astype(np.float32), labels


def quality(vectors: np.ndarray, labels: list[str], rule: Rule) -> dict:
    found = cluster(vectors, rule)
    members: dict[int, list[str]] = defaultdict(list)
    for label, who in zip(found.tolist(), labels, strict=True):
        if label >= 0:
            members[label].append(who)
    faces_of = Counter(labels)
    people = {who for who, count in faces_of.items() if count >= rule.min_faces}
    shown = [group for group in members.values() if len(group) >= rule.min_faces]
    pure = sum(len(set(group)) == 1 for group in shown)
    best = {who: max((group.count(who) for group in shown), default=0) for who in people}
    strangers = sum(Counter(group).most_common(1)[0][0] not in people for group in shown)
    return {
        "groups_shown": len(shown),
        "groups_pure": pure / len(shown) if shown else 1.0,
        "groups_recall": sum(best.values()) / sum(faces_of[who] for who in people) if people else 1.0,
        "stranger_groups": strangers,
        "people_with_3_faces": len(people),
        "faces": len(labels),
    }


# Variants of the portraits.


def variant(relative: str, number: int) -> bytes:
    """Variant number of a portrait: two of the operations, seeded by file and number."""
    rng = random.Random(f"{relative}:{number}")
    image = ImageOps.exif_transpose(Image.open(FACES_DIR / relative)).convert("RGB")
    for operation in rng.sample(OPERATIONS, 2):
        if operation == "crop":
            dx, dy = (round(side * rng.uniform(0.03, 0.1)) for side in image.size)
            image = image.crop((dx, dy, image.width - rng.randint(0, dx), image.height - rng.randint(0, dy)))
        elif operation == "scale":
            factor = rng.choice((rng.uniform(0.7, 0.85), rng.uniform(1.3, 1.8)))
            image = image.resize((round(image.width * factor), round(image.height * factor)), Image.Resampling.LANCZOS)
        elif operation == "blur":
            image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.8, 1.5)))
        elif operation == "light":
            image = ImageEnhance.Brightness(image).enhance(rng.choice((rng.uniform(0.6, 0.8), rng.uniform(1.2, 1.4))))
            image = ImageEnhance.Contrast(image).enhance(rng.uniform(0.8, 1.2))
        else:
            image = ImageOps.mirror(image)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


def _encode_variant(item: tuple[str, int]) -> tuple[str, list[float] | None]:
    relative, number = item
    faces = engine.detect_faces(variant(relative, number)).faces
    largest = max(faces, key=lambda face: face.box.area, default=None)
    key = f"{relative}@{number}"
    return key, None if largest is None else [float(x) for x in largest.encoding]


def variant_encodings(portraits: list[str], cache_dir: Path = CACHE_DIR) -> dict[str, list[np.ndarray]]:
    """portrait -> encodings of its two variants (those the detector found), cached in cache_dir."""
    path = cache_dir / f"group-variants-{accuracy._engine_key()}.json"
    cache = json.loads(path.read_text()) if path.exists() else {}
    missing = [(relative, number) for relative in portraits for number in (1, 2) if f"{relative}@{number}" not in cache]
    if missing:
        engine.load_models()
        started = time.monotonic()
        with multiprocessing.get_context("fork").Pool(os.cpu_count() or 1) as pool:
            cache.update(pool.map(_encode_variant, missing, chunksize=16))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(cache))
        print(f"encoded {len(missing)} portrait variants in {time.monotonic() - started:.0f} s", file=sys.stderr)
    found = {}
    for relative in portraits:
        vectors = [cache.get(f"{relative}@{number}") for number in (1, 2)]
        found[relative] = [np.asarray(v, dtype=np.float32) for v in vectors if v is not None]
    return found


def run_quality() -> dict:
    rule = Rule.from_settings()
    portraits = portrait_files()
    found = accuracy.encodings(portraits + PEOPLE_AND_GROUPS)
    vectors, labels = labelled_faces(found)
    figures = quality(vectors, labels, rule)
    variants = variant_encodings(portraits)
    extra = [(vector, relative) for relative in portraits for vector in variants[relative]]
    with_variants = quality(
        np.concatenate([vectors, np.stack([vector for vector, _ in extra])]), labels + [who for _, who in extra], rule
    )
    figures.update({f"{key}_variants": value for key, value in with_variants.items()})
    figures.update({"group_distance": rule.link, "group_join_distance": rule.join, "group_join_votes": rule.votes,
                    "group_min_faces": rule.min_faces})  # fmt: skip
    return figures


# Cost, on a database of its own.


def volume(count: int, seed: int = 10) -> np.ndarray:
    """count encodings: the stored real ones (faces and variants) first, then synthetic people."""
    portraits = portrait_files()
    real = list(np.stack([v for faces in accuracy.encodings(portraits + PEOPLE_AND_GROUPS).values() for v in faces]))
    real += [v for faces in variant_encodings(portraits).values() for v in faces]
    rng = np.random.default_rng(seed)
    out = np.empty((count, 128), np.float32)
    taken = min(count, len(real))
    out[:taken] = np.stack(real[:taken])
    position = taken
    while position < count:
        base = real[rng.integers(len(real))]
        offset = rng.normal(0, 1, 128)
        centre = base + offset / np.linalg.norm(offset) * 0.65
        size = 1 if rng.random() < 0.4 else int(min(2 + rng.geometric(0.12), 60))
        size = min(size, count - position)
        out[position : position + size] = centre + rng.normal(0, 0.35 / 16, (size, 128))
        position += size
    return out


def populate(count: int) -> None:
    """A user with count faces (3 per photo), none grouped yet: what a first full regrouping meets."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from recognition.models import Face, Photo, PhotoStatus

    call_command("migrate", verbosity=0)
    owner = get_user_model().objects.create_user("bench")
    vectors = volume(count)
    for start in range(0, count, 3000):
        photos = Photo.objects.bulk_create(
            [
                Photo(owner=owner, image=f"photos/b/{k}.jpg", status=PhotoStatus.DONE, width=900, height=300)
                for k in range(start // 3, (min(start + 3000, count) + 2) // 3)
            ]  # fmt: skip
        )
        faces = [
            Face(
                photo=photos[(k - start) // 3],
                top=0,
                left=300 * (k % 3),
                bottom=200,
                right=300 * (k % 3) + 200,
                encoding=engine.encoding_to_bytes(vectors[k]),
            )  # fmt: skip
            for k in range(start, min(start + 3000, count))
        ]
        Face.objects.bulk_create(faces, batch_size=1000)


def measure_full() -> dict:
    from recognition.grouping import regroup_owner
    from recognition.models import Face

    owner_id = Face.objects.values_list("photo__owner_id", flat=True).first()
    started, cpu = time.perf_counter(), time.process_time()
    result = regroup_owner(owner_id)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "peak_mb": peak_mb, **result}


def measure_incremental(repeats: int = 7) -> dict:
    """One new photo with 3 faces (one of a person seen before, two strangers), grouped; the fastest run."""
    from recognition.grouping import group_new_faces
    from recognition.models import Face, Photo, PhotoStatus

    owner_id = Face.objects.values_list("photo__owner_id", flat=True).first()
    rng = np.random.default_rng(3)
    known = np.stack([engine.encoding_from_bytes(e) for e in Face.objects.filter(group__isnull=False)
                      .values_list("encoding", flat=True)[:repeats]])  # fmt: skip
    times, cpu_times = [], []  # wall clock, and CPU time of this process (what other load does not inflate)
    for repeat in range(repeats):
        photo = Photo.objects.create(owner_id=owner_id, image="photos/b/new.jpg", status=PhotoStatus.DONE)
        vectors = [known[repeat] + rng.normal(0, 0.01, 128), *rng.normal(0, 0.06, (2, 128))]
        for k, vector in enumerate(vectors):
            Face.objects.create(photo=photo, top=0, left=300 * k, bottom=200, right=300 * k + 200,
                                encoding=engine.encoding_to_bytes(vector))  # fmt: skip
        started, cpu = time.perf_counter(), time.process_time()
        result = group_new_faces(owner_id)
        times.append((time.perf_counter() - started) * 1000)
        cpu_times.append((time.process_time() - cpu) * 1000)
        assert result["faces"] == 3, result
    return {"ms": min(times), "median_ms": float(np.median(times)), "cpu_ms": min(cpu_times)}


def child(step: str, count: int, database: str) -> dict:
    """Run one step in a fresh process on the given SQLite file (so its peak memory is its own)."""
    return services.run_step("benchmarks.grouping", database, "--step", step, "--faces", str(count))


def run_cost(sizes: tuple[int, ...] = SIZES) -> dict:
    figures = {}
    for count in sizes:
        with tempfile.TemporaryDirectory(dir=CACHE_DIR) as folder:
            database = str(Path(folder) / "db.sqlite3")
            child("populate", count, database)
            full = child("full", count, database)
            incremental = child("incremental", count, database)
        figures[f"group_full_s_{count}"] = full["seconds"]
        figures[f"group_full_mb_{count}"] = full["peak_mb"]
        figures[f"group_full_groups_{count}"] = full["groups"]
        figures[f"group_incremental_ms_{count}"] = incremental["ms"]
        figures[f"group_incremental_median_ms_{count}"] = incremental["median_ms"]
        figures[f"group_incremental_cpu_ms_{count}"] = incremental["cpu_ms"]
        figures[f"group_full_cpu_s_{count}"] = full["cpu_seconds"]
    return figures


def run(quick: bool = False) -> dict:
    """Every grouping figure (the quick run measures the same sizes: they take about a minute)."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    return {**run_quality(), **run_cost()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--step", choices=("populate", "full", "incremental"))
    parser.add_argument("--faces", type=int, default=10_000)
    parser.add_argument("--quality-only", action="store_true")
    args = parser.parse_args()
    if args.step:
        result = {"populate": lambda: populate(args.faces) or {}, "full": measure_full,
                  "incremental": measure_incremental}[args.step]()  # fmt: skip
        print(json.dumps(result))
        return
    figures = run_quality() if args.quality_only else run()
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
