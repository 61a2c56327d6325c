"""The WSGI entry point gunicorn's web workers import (photosite/wsgi.py)."""

from __future__ import annotations

from tests.test_settings import run

IMPORTED = (
    "import sys, photosite.wsgi; "
    "print(all(name in sys.modules for name in ('recognition.views', 'recognition.api', 'alerts.views', 'jobs.views')))"
)


def test_a_web_worker_imports_every_view_before_its_first_request():
    """Otherwise each web worker's first request imports them (a third of a second here) after a restart."""
    result = run(IMPORTED, DJANGO_DEBUG="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True"]
