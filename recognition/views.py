"""The gallery pages (placeholders until the web gallery lands)."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404

from recognition.models import Person, Photo


@login_required
def gallery(request: HttpRequest) -> HttpResponse:
    return HttpResponse("gallery")


@login_required
def photo_detail(request: HttpRequest, pk: int) -> HttpResponse:
    photo = get_object_or_404(Photo, pk=pk, owner=request.user)
    return HttpResponse(str(photo))


@login_required
def person_detail(request: HttpRequest, pk: int) -> HttpResponse:
    person = get_object_or_404(Person, pk=pk, owner=request.user)
    return HttpResponse(str(person))
