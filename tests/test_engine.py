"""The face engine on real photos: opening, orientation, detection, boxes in original pixels."""

import contextlib
import io
import math
import os
import struct
import threading
from collections.abc import Callable

import hypothesis
import numpy as np
import pytest
from django.test import override_settings
from hypothesis import strategies as st
from PIL import Image

from recognition import engine
from tests import images
from tests.conftest import face_file


def test_finds_one_face_in_a_portrait():
    analysis = engine.detect_faces(str(face_file("people/obama/portrait_2012.jpg")))
    assert (analysis.width, analysis.height) == (910, 1137)
    assert len(analysis.faces) == 1
    face = analysis.faces[0]
    assert face.encoding.dtype == engine.ENCODING_DTYPE and face.encoding.shape == (128,)
    assert 0 <= face.box.left < face.box.right <= analysis.width
    assert 0 <= face.box.top < face.box.bottom <= analysis.height


def test_group_photo_gives_at_least_eight_faces():
    analysis = engine.detect_faces(str(face_file("groups/situation_room_2011.jpg")))
    assert len(analysis.faces) >= 8


@pytest.mark.parametrize("name", ["cat.png", "rocket.jpg", "coffee.jpg", "brick.png", "grass.png"])
def test_no_faces_in_nofaces(name):
    assert engine.detect_faces(str(face_file(f"nofaces/{name}"))).faces == []


def test_boxes_map_back_from_a_downscaled_detection(settings):
    """Upscale a portrait past the detection size: the box must land on the face in full-size pixels."""
    source = Image.open(face_file("people/obama/portrait_2012.jpg"))
    small = engine.detect_faces(str(face_file("people/obama/portrait_2012.jpg"))).faces[0].box
    big = source.resize((source.width * 3, source.height * 3))
    data = io.BytesIO()
    big.save(data, format="JPEG", quality=92)
    settings.FACES_DETECT_MAX_SIDE = 1200
    analysis = engine.detect_faces(data.getvalue())
    assert (analysis.width, analysis.height) == big.size
    scaled = engine.Box(top=small.top * 3, right=small.right * 3, bottom=small.bottom * 3, left=small.left * 3)
    assert analysis.faces[0].box.overlap(scaled) > 0.7


def test_boxes_stay_on_the_faces_of_a_wide_group_photo(settings):
    """situation_room_2011 is 1500x1000: detected on a 1000 px copy, every box maps back onto a face found at
    full size, square as HOG finds them, inside the photo (a box clamped to the wrong side would collapse)."""
    path = str(face_file("groups/situation_room_2011.jpg"))
    settings.FACES_DETECT_MAX_SIDE = 1500
    full = engine.detect_faces(path)
    settings.FACES_DETECT_MAX_SIDE = 1000
    scaled = engine.detect_faces(path)
    assert (scaled.width, scaled.height) == (full.width, full.height) == (1500, 1000)
    assert len(scaled.faces) >= 8
    for face in scaled.faces:
        box = face.box
        assert 0 <= box.left < box.right <= 1500 and 0 <= box.top < box.bottom <= 1000, box
        assert 0.8 < (box.right - box.left) / (box.bottom - box.top) < 1.25, box
    # The two scales need not find exactly the same faces; at least 8 are found by both, in the same place.
    same = [face for face in scaled.faces if max(face.box.overlap(other.box) for other in full.faces) > 0.5]
    assert len(same) >= 8, [face.box for face in scaled.faces]
    assert max(face.box.right for face in scaled.faces) > 1000, "faces right of x=1000 are where they are"


@pytest.mark.parametrize("data", [b"", b"hello, I am text", b"\xff\xd8\xff\xe0" + b"\x00" * 20])
def test_unreadable_bytes_raise_our_error(data):
    with pytest.raises(engine.UnreadableImage):
        engine.detect_faces(data)


def test_truncated_jpeg_is_unreadable():
    data = face_file("people/obama/portrait_2012.jpg").read_bytes()
    with pytest.raises(engine.UnreadableImage):
        engine.detect_faces(data[: len(data) // 3])


def test_pixel_limit_is_checked_from_the_header(settings):
    settings.FACES_MAX_PIXELS = 1000 * 1000
    with pytest.raises(engine.UnreadableImage, match="over the limit"):
        engine.check_header(str(face_file("groups/situation_room_2011.jpg")))


def test_encoding_round_trips_through_bytes():
    face = engine.encode_reference(str(face_file("people/biden/vp_portrait_2013.jpg")))
    data = engine.encoding_to_bytes(face.encoding)
    assert len(data) == 512
    assert (engine.encoding_from_bytes(data) == face.encoding).all()


# Unusual images, at the engine: the upload tests run the same through the API and a worker.


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_gives_the_upright_image(orientation):
    upright = engine.open_image(images.oriented_jpeg(1))[0]
    image, width, height = engine.open_image(images.oriented_jpeg(orientation))
    assert image.size == (width, height) == (910, 1137)
    # The same pixels as the upright photo, give or take JPEG's rounding.
    difference = np.abs(np.asarray(image, dtype=np.int16) - np.asarray(upright, dtype=np.int16))
    assert difference.mean() < 3


def test_sixteen_bit_png_keeps_its_tones():
    image = engine.open_image(images.sixteen_bit_png())[0]
    gray = np.asarray(engine.open_image(images.grayscale_png())[0])
    assert image.mode == "RGB"
    assert np.abs(np.asarray(image, dtype=np.int16) - gray).max() <= 1


def test_alpha_is_flattened_on_white():
    image = engine.open_image(images.alpha_png())[0]
    assert image.mode == "RGB" and image.getpixel((0, 0)) == (255, 255, 255)


def test_png_bomb_is_refused_from_the_header():
    bomb = images.png_bomb(30_000, 30_000)
    for opener in (engine.check_header, engine.open_image, engine.detect_faces):
        with pytest.raises(engine.UnreadableImage, match="too many pixels"):
            opener(bomb)


def test_big_but_under_pillows_limit_is_refused_by_ours(settings):
    settings.FACES_MAX_PIXELS = 20_000_000
    with pytest.raises(engine.UnreadableImage, match="5000x5000 pixels, over the limit of 20,000,000"):
        engine.check_header(images.png_bomb(5000, 5000))


# Fuzzing the image-opening path with mutated real JPEG and PNG bytes: our error or an image, nothing else.


def _seeds() -> list[bytes]:
    seeds = [face_file(name).read_bytes() for name in ("people/biden/senate.jpg", "people/harris/senate.jpg")]
    seeds.append(images.encode(images.real("people/clinton/senate.jpg"), "PNG"))
    seeds.append(images.alpha_png("people/clinton/senate.jpg"))
    seeds.append(images.oriented_jpeg(6, "people/harris/senate.jpg"))  # with an EXIF block
    return seeds


SEEDS = _seeds()


@st.composite
def mutated_images(draw) -> bytes:
    """A real image with one to four bit flips, truncations, overwrites or splices of another image."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        end = len(data) - 1
        # Half the mutations hit the headers after the signature, where parsers branch most.
        at = draw(st.integers(min(8, end), min(end, 300)) | st.integers(0, end))
        kind = draw(st.sampled_from(["flip", "truncate", "overwrite", "splice"]))
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del data[at:]
        elif kind == "overwrite":
            data[at : at + 4] = draw(st.binary(min_size=1, max_size=4))
        else:
            other = draw(st.sampled_from(SEEDS))
            start = draw(st.integers(0, len(other)))
            data[at:at] = other[start : start + draw(st.integers(0, 3000))]
    return bytes(data)


def opens_or_is_unreadable(data: bytes, open_: Callable) -> None:
    with contextlib.suppress(engine.UnreadableImage):
        open_(data)


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about the damage it skips
@hypothesis.settings(max_examples=400, deadline=None, suppress_health_check=[hypothesis.HealthCheck.too_slow])
@hypothesis.given(data=mutated_images())
def test_fuzz_open_image_raises_only_unreadable_image(data):
    with override_settings(FACES_MAX_PIXELS=4_000_000):  # a flipped header must not ask for a long decode
        opens_or_is_unreadable(data, engine.check_header)
        opens_or_is_unreadable(data, lambda data: engine.open_image(data, max_side=64))


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about the damage it skips
@hypothesis.settings(max_examples=60, deadline=None, suppress_health_check=[hypothesis.HealthCheck.too_slow])
@hypothesis.given(data=mutated_images())
def test_fuzz_detect_faces_raises_only_unreadable_image(data):
    with override_settings(FACES_MAX_PIXELS=4_000_000, FACES_DETECT_MAX_SIDE=96):
        opens_or_is_unreadable(data, engine.detect_faces)


# Small rules, at their edges.


def test_encodings_have_the_declared_size():
    face = engine.encode_reference(str(face_file("people/biden/vp_portrait_2013.jpg")))
    stored = engine.encoding_from_bytes(engine.encoding_to_bytes(face.encoding))
    assert stored.shape == (engine.ENCODING_SIZE,) and stored.dtype == engine.ENCODING_DTYPE


def test_the_pixel_limit_is_inclusive(settings):
    path = str(face_file(images.PORTRAIT))  # 910 x 1137
    settings.FACES_MAX_PIXELS = 910 * 1137
    assert engine.check_header(path) == (910, 1137)
    settings.FACES_MAX_PIXELS = 910 * 1137 - 1
    with pytest.raises(engine.UnreadableImage, match="over the limit"):
        engine.check_header(path)


def png_of(array: np.ndarray, mode: str | None = None) -> bytes:
    data = io.BytesIO()
    Image.fromarray(array, mode).save(data, format="PNG")
    return data.getvalue()


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        ([0, 128, 255], [0, 128, 255]),  # 16-bit storage of 8-bit values: kept as they are
        ([0, 128, 256], [0, 0, 1]),  # past 255: the top 8 bits
        ([0, 32896, 65535], [0, 128, 255]),
    ],
)
def test_sixteen_bit_samples_become_eight_bit(samples, expected):
    array = np.array([samples], dtype=np.uint16)
    image = engine.open_image(png_of(array))[0]
    assert [pixel[0] for pixel in np.asarray(image)[0]] == expected


def test_a_transparent_palette_colour_becomes_white():
    image = Image.new("P", (4, 1))
    image.putpalette([0, 0, 0, 200, 30, 30] + [0, 0, 0] * 254)
    image.putpixel((0, 0), 0)
    image.putpixel((1, 0), 1)
    data = io.BytesIO()
    image.save(data, format="PNG", transparency=0)
    opened = engine.open_image(data.getvalue())[0]
    assert opened.getpixel((0, 0)) == (255, 255, 255) and opened.getpixel((1, 0)) == (200, 30, 30)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ((0, 10, 10, 0), (0, 10, 10, 0), 1.0),  # (top, right, bottom, left)
        ((0, 10, 10, 0), (0, 15, 10, 5), 50 / 150),
        ((20, 10, 30, 0), (25, 10, 35, 0), 50 / 150),  # away from the origin, overlapping top to bottom
        ((0, 10, 10, 0), (0, 30, 10, 20), 0.0),  # side by side, apart
        ((0, 10, 10, 0), (20, 10, 30, 0), 0.0),  # one above the other, apart
        ((5, 10, 5, 0), (5, 10, 5, 0), 0.0),  # no area at all
    ],
)
def test_box_overlap_is_intersection_over_union(a, b, expected):
    first, second = engine.Box(*a), engine.Box(*b)
    assert first.overlap(second) == pytest.approx(expected) == second.overlap(first)


def test_an_inverted_box_has_no_area_and_boxes_are_values():
    assert engine.Box(top=10, right=10, bottom=5, left=0).area == 0
    assert engine.Box(top=0, right=0, bottom=10, left=10).area == 0
    assert len({engine.Box(1, 2, 3, 4), engine.Box(1, 2, 3, 4)}) == 1


def test_loading_the_models_keeps_truncated_images_unreadable(monkeypatch):
    """Importing face_recognition turns on Pillow's LOAD_TRUNCATED_IMAGES for the whole process; loading the
    models turns it off again, so a truncated upload is still reported damaged, not decoded as grey."""
    monkeypatch.setattr(engine, "models_loaded_by", None)
    engine.load_models()
    with pytest.raises(engine.UnreadableImage, match=r"damaged \(it ends early\)"):
        engine.open_image(images.truncated(images.PORTRAIT, 0.5))


def test_a_large_photo_is_decoded_no_larger_than_the_detection_size():
    big = images.real(images.PORTRAIT).resize((2730, 3411))
    data = io.BytesIO()
    big.save(data, format="JPEG", quality=90)
    image, width, height = engine.open_image(data.getvalue(), max_side=1200)
    assert max(image.size) == 1200 and (width, height) == (2730, 3411)


# Limits: formats we document only, and a cap on the faces encoded per photo.


def test_eps_is_not_opened_and_never_reaches_ghostscript(monkeypatch):
    from PIL import EpsImagePlugin

    called = []
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", lambda *args, **kwargs: called.append(args))
    with pytest.raises(engine.UnreadableImage, match="not a known image format"):
        engine.detect_faces(images.eps())
    assert called == []


def test_past_the_face_cap_the_largest_faces_are_encoded(settings):
    big = ["people/obama/portrait_2012.jpg", "people/biden/vp_portrait_2013.jpg"]
    small = ["people/hayes/photo_1.jpg", "people/clinton/senate.jpg", "people/harris/senate.jpg"]
    sheet = images.tiled_faces(big, small)
    assert len(engine.detect_faces(sheet).faces) == 5
    settings.FACES_MAX_PER_PHOTO = 2
    analysis = engine.detect_faces(sheet)
    assert analysis.found == 5 and len(analysis.faces) == 2
    assert all(face.box.bottom <= 440 for face in analysis.faces), "both from the row of big portraits"
    assert analysis.note == "5 faces found: only the largest 2 were encoded and matched."


# The EXIF standard's numbers, not the engine's constants: a wrong constant there must fail these tests.
EXIF_TAGS = {"DATETIME_ORIGINAL": 0x9003, "DATETIME_DIGITIZED": 0x9004, "OFFSET_TIME_ORIGINAL": 0x9011}


def exif_jpeg(**tags) -> bytes:
    exif = Image.Exif()
    details = exif.get_ifd(0x8769)  # the Exif IFD
    for tag, value in tags.items():
        details[EXIF_TAGS[tag]] = value
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, format="JPEG", exif=exif)
    return out.getvalue()


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ({"DATETIME_ORIGINAL": "2021:07:04 18:30:05", "OFFSET_TIME_ORIGINAL": "-04:00"}, "2021-07-04T18:30:05-04:00"),
        ({"DATETIME_ORIGINAL": "2021:07:04 18:30:05"}, "2021-07-04T18:30:05"),  # naive: TIME_ZONE decides
        ({"DATETIME_DIGITIZED": "2020:01:02 03:04:05"}, "2020-01-02T03:04:05"),
        ({"DATETIME_ORIGINAL": "0000:00:00 00:00:00"}, None),  # a camera with no clock set
        ({}, None),
        # Only "+HH:MM" and "-HH:MM" are offsets (seconds after them are dropped); anything else is ignored.
        ({"DATETIME_ORIGINAL": "2021:07:04 18:30:05", "OFFSET_TIME_ORIGINAL": "+0530"}, "2021-07-04T18:30:05"),
        ({"DATETIME_ORIGINAL": "2021:07:04 18:30:05", "OFFSET_TIME_ORIGINAL": "+1a:00"}, "2021-07-04T18:30:05"),
        (
            {"DATETIME_ORIGINAL": "2021:07:04 18:30:05", "OFFSET_TIME_ORIGINAL": "-04:00:00"},
            "2021-07-04T18:30:05-04:00",
        ),
    ],
)
def test_capture_time_from_exif(tags, expected):
    image, _, _ = engine.open_image(exif_jpeg(**tags))
    taken = image.info["taken_at"]
    assert (taken.isoformat() if taken else None) == expected


# Faces are encoded from the original's pixels, not from the detection copy.

PHONE = (4032, 3024)


@pytest.fixture(scope="module")
def portrait() -> engine.DetectedFace:
    """Obama's portrait at its own size (910x1137, a face box 268 px wide): the reference encoding."""
    return engine.encode_reference(str(face_file(images.PORTRAIT)))


def pasted(portrait: engine.DetectedFace, face_width: int, canvas: tuple[int, int], orientation: int = 1):
    box = portrait.box
    data, landed = images.pasted_face(
        images.PORTRAIT, (box.top, box.right, box.bottom, box.left), face_width, canvas, orientation
    )
    return data, engine.Box(*landed)


def the_face(analysis: engine.Analysis, where: engine.Box) -> engine.DetectedFace:
    assert len(analysis.faces) == 1, analysis.faces
    assert analysis.faces[0].box.overlap(where) > 0.5, (analysis.faces[0].box, where)
    return analysis.faces[0]


def distance(a: engine.DetectedFace, b: engine.DetectedFace) -> float:
    return float(np.linalg.norm(a.encoding - b.encoding))


def test_a_small_face_in_a_phone_photo_encodes_as_at_full_size(portrait, settings, tmp_path):
    """110 px wide in a 4032x3024 photo, the face is 33 px in the 1200 px detection copy: encoded from the
    original's pixels it stays near the portrait's own encoding; from the copy's, it would not."""
    data, where = pasted(portrait, 110, PHONE)
    path = tmp_path / "phone.jpg"
    path.write_bytes(data)
    with path.open("rb") as file:  # a file, as the jobs pass it: decoded twice, from the start both times
        face = the_face(engine.detect_faces(file), where)
    assert distance(face, portrait) < 0.12
    settings.FACES_ENCODE_MIN_SIDE = 1  # any pixels will do: the detection copy's are used
    assert distance(the_face(engine.detect_faces(data), where), portrait) > 0.15


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_small_face_in_a_rotated_photo_gets_its_box_and_encoding(portrait, settings, orientation):
    """Stored turned or mirrored under an EXIF tag, the photo gives the upright box, and the face is encoded
    from the stored full-size pixels turned upright (here 1600x1200 detected at 600 px: the face is 56 px
    in the detection copy, 150 px in the original)."""
    settings.FACES_DETECT_MAX_SIDE = 600
    data, where = pasted(portrait, 150, (1600, 1200), orientation)
    analysis = engine.detect_faces(data)
    assert (analysis.width, analysis.height) == (1600, 1200)
    assert distance(the_face(analysis, where), portrait) < 0.12


def test_the_original_is_decoded_again_only_for_faces_too_small_in_the_first_decode(portrait, monkeypatch):
    decoded = []
    decode = engine.decode
    monkeypatch.setattr(engine, "decode", lambda *args: decoded.append(args[1]) or decode(*args))
    for face_width, decodes in [(110, 2), (600, 1)]:
        decoded.clear()
        data, where = pasted(portrait, face_width, PHONE)
        face = the_face(engine.detect_faces(data), where)
        assert distance(face, portrait) < 0.12
        assert len(decoded) == decodes, decoded
        if decodes == 2:  # the second at the scale that makes the face FACES_ENCODE_MIN_SIDE (100) px wide
            scale = 100 / (face.box.right - face.box.left)
            assert decoded[1] == (math.ceil(PHONE[0] * scale), math.ceil(PHONE[1] * scale)), decoded
    assert decoded == [(1200, 1200)], "a 600 px face is 179 px in the detection copy: enough"


def test_a_photo_within_the_detection_size_encodes_as_face_recognition_does(settings):
    """Encoded from the pixels around each box: the margin holds all dlib looks at, even at the edges."""
    import face_recognition

    settings.FACES_DETECT_MAX_SIDE = 1500
    path = str(face_file("groups/situation_room_2011.jpg"))
    analysis = engine.detect_faces(path)
    pixels = np.asarray(Image.open(path).convert("RGB"))
    locations = [(f.box.top, f.box.right, f.box.bottom, f.box.left) for f in analysis.faces]
    expected = face_recognition.face_encodings(pixels, known_face_locations=locations)
    assert len(analysis.faces) >= 8
    for face, encoding in zip(analysis.faces, expected, strict=True):
        assert np.allclose(face.encoding, encoding, atol=1e-6)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_pixels_around_a_box_are_the_upright_photos(orientation):
    upright = np.random.default_rng(orientation).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    inverse = images.INVERSE_OF_ORIENTATION[orientation]
    stored = Image.fromarray(upright) if inverse is None else Image.fromarray(upright).transpose(inverse)
    pixels = engine.Pixels(stored, scale=1.0, method=engine.ORIENTATIONS.get(orientation))
    # A box width of margin on each side, cut short at the photo's edges.
    for box, region in [
        ((20, 40, 32, 28), (slice(8, 44), slice(16, 52))),
        ((2, 10, 8, 0), (slice(0, 18), slice(0, 20))),
    ]:
        array, (top, right, bottom, left) = pixels.around(engine.Box(*box))
        assert np.array_equal(array, upright[region])
        assert np.array_equal(array[top:bottom, left:right], upright[box[0] : box[2], box[3] : box[1]])


def test_a_capture_time_east_of_greenwich_keeps_its_hours_and_minutes_and_drops_fractions():
    """Offsets are "+HH:MM" (east) or "-HH:MM"; what follows the seconds (some tools write fractions) is not
    part of the time."""
    image, _, _ = engine.open_image(
        exif_jpeg(DATETIME_ORIGINAL="2019:12:31 23:59:58.250", OFFSET_TIME_ORIGINAL="+10:45")
    )
    assert image.info["taken_at"].isoformat() == "2019-12-31T23:59:58+10:45"


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (EOFError(), "it ends early"),
        (OSError("image file is truncated (3 bytes not processed)"), "it ends early"),
        (OSError("unexpected end of file"), "it ends early"),
        (SyntaxError("broken PNG file: stream ended"), "it ends early"),
        (OSError("broken data stream when reading image file"), "its image data cannot be read"),
    ],
)
def test_damage_in_plain_words(error, words):
    assert engine.damage_in_plain_words(error) == f"this file is damaged ({words})"


def test_a_box_scaled_back_stays_inside_the_image():
    """Detection boxes may reach past the downscaled image's edges: scaled back, they end at the original's."""
    assert engine._scale_box((10, 50, 60, 5), 2.0, 400, 300) == engine.Box(top=20, right=100, bottom=120, left=10)
    assert engine._scale_box((-3, 110, 130, -2), 2.0, 200, 250) == engine.Box(top=0, right=200, bottom=250, left=0)
    assert engine._scale_box((0, 3, 3, 0), 1.5, 9, 9) == engine.Box(top=0, right=4, bottom=4, left=0)


def test_a_one_pixel_image_is_readable():
    """The smallest image there is: Pillow itself refuses a header with no rows or columns."""
    assert engine.check_header(png_of(np.zeros((1, 1, 3), dtype=np.uint8))) == (1, 1)


def test_an_image_without_an_orientation_tag_is_taken_as_stored():
    pixels = np.full((20, 40, 3), 255, dtype=np.uint8)
    pixels[:10, :20] = 0  # only the top left quarter is dark
    image = np.asarray(engine.open_image(png_of(pixels))[0])
    assert image[5, 5].max() < 50 and image[5, 35].min() > 200 and image[15, 5].min() > 200


def test_a_note_only_when_faces_were_left_unencoded():
    face = engine.DetectedFace(engine.Box(top=0, right=10, bottom=10, left=0), np.zeros(128, dtype=np.float32))
    assert engine.Analysis(width=10, height=10, faces=[face], found=1).note == ""
    assert engine.Analysis(width=10, height=10, faces=[face], found=2).note == (
        "2 faces found: only the largest 1 were encoded and matched."
    )


def test_a_damaged_exif_block_gives_no_capture_time_and_no_error():
    class Damaged:
        def get_ifd(self, tag):
            raise struct.error("unpack requires a buffer of 12 bytes")

    assert engine.capture_time(Damaged()) is None


def test_a_photo_from_a_pipe_is_read_once_and_decoded_twice(portrait):
    """A source that cannot seek (the fault tests' held files are pipes) still gets the second decode a small
    face needs."""
    data, where = pasted(portrait, 110, PHONE)
    read, write = os.pipe()
    writer = threading.Thread(target=lambda: os.fdopen(write, "wb").write(data) and None)
    writer.start()
    with os.fdopen(read, "rb") as source:
        assert not source.seekable()
        face = the_face(engine.detect_faces(source), where)
    writer.join()
    assert distance(face, portrait) < 0.12
