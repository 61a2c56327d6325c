"""Small faces in a large photo: are they found, and encoded as they are at full size?

For each face-box width w in WIDTHS, the first PORTRAITS portraits of ../shared/faces/portraits.csv are
pasted, scaled so that their face box is w px wide, six to a 4032x3024 phone-sized canvas on a textured
background (JPEG quality 90; every other canvas stored rotated, with EXIF orientation 6 or 8, as phones
do). recognition.engine.detect_faces runs on each canvas as a worker runs it.

    recall_<w>px                   share of the pasted faces found
    encoding_self_distance_<w>px   median distance between a found face's encoding and the encoding of
                                   the same portrait file at its own size (about 75-95 px of face box)
    encoding_self_distance_max_<w>px   the largest of those distances

    python -m benchmarks.encoding
"""

from __future__ import annotations

import io
import math
import os
import random
import sys
import time
from dataclasses import dataclass

import numpy as np

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "photosite.settings")
os.environ.setdefault("SECRET_KEY", "benchmarks-only-not-a-secret")

import django  # noqa: E402

django.setup()

from PIL import Image  # noqa: E402

from benchmarks import workset  # noqa: E402
from recognition import engine  # noqa: E402

WIDTHS = (80, 110, 150, 200)
PORTRAITS = 30
CANVAS = workset.PHONE_SIZE  # 4032x3024 as stored
GRID = (3, 2)  # faces per canvas: columns x rows of the upright canvas
ORIENTATIONS = (1, 6, 1, 8)  # canvas k is stored with ORIENTATIONS[k % 4]
SEED = 12


@dataclass
class Reference:
    relative: str
    box: engine.Box  # the face in the portrait file, as the engine finds it there
    encoding: np.ndarray


@dataclass
class Pasted:
    reference: Reference
    box: dict[str, int]  # where the face box landed, in the upright canvas


def references(count: int = PORTRAITS) -> list[Reference]:
    """The first count portraits with their full-size encoding (each has exactly one face)."""
    found = []
    for relative in workset.portrait_files()[:count]:
        face = engine.encode_reference(str(workset.FACES_DIR / relative))
        found.append(Reference(relative, face.box, face.encoding))
    return found


def canvas(index: int, width: int, faces: list[Reference]) -> tuple[bytes, list[Pasted]]:
    """Canvas number index: faces pasted with their face box width px wide, one to a grid cell."""
    rng = random.Random(f"{SEED}:{width}:{index}")
    orientation = ORIENTATIONS[index % len(ORIENTATIONS)]
    upright = CANVAS if orientation == 1 else (CANVAS[1], CANVAS[0])
    image = workset.background(rng, upright)
    cell_w, cell_h = upright[0] // GRID[0], upright[1] // GRID[1]
    pasted = []
    for cell, reference in enumerate(faces):
        crop, (face_left, face_top, face_right, face_bottom) = face_with_context(reference, width)
        x0, y0 = (cell % GRID[0]) * cell_w, (cell // GRID[0]) * cell_h
        x = x0 + rng.randrange(0, max(1, cell_w - crop.width))
        y = y0 + rng.randrange(0, max(1, cell_h - crop.height))
        image.paste(crop, (x, y))
        box = {"top": y + face_top, "right": x + face_right, "bottom": y + face_bottom, "left": x + face_left}
        pasted.append(Pasted(reference, box))
    rotation = workset.STORE_ROTATION[orientation]
    stored = image if rotation is None else image.transpose(rotation)
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    stored.save(out, format="JPEG", quality=90, exif=exif.tobytes())
    return out.getvalue(), pasted


def face_with_context(reference: Reference, width: int) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """The portrait around its face box (workset.MARGIN of context), scaled so the box is width px wide;
    returns it and the face box in it (left, top, right, bottom)."""
    source = Image.open(workset.FACES_DIR / reference.relative).convert("RGB")
    box = reference.box
    margin = round((box.right - box.left) * workset.MARGIN)
    left, top = max(0, box.left - margin), max(0, box.top - margin)
    crop = source.crop((left, top, min(source.width, box.right + margin), min(source.height, box.bottom + margin)))
    factor = width / (box.right - box.left)
    scaled = crop.resize((round(crop.width * factor), round(crop.height * factor)), Image.Resampling.BICUBIC)
    face = (box.left - left, box.top - top, box.right - left, box.bottom - top)
    return scaled, tuple(round(value * factor) for value in face)


def nearest(pasted: Pasted, faces: list[engine.DetectedFace]) -> engine.DetectedFace | None:
    """The detected face on the pasted one (workset.is_found's rule), the most overlapping if several."""
    on_it = [face for face in faces if workset.is_found(pasted.box, [face.box.as_dict()])]
    return max(on_it, key=lambda face: workset.iou(pasted.box, face.box.as_dict()), default=None)


def measure_width(width: int, faces: list[Reference]) -> tuple[float, list[float]]:
    """Recall and the self-distances of the found faces, pasted width px wide."""
    per_canvas = GRID[0] * GRID[1]
    found, distances = 0, []
    for index in range(math.ceil(len(faces) / per_canvas)):
        data, pasted = canvas(index, width, faces[index * per_canvas : (index + 1) * per_canvas])
        analysis = engine.detect_faces(data)
        for placed in pasted:
            face = nearest(placed, analysis.faces)
            if face is not None:
                found += 1
                distances.append(float(np.linalg.norm(face.encoding - placed.reference.encoding)))
    return found / len(faces), distances


def run(count: int = PORTRAITS) -> dict:
    engine.load_models()
    faces = references(count)
    figures: dict = {"encoding_portraits": len(faces)}
    for width in WIDTHS:
        started = time.monotonic()
        recall, distances = measure_width(width, faces)
        figures[f"recall_{width}px"] = recall
        figures[f"encoding_self_distance_{width}px"] = float(np.median(distances)) if distances else None
        figures[f"encoding_self_distance_max_{width}px"] = max(distances) if distances else None
        print(f"{width} px: {time.monotonic() - started:.0f} s", file=sys.stderr)
    return figures


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key}: {value:.3f}" if isinstance(value, float) else f"{key}: {value}")
