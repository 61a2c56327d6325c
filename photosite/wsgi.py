"""WSGI entry point for gunicorn."""

import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.urls import reverse

from photosite.memory import keep_freed_memory

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "photosite.settings")
application = get_wsgi_application()
# Import every view and build the URL map now, in each web worker as it starts, not in its first request:
# a restart would otherwise make the first users wait about a third of a second each.
reverse("gallery")
# An upload's body and its copies are reused by the next one instead of faulted in again.
keep_freed_memory(settings.MEMORY_KEEP_FREED_MB)
