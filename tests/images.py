"""Test images derived from the real photos of ../shared/faces: other formats, modes and orientations."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from tests.conftest import face_file

PORTRAIT = "people/obama/portrait_2012.jpg"  # 910x1137, one face

# What exif_transpose does for each orientation, undone: storing inverse(upright) with the tag gives upright back.
INVERSE_OF_ORIENTATION = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def real(relative: str = PORTRAIT) -> Image.Image:
    with Image.open(face_file(relative)) as image:
        image.load()
        return image


def encode(image: Image.Image, format: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, format=format, **options)
    return out.getvalue()


def oriented_jpeg(orientation: int, relative: str = PORTRAIT) -> bytes:
    """The photo's pixels stored so that applying the EXIF orientation tag gives the upright photo back."""
    upright = real(relative)
    inverse = INVERSE_OF_ORIENTATION[orientation]
    stored = upright.transpose(inverse) if inverse is not None else upright
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(stored, "JPEG", quality=95, exif=exif)


def cmyk_jpeg(relative: str = PORTRAIT) -> bytes:
    return encode(real(relative).convert("CMYK"), "JPEG", quality=92)


def grayscale_png(relative: str = PORTRAIT) -> bytes:
    return encode(real(relative).convert("L"), "PNG")


def sixteen_bit_png(relative: str = PORTRAIT) -> bytes:
    """A 16-bit grayscale PNG: each 8-bit sample spread over the full 16-bit range."""
    samples = np.asarray(real(relative).convert("L"), dtype=np.uint16) * 257
    data = encode(Image.fromarray(samples), "PNG")
    assert data[24:26] == b"\x10\x00", "IHDR says 16-bit grayscale"
    return data


def sixteen_bit_rgb_png(relative: str = PORTRAIT) -> bytes:
    """A 48-bit RGB PNG (16 bits a channel), written by hand: Pillow writes 16-bit grayscale only."""
    samples = np.asarray(real(relative).convert("RGB"), dtype=">u2") * 257
    height, width, _ = samples.shape
    rows = b"".join(b"\x00" + samples[y].tobytes() for y in range(height))  # filter 0, then the row
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(rows))
        + _png_chunk(b"IEND", b"")
    )


def alpha_png(relative: str = PORTRAIT) -> bytes:
    """RGBA with a transparent border around an opaque middle, where the face is."""
    image = real(relative).convert("RGBA")
    alpha = Image.new("L", image.size, 0)
    width, height = image.size
    alpha.paste(255, (width // 8, height // 8, width - width // 8, height - height // 8))
    image.putalpha(alpha)
    return encode(image, "PNG")


def animated_gif(*relatives: str) -> bytes:
    """An animated GIF with one frame per photo, all at the first photo's size."""
    frames = [real(relatives[0])] + [real(r).convert("RGB").resize(real(relatives[0]).size) for r in relatives[1:]]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=200, loop=0)


def webp(relative: str = PORTRAIT) -> bytes:
    return encode(real(relative), "WEBP", quality=90)


def bmp(relative: str = PORTRAIT) -> bytes:
    return encode(real(relative), "BMP")


def tiff(relative: str = PORTRAIT) -> bytes:
    return encode(real(relative), "TIFF", compression="tiff_lzw")


def heic(relative: str = PORTRAIT) -> bytes:
    import pillow_heif

    pillow_heif.register_heif_opener()
    return encode(real(relative), "HEIF", quality=85)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int = 30_000, height: int = 30_000) -> bytes:
    """A complete, valid 1-bit PNG of width x height black pixels: about 110 kB on disk for 900 megapixels."""
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte, then the packed pixels
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def truncated(relative: str = PORTRAIT, keep: float = 0.5) -> bytes:
    data = Path(face_file(relative)).read_bytes()
    return data[: int(len(data) * keep)]


def eps(relative: str = PORTRAIT) -> bytes:
    """A real Encapsulated PostScript file of the photo, as Pillow writes it (no Ghostscript needed to write)."""
    return encode(real(relative).convert("RGB"), "EPS")


def tiled_faces(big: list[str], small: list[str]) -> bytes:
    """A JPEG of portraits side by side: a row of `big` ones at twice their size over a row of `small` ones."""
    tile = (175, 220)
    images = [real(name).convert("RGB").resize(tile) for name in big + small]
    width = max(len(big) * tile[0] * 2, len(small) * tile[0])
    sheet = Image.new("RGB", (width, tile[1] * 3), "white")
    for number, image in enumerate(images[: len(big)]):
        sheet.paste(image.resize((tile[0] * 2, tile[1] * 2)), (number * tile[0] * 2, 0))
    for number, image in enumerate(images[len(big) :]):
        sheet.paste(image, (number * tile[0], tile[1] * 2))
    return encode(sheet, "JPEG", quality=92)


def pasted_face(
    relative: str, box: tuple[int, int, int, int], face_width: int, canvas: tuple[int, int], orientation: int = 1
) -> tuple[bytes, tuple[int, int, int, int]]:
    """A JPEG of a plain grey upright canvas with the photo's face pasted, its box (top, right, bottom, left in
    the photo) scaled to face_width px, in the canvas's middle; stored with the EXIF orientation tag. Returns
    it and where the face box landed (top, right, bottom, left in the upright canvas)."""
    top, right, bottom, left = box
    photo = real(relative).convert("RGB")
    factor = face_width / (right - left)
    scaled = photo.resize((round(photo.width * factor), round(photo.height * factor)), Image.Resampling.BICUBIC)
    upright = Image.new("RGB", canvas, (120, 120, 120))
    x, y = (canvas[0] - scaled.width) // 2, (canvas[1] - scaled.height) // 2
    upright.paste(scaled, (x, y))
    inverse = INVERSE_OF_ORIENTATION[orientation]
    stored = upright.transpose(inverse) if inverse is not None else upright
    exif = Image.Exif()
    exif[0x0112] = orientation
    landed = tuple(round(value * factor) + offset for value, offset in zip(box, (y, x, y, x), strict=True))
    return encode(stored, "JPEG", quality=90, exif=exif), landed
