"""Refuse a one-file upload form from its Content-Length, before any of its body is read.

Django's CSRF check parses a form's whole body (and so stores the file) before the view runs; this
middleware answers first. The API views make the same check themselves (DRF parses the body lazily).
The gallery's own form is left out: without JavaScript it posts several photos at once, each checked
on its own.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import Resolver404, resolve

from recognition.uploads import UploadRejected, check_content_length

ONE_FILE_FORMS = {"person-references"}


class RefuseOversizedUploads:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method == "POST" and _is_one_file_form(request.path_info):
            try:
                check_content_length(request.META)
            except UploadRejected as exc:
                context = {"message": exc.message, "back": request.path_info.rsplit("references/", 1)[0]}
                return render(request, "recognition/upload_refused.html", context, status=exc.status)
        return self.get_response(request)


def _is_one_file_form(path: str) -> bool:
    try:
        return resolve(path).url_name in ONE_FILE_FORMS
    except Resolver404:
        return False
