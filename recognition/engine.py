"""The face engine: open an image safely, find faces, encode them.

Detection runs on a downscaled copy (HOG cost grows with pixels, encodings do not), and every box
is mapped back to the pixels of the original image after its EXIF orientation. Each face is then
encoded from pixels where it is at least FACES_ENCODE_MIN_SIDE wide (the original's when it is smaller):
a small face in a large photo is not encoded from the few pixels the detection copy kept of it.
"""

from __future__ import annotations

import io
import math
import os
import struct
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import IO, TypeVar

import numpy as np
from django.conf import settings
from PIL import Image, ImageFile, UnidentifiedImageError

from photosite import memory

try:  # HEIC/HEIF from phones; optional so a missing wheel never breaks JPEG work.
    import pillow_heif

    pillow_heif.register_heif_opener()
except ImportError:  # pragma: no cover, no mutate (the wheel is a requirement)
    pillow_heif = None

T = TypeVar("T")
ENCODING_DTYPE = np.float32
ENCODING_SIZE = 128
# The formats we document (README), and the only ones Pillow may try: of its ~45 others, some hand
# the file to outside programs (EPS to Ghostscript, which would run untrusted PostScript).
FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "HEIF")


class UnreadableImage(Exception):
    """The file is not an image we can decode (empty, truncated, not an image, too many pixels)."""


@dataclass(frozen=True)
class Box:
    top: int
    right: int
    bottom: int
    left: int

    @property
    def area(self) -> int:
        return max(0, self.bottom - self.top) * max(0, self.right - self.left)

    def overlap(self, other: Box) -> float:
        """Intersection over union, 0..1."""
        top, bottom = max(self.top, other.top), min(self.bottom, other.bottom)
        left, right = max(self.left, other.left), min(self.right, other.right)
        inter = max(0, bottom - top) * max(0, right - left)
        union = self.area + other.area - inter
        return inter / union if union else 0.0

    def as_dict(self) -> dict[str, int]:
        return {"top": self.top, "right": self.right, "bottom": self.bottom, "left": self.left}


@dataclass
class DetectedFace:
    box: Box
    encoding: np.ndarray


@dataclass
class Analysis:
    """What the engine found in one image: its oriented size and its faces."""

    width: int
    height: int
    faces: list[DetectedFace] = field(default_factory=list)
    preview: Image.Image | None = field(default=None, repr=False)  # the decoded, downscaled image
    found: int = 0  # faces detected; more than len(faces) when past FACES_MAX_PER_PHOTO
    taken_at: datetime | None = None  # from EXIF; naive when the camera gave no offset

    @property
    def note(self) -> str:
        """What the user should know about this analysis ("" when nothing)."""
        if self.found > len(self.faces):
            return f"{self.found} faces found: only the largest {len(self.faces)} were encoded and matched."
        return ""


# The pid of the process that loaded the models: a forked work horse inherits it from its parent.
models_loaded_by: int | None = None


def load_models() -> None:
    """Import face_recognition (and so load dlib's models) once in this process."""
    global models_loaded_by
    if models_loaded_by is None:
        import face_recognition  # noqa: F401

        # face_recognition turns on LOAD_TRUNCATED_IMAGES for everyone: a truncated upload would then
        # decode as grey padding and pass as a photo. We want it reported as damaged.
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        # Each photo's buffers are reused by the next one instead of faulted in again (25-40 ms a photo).
        memory.keep_freed_memory(settings.MEMORY_KEEP_FREED_MB)
        models_loaded_by = os.getpid()


def warm_up() -> None:
    """Run detection and encoding once, so that forked work horses inherit warm models and buffers
    (a horse's first detection was measured 20% slower without this)."""
    import face_recognition

    load_models()
    # Any small grey image and any box in it warm them up: its sizes, colour and box are not mutated.
    pixels = np.full((160, 160, 3), 128, dtype=np.uint8)  # pragma: no mutate
    face_recognition.face_locations(pixels, number_of_times_to_upsample=settings.FACES_UPSAMPLE)
    box = Box(top=40, right=120, bottom=120, left=40)  # pragma: no mutate
    _encode(Pixels(Image.fromarray(pixels), scale=1.0), box)  # pragma: no mutate


def _read(source: IO[bytes] | bytes | str) -> Image.Image:
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(source, formats=FORMATS)
        except UnidentifiedImageError as exc:
            raise UnreadableImage("not a known image format (JPEG, PNG, GIF, WebP, BMP, TIFF or HEIC)") from exc
        except (OSError, SyntaxError, ValueError) as exc:
            raise UnreadableImage(f"the image header is damaged ({exc})") from exc
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise UnreadableImage(
                f"image has too many pixels (the limit is {settings.FACES_MAX_PIXELS:,} pixels)"
            ) from exc
    width, height = image.size
    if width * height > settings.FACES_MAX_PIXELS:
        # Checked from the header alone, before any pixel is decoded.
        raise UnreadableImage(
            f"image is {width}x{height} pixels, over the limit of {settings.FACES_MAX_PIXELS:,} pixels"
        )
    # no mutate: Pillow itself refuses a header with no rows or columns (so `and`, `== -1` are the same)
    if width == 0 or height == 0:  # pragma: no mutate
        raise UnreadableImage("image has no pixels")
    return image


def check_header(source: IO[bytes] | bytes | str) -> tuple[int, int]:
    """Read only the header: the format is known and the pixel count within the limit."""
    image = _read(source)
    return image.size


def open_image(source: IO[bytes] | bytes | str, max_side: int | None = None) -> tuple[Image.Image, int, int]:
    """Decode an image upright, in RGB, no larger than max_side.

    Returns the image and the width and height of the full-size original after EXIF orientation.
    """
    stored = decode(source, (max_side, max_side) if max_side else None)
    image = stored.upright()
    if max_side and max(image.size) > max_side:  # pragma: no mutate (a thumbnail to its own size is a no-op)
        image.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    return image, *stored.upright_size


# What turns stored pixels upright, by EXIF orientation (as ImageOps.exif_transpose does).
ORIENTATIONS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass
class Stored:
    """An image file's stored pixels, decoded (perhaps at a JPEG draft scale) but not yet turned upright."""

    image: Image.Image  # RGB, the first frame
    size: tuple[int, int]  # the stored pixels' full size, from the header
    orientation: int  # EXIF orientation, 1 when upright already
    taken_at: datetime | None

    @property
    def method(self) -> Image.Transpose | None:
        return ORIENTATIONS.get(self.orientation)

    @property
    def upright_size(self) -> tuple[int, int]:
        """The full-size original's width and height after EXIF orientation."""
        width, height = self.size
        return (height, width) if self.orientation in (5, 6, 7, 8) else (width, height)

    def upright(self) -> Image.Image:
        image = _guarded(lambda: self.image.copy() if self.method is None else self.image.transpose(self.method))
        image.info["taken_at"] = self.taken_at
        return image

    def pixels(self) -> Pixels:
        """These pixels as a source to encode faces from (turned upright face by face, not whole)."""
        return Pixels(self.image, scale=self.image.width / self.size[0], method=self.method)


def _rewindable(source: IO[bytes] | bytes | str) -> IO[bytes] | bytes | str:
    """A source that can be read twice (small faces take a second decode): a pipe is read into memory."""
    if hasattr(source, "seekable") and not source.seekable():
        return io.BytesIO(source.read())
    return source


def decode(source: IO[bytes] | bytes | str, draft: tuple[int, int] | None = None) -> Stored:
    """Decode the stored pixels; a JPEG at the smallest draft scale (1/2, 1/4, 1/8) still as large as draft
    (width and height of the stored pixels)."""
    if hasattr(source, "seek"):
        source.seek(0)  # a second decode of the same file  # pragma: no mutate (Pillow rewinds it anyway)
    image = _read(source)

    def load() -> Stored:
        exif = image.getexif()
        size = image.size
        if draft and image.format == "JPEG":  # pragma: no mutate (draft is a no-op for other formats)
            # Draft mode decodes the JPEG at 1/2, 1/4 or 1/8 scale: much faster than decoding it whole.
            image.draft("RGB", draft)
        image.seek(0)  # animated images: the first frame
        image.load()
        pixels = image if image.mode == "RGB" else _to_rgb(image)
        return Stored(pixels, size, exif.get(0x0112, 1), capture_time(exif))

    return _guarded(load)


def _guarded(call: Callable[[], T]) -> T:
    """Run a decoding step: whatever a damaged file makes Pillow raise becomes UnreadableImage."""
    try:
        return call()
    except UnreadableImage:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, Image.DecompressionBombError) as exc:
        raise UnreadableImage(damage_in_plain_words(exc)) from exc


def damage_in_plain_words(exc: Exception) -> str:
    """What went wrong decoding, for a person rather than a programmer (Pillow's words go to the log)."""
    text = str(exc).lower()
    if isinstance(exc, EOFError) or "truncated" in text or "end of" in text or "ended" in text:
        return "this file is damaged (it ends early)"
    return "this file is damaged (its image data cannot be read)"


EXIF_IFD = 0x8769
DATETIME_ORIGINAL, DATETIME_DIGITIZED, OFFSET_TIME_ORIGINAL = 0x9003, 0x9004, 0x9011


def capture_time(exif: Image.Exif) -> datetime | None:
    """EXIF DateTimeOriginal (else DateTimeDigitized), aware when OffsetTimeOriginal is given; None when
    absent or unreadable. (DateTime is when the file was last edited, not when the photo was taken.)"""
    try:
        details = exif.get_ifd(EXIF_IFD)
    except Exception:  # a damaged EXIF block is no reason to lose the photo
        details = {}
    text = details.get(DATETIME_ORIGINAL) or details.get(DATETIME_DIGITIZED)
    if not isinstance(text, str):
        return None
    try:
        taken = datetime.strptime(text.strip().rstrip("\x00")[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None  # "0000:00:00 00:00:00" and other placeholders
    offset = details.get(OFFSET_TIME_ORIGINAL)
    if isinstance(offset, str) and len(offset.strip()) >= 6 and offset.strip()[0] in "+-":
        try:
            sign = -1 if offset.strip()[0] == "-" else 1
            hours, minutes = int(offset.strip()[1:3]), int(offset.strip()[4:6])
            taken = taken.replace(tzinfo=timezone(sign * timedelta(hours=hours, minutes=minutes)))
        except ValueError:
            pass
    return taken


def _to_rgb(image: Image.Image) -> Image.Image:
    """Flatten alpha on white and convert any mode (CMYK, 16-bit, palette, grey) to 8-bit RGB."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit samples: keep the top 8 bits (values up to 255 are already 8-bit in a wider mode).
        array = np.asarray(image, dtype=np.uint32)
        shift = 8 if array.max() > 255 else 0
        image = Image.fromarray((array >> shift).astype(np.uint8))
    # no mutate: a palette image without transparency composited on white is unchanged (`and` -> `or`)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):  # pragma: no mutate
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))  # pragma: no mutate (clamped to 255)
        image = Image.alpha_composite(background, image)
    return image.convert("RGB")


def _scale_box(raw: tuple[int, int, int, int], scale: float, width: int, height: int) -> Box:
    top, right, bottom, left = raw
    return Box(
        top=max(0, round(top * scale)),
        right=min(width, round(right * scale)),
        bottom=min(height, round(bottom * scale)),
        left=max(0, round(left * scale)),
    )


def detect_faces(source: IO[bytes] | bytes | str) -> Analysis:
    """Find and encode every face; boxes are in the original image's oriented pixels."""
    load_models()
    import face_recognition

    source = _rewindable(source)
    stored = decode(source, (settings.FACES_DETECT_MAX_SIDE,) * 2)
    (width, height), taken_at = stored.upright_size, stored.taken_at
    image = stored.upright()
    if max(image.size) > settings.FACES_DETECT_MAX_SIDE:  # pragma: no mutate (as in open_image)
        image.thumbnail((settings.FACES_DETECT_MAX_SIDE,) * 2, Image.Resampling.BILINEAR)
    locations = face_recognition.face_locations(
        np.asarray(image), number_of_times_to_upsample=settings.FACES_UPSAMPLE, model="hog"
    )
    if not locations:
        return Analysis(width=width, height=height, preview=image, taken_at=taken_at)
    found = len(locations)
    if found > settings.FACES_MAX_PER_PHOTO:  # pragma: no mutate (at the cap, sorting keeps every face)
        # Encoding costs about 60 ms a face: a photo tiled with hundreds of faces must not hold a worker.
        locations = sorted(locations, key=_location_area, reverse=True)[: settings.FACES_MAX_PER_PHOTO]
    boxes = [_scale_box(loc, width / image.width, width, height) for loc in locations]
    faces = [DetectedFace(box, _encode(pixels, box)) for box, pixels in _encoding_sources(source, boxes, image, stored)]
    return Analysis(width=width, height=height, faces=faces, preview=image, found=found, taken_at=taken_at)


def _encoding_sources(
    source: IO[bytes] | bytes | str, boxes: list[Box], detection: Image.Image, stored: Stored
) -> list[tuple[Box, Pixels]]:
    """Each box with the smallest decode in which its face is FACES_ENCODE_MIN_SIDE wide: the detection
    copy, the larger draft it was made from, or else a second decode of the file at the draft scale the
    smallest face needs (a phone photo's full size for faces under twice FACES_ENCODE_MIN_SIDE)."""
    decodes = [Pixels(detection, scale=detection.width / stored.upright_size[0]), stored.pixels()]
    need = {b: min(1.0, settings.FACES_ENCODE_MIN_SIDE / max(1, b.right - b.left)) for b in boxes}  # pragma: no mutate
    most = max(need.values())
    if most > decodes[-1].scale:  # pragma: no mutate (two decodes: [+1] is [-1]; an equal scale is enough)
        draft = (math.ceil(stored.size[0] * most), math.ceil(stored.size[1] * most))
        decodes.append(decode(source, draft).pixels())
    return [(b, next((p for p in decodes if p.scale >= need[b]), decodes[-1])) for b in boxes]  # pragma: no mutate


def _encode(pixels: Pixels, box: Box) -> np.ndarray:
    import face_recognition

    array, location = pixels.around(box)
    (encoding,) = face_recognition.face_encodings(array, known_face_locations=[location])
    return np.asarray(encoding, dtype=ENCODING_DTYPE)


@dataclass
class Pixels:
    """Decoded pixels of a photo to encode faces from: at some scale of its oriented original, upright or
    as stored (turned upright face by face: turning a whole 12 MP photo costs more than its faces)."""

    image: Image.Image
    scale: float  # this image's pixels per pixel of the oriented original
    method: Image.Transpose | None = None  # what turns the image upright; None when it is

    def around(self, box: Box) -> tuple[np.ndarray, tuple[int, int, int, int]]:
        """The upright pixels around a box of the oriented original, and the box within them (top, right,
        bottom, left). The margin, a box width each side, holds the face chip dlib cuts: it reaches past
        the box, farther when the face is tilted."""
        top, right, bottom, left = (round(v * self.scale) for v in (box.top, box.right, box.bottom, box.left))
        width, height = self.image.size
        if self.method in SWAPS_SIDES:
            width, height = height, width
        margin = right - left
        region = (max(0, left - margin), max(0, top - margin), min(width, right + margin), min(height, bottom + margin))
        if self.method is None:
            crop = self.image.crop(region)
        else:
            stored = transpose_rect(region, (width, height), INVERSE.get(self.method, self.method))
            crop = self.image.crop(stored).transpose(self.method)
        x, y = region[0], region[1]
        return np.asarray(crop), (top - y, right - x, bottom - y, left - x)


SWAPS_SIDES = {
    Image.Transpose.ROTATE_90,
    Image.Transpose.ROTATE_270,
    Image.Transpose.TRANSPOSE,
    Image.Transpose.TRANSVERSE,
}
INVERSE = {Image.Transpose.ROTATE_90: Image.Transpose.ROTATE_270, Image.Transpose.ROTATE_270: Image.Transpose.ROTATE_90}


def transpose_rect(
    rect: tuple[int, int, int, int], size: tuple[int, int], method: Image.Transpose
) -> tuple[int, int, int, int]:
    """Where a rectangle (left, top, right, bottom) of an image of this size lands when the image is
    transposed by method (Pillow's pixel mapping)."""
    left, top, right, bottom = rect
    width, height = size
    return {
        Image.Transpose.FLIP_LEFT_RIGHT: (width - right, top, width - left, bottom),
        Image.Transpose.FLIP_TOP_BOTTOM: (left, height - bottom, right, height - top),
        Image.Transpose.ROTATE_180: (width - right, height - bottom, width - left, height - top),
        Image.Transpose.ROTATE_90: (top, width - right, bottom, width - left),
        Image.Transpose.ROTATE_270: (height - bottom, left, height - top, right),
        Image.Transpose.TRANSPOSE: (top, left, bottom, right),
        Image.Transpose.TRANSVERSE: (height - bottom, width - right, height - top, width - left),
    }[method]


def _location_area(location: tuple[int, int, int, int]) -> int:
    top, right, bottom, left = location
    return (bottom - top) * (right - left)


def encode_reference(source: IO[bytes] | bytes | str) -> DetectedFace:
    """The largest face of a reference photo (benchmarks; the site lets the user choose among several)."""
    return largest_face(detect_faces(source))


def largest_face(analysis: Analysis) -> DetectedFace:
    return max(reference_faces(analysis), key=lambda face: face.box.area)


def reference_faces(analysis: Analysis) -> list[DetectedFace]:
    """Every face of a reference photo (at least one): with several, the user says which is theirs."""
    if not analysis.faces:
        raise UnreadableImage("no face found in this reference photo")
    return analysis.faces


def encoding_to_bytes(encoding: np.ndarray) -> bytes:
    return np.asarray(encoding, dtype=ENCODING_DTYPE).tobytes()


def encoding_from_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(bytes(data), dtype=ENCODING_DTYPE)
