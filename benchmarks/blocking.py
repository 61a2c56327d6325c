"""The blocking server the project is measured against: a Django view that does the work inside the request.

Same engine, same matcher, no queue: the upload answers only when its faces are found and matched.
Served by gunicorn with --preload, so the face models are loaded once before the web workers fork:

    DJANGO_SETTINGS_MODULE=benchmarks.blocking_settings gunicorn benchmarks.blocking:application --preload
"""

from __future__ import annotations

import os
from functools import cache

import numpy as np
from django.core.wsgi import get_wsgi_application
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.blocking_settings")


@cache
def gallery():
    """The three known people of the accuracy script, encoded once per process."""
    from benchmarks.accuracy import REFERENCES
    from benchmarks.workset import FACES_DIR
    from recognition import engine
    from recognition.matching import Gallery

    names = sorted(REFERENCES)
    encodings = [engine.encode_reference(str(FACES_DIR / REFERENCES[name])).encoding for name in names]
    return Gallery(np.stack(encodings), np.arange(len(names))), names


@csrf_exempt
@require_POST
def upload(request: HttpRequest) -> JsonResponse:
    from recognition import engine

    image = request.FILES.get("image")
    if image is None:
        return JsonResponse({"error": "attach an image in the 'image' field"}, status=400)
    try:
        analysis = engine.detect_faces(image)
    except engine.UnreadableImage as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    people, names = gallery()
    matches = people.match(np.stack([f.encoding for f in analysis.faces])) if analysis.faces else []
    faces = [
        {"box": face.box.as_dict(), "person": names[found.person_id] if found else None}
        for face, found in zip(analysis.faces, matches, strict=True)
    ]
    return JsonResponse({"width": analysis.width, "height": analysis.height, "faces": faces})


urlpatterns = [path("upload/", upload)]

application = get_wsgi_application()


def preload() -> None:
    """Load the models and the gallery before gunicorn forks its workers."""
    from recognition import engine

    engine.load_models()
    gallery()


preload()
