"""The benchmark work set and the accuracy evaluation; the timings themselves are for `make bench`, not tests."""

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from benchmarks import accuracy, workset
from recognition import engine
from tests.conftest import face_file

SMALL = (2016, 1512)  # half a phone photo, to keep the test fast; faces scale with it


def first_index(orientation: int, faces: workset.SourceFaces) -> int:
    for index in range(50):
        _, photo = workset.compose(index, workset.SEED, faces, SMALL)
        if photo.orientation == orientation:
            return index
    raise AssertionError(f"no photo with orientation {orientation} in the first 50")


@pytest.fixture
def source_faces(tmp_path) -> workset.SourceFaces:
    return workset.SourceFaces(tmp_path / "source_faces.json")


def test_work_set_is_deterministic_and_records_faces(source_faces):
    index = first_index(6, source_faces)
    first, photo = workset.compose(index, workset.SEED, source_faces, SMALL)
    again, same = workset.compose(index, workset.SEED, source_faces, SMALL)
    assert first == again and photo == same
    other, _ = workset.compose(index + 1, workset.SEED, source_faces, SMALL)
    assert other != first

    image = Image.open(io.BytesIO(first))
    assert image.format == "JPEG" and image.size == SMALL  # stored as the phone stores it
    assert image.getexif()[0x0112] == 6
    assert ImageOps.exif_transpose(image).size == (photo.width, photo.height) == (SMALL[1], SMALL[0])
    assert 1 <= len(photo.faces) <= 4
    for face in photo.faces:
        box = face.box
        assert 0 <= box["left"] < box["right"] <= photo.width and 0 <= box["top"] < box["bottom"] <= photo.height
        assert 150 * 0.5 * 0.999 <= box["right"] - box["left"] <= 900 * 0.5 + 1


def test_recorded_boxes_are_where_the_engine_finds_faces(source_faces):
    """In a rotated photo the engine's upright boxes land on the recorded ones, and nowhere else."""
    data, photo = workset.compose(first_index(8, source_faces), workset.SEED, source_faces, SMALL)
    found = [face.box.as_dict() for face in engine.detect_faces(data).faces]
    assert workset.faces_found(photo, found) >= 1
    for box in found:
        assert any(workset.is_found(face.box, [box]) for face in photo.faces), box


@pytest.mark.parametrize("orientation", [1, 6, 8])
def test_boxes_on_stored_pixels_map_to_upright(orientation):
    """What load_image_file (which ignores EXIF) finds is mapped to the upright frame the work set records."""
    upright = np.zeros((60, 80), dtype=np.uint8)
    upright[10:25, 50:70] = 255
    rotation = workset.STORE_ROTATION[orientation]
    stored = Image.fromarray(upright) if rotation is None else Image.fromarray(upright).transpose(rotation)
    # The stored pixels carry the tag: EXIF-aware readers get the upright picture back.
    assert np.array_equal(np.asarray(ImageOps.exif_transpose(tagged(stored, orientation))), upright)
    rows, cols = np.nonzero(np.asarray(stored))
    on_stored = {"top": rows.min(), "right": cols.max() + 1, "bottom": rows.max() + 1, "left": cols.min()}
    photo = workset.WorkPhoto("x.jpg", orientation, width=80, height=60, faces=[])
    mapped = workset.stored_to_upright({key: int(value) for key, value in on_stored.items()}, photo)
    assert mapped == {"top": 10, "right": 70, "bottom": 25, "left": 50}


def tagged(image: Image.Image, orientation: int) -> Image.Image:
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    image.save(out, format="PNG", exif=exif.tobytes())
    return Image.open(io.BytesIO(out.getvalue()))


def test_recall_counts_overlap_or_centre_inside():
    placed = {"top": 100, "right": 300, "bottom": 300, "left": 100}
    assert workset.is_found(placed, [{"top": 120, "right": 280, "bottom": 280, "left": 120}])
    assert workset.is_found(placed, [{"top": 0, "right": 210, "bottom": 400, "left": 190}])  # centre inside
    assert not workset.is_found(placed, [{"top": 290, "right": 900, "bottom": 900, "left": 290}])
    assert not workset.is_found(placed, [])


def encoding(relative: str) -> np.ndarray:
    return engine.encode_reference(str(face_file(relative))).encoding


def test_accuracy_evaluation_on_a_tiny_gallery(settings):
    references = {
        "obama": encoding("people/obama/portrait_2012.jpg"),
        "biden": encoding("people/biden/vp_portrait_2013.jpg"),
        "portraits/029701.jpg": encoding("portraits/029701.jpg"),
    }
    probes = [
        accuracy.Probe("people/obama/senate.jpg", "obama", [encoding("people/obama/senate.jpg")]),
        accuracy.Probe("people/biden/blue_room_2010.jpg", "biden", [encoding("people/biden/blue_room_2010.jpg")]),
        accuracy.Probe("people/hayes/photo_2.jpg", None, [encoding("people/hayes/photo_2.jpg")]),
        accuracy.Probe("nofaces/cat.png", None, []),
    ]
    result = accuracy.evaluate(references, probes, settings.FACES_MATCH_DISTANCE, settings.FACES_MATCH_MARGIN)
    assert result.true_matches == 2
    assert result.stranger_false_matches == 0
    assert len(result.of("strangers")) == 2
    obama = result.outcomes[0]
    assert obama.matched == ["obama"] and obama.nearest == "obama" and obama.distance < obama.second

    # A threshold nobody passes matches nobody: the figures follow the settings given, not the defaults.
    strict = accuracy.evaluate(references, probes, 0.1, 0.0)
    assert strict.true_matches == 0 and strict.stranger_false_matches == 0


def test_grouping_quality_figures_and_portrait_variants():
    from benchmarks import grouping

    rng = np.random.default_rng(4)
    ann, bob = rng.normal(0, 0.06, 128), rng.normal(0, 0.06, 128)
    vectors = np.stack([ann + rng.normal(0, 0.01, 128) for _ in range(4)] + [bob + rng.normal(0, 0.01, 128)] * 2)
    vectors = np.concatenate([vectors, rng.normal(0, 0.06, (3, 128))]).astype(np.float32)
    labels = ["ann"] * 4 + ["bob"] * 2 + ["x", "y", "z"]
    figures = grouping.quality(vectors, labels, grouping.Rule(0.45, 0.53, 3, 3))
    assert figures["groups_shown"] == 1 and figures["groups_pure"] == 1.0  # bob has 2 faces: no group
    assert figures["groups_recall"] == 1.0 and figures["stranger_groups"] == 0 and figures["people_with_3_faces"] == 1

    portrait = workset.portrait_files()[0]
    first, again, other = grouping.variant(portrait, 1), grouping.variant(portrait, 1), grouping.variant(portrait, 2)
    assert first == again and first != other  # seeded by file and number
    assert Image.open(io.BytesIO(first)).format == "JPEG"
