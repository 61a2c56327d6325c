"""Matching one face against galleries of 1,000 to 1,000,000 encodings: the project's matcher and the library's."""

from __future__ import annotations

import gc
import time

import numpy as np

from recognition.matching import Gallery


def _timed(call, budget: float, most: int) -> float:
    """Fastest milliseconds of call(), repeated within a time budget (at least once).

    The fastest, as timeit advises: on a shared machine the slower runs measure the other processes.
    """
    times = []
    deadline = time.perf_counter() + budget
    while not times or (len(times) < most and time.perf_counter() < deadline):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return min(times)


def fake_encodings(rng: np.random.Generator, n: int) -> np.ndarray:
    """Vectors shaped like dlib's (128 values around 0, length about 1)."""
    vectors = rng.standard_normal((n, 128), dtype=np.float32)
    vectors *= 0.09
    return vectors


def gallery_speed(sizes: list[int], seed: int = 6) -> dict:
    """One reference per person (the worst case for the per-person minimum); the probe is one face."""
    import face_recognition

    rng = np.random.default_rng(seed)
    probe = fake_encodings(rng, 1)[0]
    figures = {}
    for n in sizes:
        encodings = fake_encodings(rng, n)
        gallery = Gallery(encodings, np.arange(n))
        figures[f"match_ms_{n}"] = _timed(lambda g=gallery: g.match(probe[None, :]), budget=2.0, most=50)
        figures[f"gallery_mb_{n}"] = gallery.nbytes / 2**20
        del gallery
        # What a user of the library holds: a list of float64 arrays, as face_encodings returns them.
        known = list(encodings.astype(np.float64))
        del encodings
        probe64 = probe.astype(np.float64)
        figures[f"compare_faces_ms_{n}"] = _timed(
            lambda k=known, p=probe64: face_recognition.compare_faces(k, p), budget=2.0, most=20
        )
        del known
        gc.collect()
    return figures
