"""The match rule on ../shared/faces: known people found, strangers left alone.

Gallery: portraits 1-900 of portraits.csv plus obama, biden and hayes (one reference each, the largest face
of the photo as recognition.engine.encode_reference takes it). Probes: four independent photos of those
three, which must match the right person; the other 100 portraits, strangers who must match nobody; and
biden/senate.jpg, a hard case reported apart. The decision is recognition.matching.Gallery's, with the
project's settings, and again with plain distance thresholds for comparison.

    python -m benchmarks.accuracy
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "photosite.settings")
os.environ.setdefault("SECRET_KEY", "benchmarks-only-not-a-secret")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.test import override_settings  # noqa: E402

from benchmarks.workset import CACHE_DIR, FACES_DIR, portrait_files  # noqa: E402
from recognition import engine  # noqa: E402
from recognition.matching import Gallery  # noqa: E402

REFERENCES = {
    "obama": "people/obama/portrait_2012.jpg",
    "biden": "people/biden/vp_portrait_2013.jpg",
    "hayes": "people/hayes/photo_1.jpg",
}
TRUE_PROBES = {
    "people/obama/congress_address_2009.jpg": "obama",
    "people/obama/senate.jpg": "obama",
    "people/biden/blue_room_2010.jpg": "biden",
    "people/hayes/photo_2.jpg": "hayes",
}
HARD_PROBES = {"people/biden/senate.jpg": "biden"}
GALLERY_PORTRAITS = 900
PLAIN_THRESHOLDS = (0.6, 0.5)


@dataclass
class Probe:
    path: str
    expected: str | None  # None: a stranger
    faces: list[np.ndarray]
    hard: bool = False


@dataclass
class Outcome:
    path: str
    expected: str | None
    matched: list[str]
    nearest: str | None = None
    distance: float | None = None
    second: float | None = None  # distance to the next nearest person
    hard: bool = False

    @property
    def correct(self) -> bool:
        return self.matched == [self.expected] if self.expected else not self.matched


@dataclass
class Result:
    distance: float
    margin: float
    outcomes: list[Outcome] = field(default_factory=list)

    def of(self, kind: str) -> list[Outcome]:
        if kind == "true":
            return [o for o in self.outcomes if o.expected and not o.hard]
        if kind == "hard":
            return [o for o in self.outcomes if o.hard]
        return [o for o in self.outcomes if o.expected is None]

    @property
    def true_matches(self) -> int:
        return sum(o.correct for o in self.of("true"))

    @property
    def stranger_false_matches(self) -> int:
        return sum(not o.correct for o in self.of("strangers"))


def evaluate(references: dict[str, np.ndarray], probes: list[Probe], distance: float, margin: float) -> Result:
    """Match every probe's faces against a gallery of one encoding per name with the project's matcher."""
    names = sorted(references)
    gallery = Gallery(np.stack([references[name] for name in names]), np.arange(len(names)))
    result = Result(distance=distance, margin=margin)
    with override_settings(FACES_MATCH_DISTANCE=distance, FACES_MATCH_MARGIN=margin):
        for probe in probes:
            outcome = Outcome(probe.path, probe.expected, [], hard=probe.hard)
            if probe.faces:
                vectors = np.stack(probe.faces)
                matched = {names[m.person_id] for m in gallery.match(vectors) if m is not None}
                outcome.matched = sorted(matched)
                per_person = gallery.person_distances(vectors).min(axis=0)  # each person's nearest face
                order = np.argsort(per_person)
                outcome.nearest, outcome.distance = names[order[0]], round(float(per_person[order[0]]), 3)
                if len(order) > 1:
                    outcome.second = round(float(per_person[order[1]]), 3)
            result.outcomes.append(outcome)
    return result


# Encodings, cached by file and engine settings.


def _engine_key() -> str:
    import face_recognition

    return (
        f"side{settings.FACES_DETECT_MAX_SIDE}-up{settings.FACES_UPSAMPLE}-enc{settings.FACES_ENCODE_MIN_SIDE}"
        f"-fr{face_recognition.__version__}"
    )


def _stamp(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_size}:{int(stat.st_mtime)}"


def _encode(relative: str) -> tuple[str, list[dict]]:
    """Every face of one file, largest first (so faces[0] is what encode_reference keeps)."""
    analysis = engine.detect_faces(str(FACES_DIR / relative))
    faces = sorted(analysis.faces, key=lambda face: face.box.area, reverse=True)
    return relative, [{"box": f.box.as_dict(), "encoding": [float(x) for x in f.encoding]} for f in faces]


def encodings(files: list[str], cache_dir: Path = CACHE_DIR, processes: int | None = None) -> dict[str, list]:
    """file -> encodings of its faces (largest first), from the cache or computed in a process pool."""
    cache_path = cache_dir / f"encodings-{_engine_key()}.json"
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    missing = [f for f in files if cache.get(f, {}).get("stamp") != _stamp(FACES_DIR / f)]
    if missing:
        engine.load_models()  # once, before forking: the children share the loaded models
        processes = processes or os.cpu_count() or 1
        started = time.monotonic()
        if processes > 1 and len(missing) > 20:
            with multiprocessing.get_context("fork").Pool(processes) as pool:
                computed = pool.map(_encode, missing, chunksize=8)
        else:
            computed = [_encode(f) for f in missing]
        for relative, faces in computed:
            cache[relative] = {"stamp": _stamp(FACES_DIR / relative), "faces": faces}
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        cache_path.write_text(json.dumps(cache))
        print(f"encoded {len(missing)} files in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return {f: [np.asarray(face["encoding"], dtype=np.float32) for face in cache[f]["faces"]] for f in files}


def load_problem() -> tuple[dict[str, np.ndarray], list[Probe]]:
    portraits = portrait_files()
    gallery_files, stranger_files = portraits[:GALLERY_PORTRAITS], portraits[GALLERY_PORTRAITS:]
    everything = gallery_files + stranger_files + list(REFERENCES.values()) + list(TRUE_PROBES) + list(HARD_PROBES)
    found = encodings(everything)
    references = {}
    for relative in gallery_files:
        if found[relative]:
            references[relative] = found[relative][0]
    for name, relative in REFERENCES.items():
        references[name] = found[relative][0]
    probes = [Probe(path, name, found[path]) for path, name in TRUE_PROBES.items()]
    probes += [Probe(path, name, found[path], hard=True) for path, name in HARD_PROBES.items()]
    probes += [Probe(path, None, found[path]) for path in stranger_files]
    return references, probes


def run() -> dict:
    """The figures for benchmarks.run: the project's rule, then plain thresholds."""
    references, probes = load_problem()
    rule = evaluate(references, probes, settings.FACES_MATCH_DISTANCE, settings.FACES_MATCH_MARGIN)
    figures = {
        "true_matches": rule.true_matches,
        "true_probes": len(rule.of("true")),
        "stranger_false_matches": rule.stranger_false_matches,
        "strangers": len(rule.of("strangers")),
        "gallery_size": len(references),
        "match_distance": rule.distance,
        "match_margin": rule.margin,
        "hard_case_matched": all(o.correct for o in rule.of("hard")),
        "probes": {o.path: _describe(o) for o in rule.of("true") + rule.of("hard")},
    }
    for threshold in PLAIN_THRESHOLDS:
        plain = evaluate(references, probes, threshold, 0.0)
        suffix = f"plain_{round(threshold * 100):03d}"
        figures[f"true_matches_{suffix}"] = plain.true_matches
        figures[f"stranger_false_matches_{suffix}"] = plain.stranger_false_matches
        figures[f"hard_case_matched_{suffix}"] = all(o.correct for o in plain.of("hard"))
    return figures


def _describe(outcome: Outcome) -> dict:
    return {
        "expected": outcome.expected,
        "matched": outcome.matched,
        "nearest": outcome.nearest,
        "distance": outcome.distance,
        "next_person": outcome.second,
    }


def report(figures: dict) -> str:
    lines = [
        f"Gallery: {figures['gallery_size']} people (portraits 1-{GALLERY_PORTRAITS} + obama, biden, hayes).",
        f"Rule: nearest person within {figures['match_distance']} and every other person "
        f"at least {figures['match_margin']} farther.",
        f"  true matches: {figures['true_matches']}/{figures['true_probes']}",
        f"  strangers matched: {figures['stranger_false_matches']}/{figures['strangers']}",
    ]
    for path, probe in figures["probes"].items():
        hard = " (hard case)" if path in HARD_PROBES else ""
        lines.append(
            f"  {path}{hard}: matched {probe['matched'] or 'nobody'}, nearest {probe['nearest']} "
            f"at {probe['distance']}, next person at {probe['next_person']}"
        )
    for threshold in PLAIN_THRESHOLDS:
        suffix = f"plain_{round(threshold * 100):03d}"
        lines.append(
            f"Plain threshold {threshold} (nearest person, no margin): true matches "
            f"{figures[f'true_matches_{suffix}']}/{figures['true_probes']}, strangers matched "
            f"{figures[f'stranger_false_matches_{suffix}']}/{figures['strangers']}, hard case "
            f"{'matched' if figures[f'hard_case_matched_{suffix}'] else 'missed'}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(run()))
