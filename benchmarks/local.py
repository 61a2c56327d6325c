"""Contenders that run on the files directly: the engine alone, the naive loop, the face_recognition CLI."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from benchmarks import workset
from benchmarks.accuracy import REFERENCES
from benchmarks.workset import FACES_DIR, WorkPhoto


def engine_loop(folder: Path, photos: list[WorkPhoto]) -> dict:
    """recognition.engine.detect_faces in a loop in this process, with the workers' settings."""
    from recognition import engine

    engine.load_models()  # as the worker parent does before any job
    found = {}
    started, cpu = time.perf_counter(), time.process_time()
    for photo in photos:
        analysis = engine.detect_faces(str(photo.path(folder)))
        found[photo.name] = [face.box.as_dict() for face in analysis.faces]
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "engine_photos_per_s": len(photos) / seconds,
        "cpu_ms_per_photo_engine": cpu * 1000 / len(photos),
        "engine_recall": workset.recall(photos, found),
        "engine_boxes": found,
    }


def _detect(path: str) -> int:
    from recognition import engine

    return len(engine.detect_faces(path).faces)


def engine_processes(folder: Path, photos: list[WorkPhoto], processes: int = 2) -> dict:
    """The engine in `processes` processes forked after the models are loaded, one photo at a time each: what
    `processes` workers could do with no queue at all."""
    from recognition import engine

    engine.warm_up()  # as the worker parent does before forking
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        started = time.perf_counter()
        pool.map(_detect, [str(photo.path(folder)) for photo in photos], chunksize=1)
        seconds = time.perf_counter() - started
    return {f"engine_photos_per_s_{processes}p": len(photos) / seconds}


def naive_loop(folder: Path, photos: list[WorkPhoto]) -> dict:
    """What a user writes first: load_image_file, face_locations, face_encodings, all defaults, full size.

    load_image_file ignores EXIF orientation, so boxes come in the stored pixels' frame: map them upright.
    """
    import face_recognition

    found = {}
    started = time.perf_counter()
    for photo in photos:
        image = face_recognition.load_image_file(str(photo.path(folder)))
        locations = face_recognition.face_locations(image)
        face_recognition.face_encodings(image, locations)
        boxes = [dict(zip(("top", "right", "bottom", "left"), loc, strict=True)) for loc in locations]
        found[photo.name] = [workset.stored_to_upright(box, photo) for box in boxes]
    seconds = time.perf_counter() - started
    return {
        "naive_photos_per_s": len(photos) / seconds,
        "naive_recall": workset.recall(photos, found),
        "naive_photos": len(photos),
        "naive_boxes": found,
    }


def cli(folder: Path, photos: list[WorkPhoto], cpus: int = 2) -> dict:
    """`face_recognition --cpus 2 known unknown` over the photos, three known people as references.

    The CLI prints one line per face and no boxes: its recall counts faces per photo (at most the faces placed).
    """
    command = Path(sys.executable).parent / "face_recognition"
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        known, unknown = Path(tmp, "known"), Path(tmp, "unknown")
        known.mkdir()
        unknown.mkdir()
        for name, relative in REFERENCES.items():
            (known / f"{name}.jpg").symlink_to(FACES_DIR / relative)
        for photo in photos:
            (unknown / photo.name).symlink_to(photo.path(folder))
        started = time.perf_counter()
        done = subprocess.run(
            [str(command), "--cpus", str(cpus), str(known), str(unknown)], capture_output=True, text=True, timeout=1800
        )
        seconds = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(f"face_recognition CLI failed: {done.stderr[-2000:]}")
    faces: Counter[str] = Counter()
    for line in done.stdout.splitlines():
        path, _, name = line.rpartition(",")
        if path and name != "no_persons_found":
            faces[Path(path).name] += 1
    placed = sum(len(photo.faces) for photo in photos)
    counted = sum(min(faces[photo.name], len(photo.faces)) for photo in photos)
    return {"cli_photos_per_s": len(photos) / seconds, "cli_recall": counted / placed if placed else 0.0}
