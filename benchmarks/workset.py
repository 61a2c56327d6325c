"""The benchmark work set: seeded, phone-sized JPEGs with real faces pasted where we know they are.

Photo i depends only on (seed, i), so the quick set is the first photos of the full set and both share
one cache folder. Each photo is 4032x3024 as a phone stores it, quality 90, with 1 to 4 faces of 150 to
900 pixels (the width of the face box) on a textured background. Some carry EXIF orientation 6 or 8:
their pixels are stored rotated, so that the upright image, the one every box refers to, is 3024x4032.
"""

from __future__ import annotations

import io
import json
import math
import os
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageOps

BASE_DIR = Path(__file__).resolve().parent.parent
FACES_DIR = Path(os.environ.get("FACES_DIR", BASE_DIR.parent / "shared" / "faces"))
CACHE_DIR = Path(os.environ.get("BENCH_DIR", BASE_DIR / "var" / "bench"))
SEED = 2026
PHONE_SIZE = (4032, 3024)
FACE_SIZES = (150, 900)
TEXTURES = ("nofaces/brick.png", "nofaces/grass.png", "nofaces/coffee.jpg")
# People photos with exactly one face (collins/astronaut has a patch HOG takes for a second face).
PEOPLE = (
    "people/obama/portrait_2012.jpg", "people/obama/congress_address_2009.jpg", "people/biden/vp_portrait_2013.jpg",
    "people/biden/blue_room_2010.jpg", "people/hayes/photo_1.jpg", "people/clinton/senate.jpg",
    "people/harris/senate.jpg",
)  # fmt: skip
# What the stored pixels must be turned by so that exif_transpose gives back the upright image.
STORE_ROTATION = {1: None, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}
MARGIN = 0.6  # context pasted around a face box, as a fraction of its width on each side


@dataclass
class PlacedFace:
    source: str
    box: dict[str, int]  # top, right, bottom, left in the upright image


@dataclass
class WorkPhoto:
    name: str
    orientation: int
    width: int  # upright
    height: int
    faces: list[PlacedFace]

    def path(self, folder: Path) -> Path:
        return folder / self.name

    @classmethod
    def from_dict(cls, data: dict) -> WorkPhoto:
        return cls(**{**data, "faces": [PlacedFace(**face) for face in data["faces"]]})


def portrait_files() -> list[str]:
    """Portraits in the order of portraits.csv."""
    lines = (FACES_DIR / "portraits.csv").read_text().splitlines()[1:]
    return [f"portraits/{line.split(',', 1)[0]}" for line in lines if line.strip()]


class SourceFaces:
    """Where the face is in each source photo (dlib HOG, upsampling 1), cached in a JSON file."""

    def __init__(self, cache: Path) -> None:
        self.cache = cache
        self.boxes: dict[str, list[int]] = json.loads(cache.read_text()) if cache.exists() else {}
        self.dirty = False

    def box(self, relative: str) -> tuple[int, int, int, int] | None:
        if relative not in self.boxes:
            import face_recognition

            pixels = np.asarray(Image.open(FACES_DIR / relative).convert("RGB"))
            found = face_recognition.face_locations(pixels, number_of_times_to_upsample=1)
            self.boxes[relative] = list(found[0]) if len(found) == 1 else []
            self.dirty = True
        box = self.boxes[relative]
        return tuple(box) if box else None

    def save(self) -> None:
        if self.dirty:
            self.cache.parent.mkdir(parents=True, exist_ok=True)
            self.cache.write_text(json.dumps(self.boxes, sort_keys=True))
            self.dirty = False


def background(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    """A tiled real texture, scaled and tinted, under a soft left-to-right shading."""
    texture = Image.open(FACES_DIR / rng.choice(TEXTURES)).convert("RGB")
    scale = rng.uniform(1.0, 3.0)
    texture = texture.resize((int(texture.width * scale), int(texture.height * scale)), Image.Resampling.BILINEAR)
    tint = np.array([rng.uniform(0.6, 1.2) for _ in range(3)], dtype=np.float32)
    tile = np.clip(np.asarray(texture, dtype=np.float32) * tint, 0, 255).astype(np.uint8)
    reps = (math.ceil(size[1] / tile.shape[0]), math.ceil(size[0] / tile.shape[1]), 1)
    canvas = Image.fromarray(np.ascontiguousarray(np.tile(tile, reps)[: size[1], : size[0]]))
    low, high = rng.randint(170, 230), rng.randint(230, 255)
    ramp = Image.fromarray(np.linspace(low, high, 256, dtype=np.uint8)[None, :]).resize(size).convert("RGB")
    return ImageChops.multiply(canvas, ramp)


def _crop_around(source: Image.Image, box: tuple[int, int, int, int]) -> tuple[Image.Image, tuple[int, int]]:
    """The face with MARGIN of context (within the source); returns it and the face's offset in it."""
    top, right, bottom, left = box
    margin = round((right - left) * MARGIN)
    crop_left, crop_top = max(0, left - margin), max(0, top - margin)
    crop_right, crop_bottom = min(source.width, right + margin), min(source.height, bottom + margin)
    return source.crop((crop_left, crop_top, crop_right, crop_bottom)), (left - crop_left, top - crop_top)


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int], gap: int = 20) -> bool:
    return not (a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1])


def compose(index: int, seed: int, faces: SourceFaces, size: tuple[int, int] = PHONE_SIZE) -> tuple[bytes, WorkPhoto]:
    """Photo number index of the work set: its JPEG bytes and where its faces are."""
    rng = random.Random(f"{seed}:{index}")
    orientation = rng.choice((1, 1, 1, 1, 1, 6, 8))
    upright = size if orientation == 1 else (size[1], size[0])
    canvas = background(rng, upright)
    portraits = portrait_files()
    taken: list[tuple[int, int, int, int]] = []  # left, top, right, bottom of pasted crops
    placed: list[PlacedFace] = []
    scale = size[0] / PHONE_SIZE[0]  # smaller test photos get proportionally smaller faces
    for _ in range(rng.randint(1, 4)):
        relative = rng.choice(PEOPLE) if rng.random() < 0.2 else rng.choice(portraits)
        box = faces.box(relative)
        if box is None:
            continue
        target = math.exp(rng.uniform(math.log(FACE_SIZES[0]), math.log(FACE_SIZES[1]))) * scale
        spot = _place(rng, relative, box, target, upright, taken)
        if spot is not None:
            crop, (left, top), face_box = spot
            canvas.paste(crop, (left, top))
            taken.append((left, top, left + crop.width, top + crop.height))
            placed.append(PlacedFace(source=relative, box=face_box))
    stored = canvas if STORE_ROTATION[orientation] is None else canvas.transpose(STORE_ROTATION[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    stored.save(out, format="JPEG", quality=90, exif=exif.tobytes())
    photo = WorkPhoto(f"photo_{index:04d}.jpg", orientation, upright[0], upright[1], placed)
    return out.getvalue(), photo


def _place(rng: random.Random, relative: str, box: tuple[int, int, int, int], target: float, upright, taken):
    """Scale the source so its face is target wide and find a free spot; shrink the face if none is free."""
    source = Image.open(FACES_DIR / relative).convert("RGB")
    source = ImageOps.exif_transpose(source)
    crop, (face_left, face_top) = _crop_around(source, box)
    top, right, bottom, left = box
    minimum = FACE_SIZES[0] * max(upright) / PHONE_SIZE[0]
    while target >= minimum * 0.999:
        factor = target / (right - left)
        width, height = round(crop.width * factor), round(crop.height * factor)
        if width < upright[0] and height < upright[1]:
            for _ in range(60):
                x, y = rng.randrange(0, upright[0] - width), rng.randrange(0, upright[1] - height)
                if not any(_overlaps((x, y, x + width, y + height), other) for other in taken):
                    scaled = crop.resize((width, height), Image.Resampling.BICUBIC)
                    face_box = {
                        "top": y + round(face_top * factor),
                        "right": x + round((face_left + right - left) * factor),
                        "bottom": y + round((face_top + bottom - top) * factor),
                        "left": x + round(face_left * factor),
                    }
                    return scaled, (x, y), face_box
        target *= 0.8
    return None


def generate(count: int, seed: int = SEED, folder: Path | None = None, size: tuple[int, int] = PHONE_SIZE) -> Path:
    """Make (or reuse) photos 0..count-1 in folder; writes manifest.json and returns the folder."""
    folder = folder or CACHE_DIR / f"workset-{seed}-{size[0]}x{size[1]}"
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path = folder / "manifest.json"
    known = {p["name"]: p for p in json.loads(manifest_path.read_text())} if manifest_path.exists() else {}
    faces = SourceFaces(folder.parent / "source_faces.json")
    photos = []
    for index in range(count):
        name = f"photo_{index:04d}.jpg"
        if name in known and (folder / name).exists():
            photos.append(WorkPhoto.from_dict(known[name]))
            continue
        data, photo = compose(index, seed, faces, size)
        photo.path(folder).write_bytes(data)
        photos.append(photo)
        known[name] = asdict(photo)
    faces.save()
    manifest_path.write_text(json.dumps([known[name] for name in sorted(known)], indent=1))
    return folder


def load(folder: Path, count: int) -> list[WorkPhoto]:
    """The first count photos of a generated work set."""
    data = json.loads((folder / "manifest.json").read_text())
    return [WorkPhoto.from_dict(item) for item in data[:count]]


def _upright_box(box: dict[str, int], orientation: int, stored_size: tuple[int, int]) -> dict[str, int]:
    """A box found on the stored (unrotated) pixels, in upright coordinates."""
    top, right, bottom, left = box["top"], box["right"], box["bottom"], box["left"]
    width, height = stored_size
    if orientation == 6:  # upright = stored turned 90 degrees clockwise
        return {"top": left, "right": height - top, "bottom": right, "left": height - bottom}
    if orientation == 8:  # upright = stored turned 90 degrees counter-clockwise
        return {"top": width - right, "right": bottom, "bottom": width - left, "left": top}
    return dict(box)


def stored_to_upright(box: dict[str, int], photo: WorkPhoto) -> dict[str, int]:
    stored_size = (photo.width, photo.height) if photo.orientation == 1 else (photo.height, photo.width)
    return _upright_box(box, photo.orientation, stored_size)


def iou(a: dict[str, int], b: dict[str, int]) -> float:
    top, bottom = max(a["top"], b["top"]), min(a["bottom"], b["bottom"])
    left, right = max(a["left"], b["left"]), min(a["right"], b["right"])
    inter = max(0, bottom - top) * max(0, right - left)

    def area(box: dict[str, int]) -> int:
        return max(0, box["bottom"] - box["top"]) * max(0, box["right"] - box["left"])

    union = area(a) + area(b) - inter
    return inter / union if union else 0.0


def is_found(placed: dict[str, int], detected: list[dict[str, int]]) -> bool:
    """A placed face is found when a detected box overlaps it (IoU >= 0.3) or has its centre inside it."""
    for box in detected:
        cy, cx = (box["top"] + box["bottom"]) / 2, (box["left"] + box["right"]) / 2
        inside = placed["top"] <= cy <= placed["bottom"] and placed["left"] <= cx <= placed["right"]
        if inside or iou(placed, box) >= 0.3:
            return True
    return False


def faces_found(photo: WorkPhoto, detected: list[dict[str, int]]) -> int:
    return sum(is_found(face.box, detected) for face in photo.faces)


def recall(photos: list[WorkPhoto], detected: dict[str, list[dict[str, int]]]) -> float:
    """Faces found / faces placed over the photos that were run (keyed by photo name)."""
    run = [photo for photo in photos if photo.name in detected]
    placed = sum(len(photo.faces) for photo in run)
    return sum(faces_found(photo, detected[photo.name]) for photo in run) / placed if placed else 0.0


if __name__ == "__main__":  # python -m benchmarks.workset [count]
    import sys

    target = generate(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
    print(target)
