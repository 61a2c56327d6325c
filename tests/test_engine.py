"""The face engine on real photos: opening, orientation, detection, boxes in original pixels."""

import io

import pytest
from PIL import Image

from recognition import engine
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
