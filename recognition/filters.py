"""The gallery's filters, one definition for the page and the API: who is in the photo (all of several),
unknown faces, status, and a range of capture dates.

    ?person=3&person=7&unknown=1&status=failed,waiting&taken_after=2024-01-01&taken_before=2024-12-31

Values may repeat or be comma-separated. Dates are days in TIME_ZONE (both ends included) or ISO 8601
date-times.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

from django.db.models import Exists, OuterRef, QuerySet
from django.http import QueryDict
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.http import urlencode

from recognition.models import Face, Person, PhotoStatus

TRUE = {"1", "true", "yes", "on"}


class BadFilter(ValueError):
    """A filter value that cannot be understood; the message says which and why."""


def _values(params: QueryDict, name: str) -> list[str]:
    return [part.strip() for value in params.getlist(name) for part in value.split(",") if part.strip()]


def _moment(value: str, name: str, end_of_day: bool) -> datetime:
    day = parse_date(value) if len(value) == 10 else None
    if day is not None:
        day = day + timedelta(days=1) if end_of_day else day
        return timezone.make_aware(datetime.combine(day, time.min))
    try:
        moment = parse_datetime(value)
    except ValueError:
        moment = None
    if moment is None:
        raise BadFilter(f"{name}: give a date (YYYY-MM-DD) or an ISO 8601 date-time, not {value!r}.")
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment)


MAX_ID = 2**63 - 1  # the largest id a 64-bit integer column holds


def is_id(value: str) -> bool:
    """A whole number an id column can hold: a larger one would fail the query (`pk__in`), not miss."""
    value = value.strip()
    return value.isascii() and value.isdecimal() and 0 < int(value) <= MAX_ID


@dataclass
class PhotoFilter:
    people: list[Person] = field(default_factory=list)
    unknown: bool = False
    statuses: list[str] = field(default_factory=list)
    taken_after: str = ""
    taken_before: str = ""

    @classmethod
    def from_query(cls, params: QueryDict, owner) -> PhotoFilter:
        """Read the filters of a request; BadFilter for a value that is not understood."""
        ids = _values(params, "person")
        if not all(is_id(value) for value in ids):
            raise BadFilter("person: give the ids of your people.")
        people = list(Person.objects.filter(owner=owner, pk__in=ids))
        if len(people) != len(set(ids)):
            raise BadFilter("person: no such person.")
        statuses = _values(params, "status")
        unknown_statuses = set(statuses) - set(PhotoStatus.values)
        if unknown_statuses:
            raise BadFilter(
                f"status: one of {', '.join(PhotoStatus.values)}, not {', '.join(sorted(unknown_statuses))}."
            )
        found = cls(
            people=people,
            unknown=params.get("unknown", "").lower() in TRUE,
            statuses=statuses,
            taken_after=params.get("taken_after", "").strip(),
            taken_before=params.get("taken_before", "").strip(),
        )
        found.bounds()  # checks the dates
        return found

    def bounds(self) -> tuple[datetime | None, datetime | None]:
        after = _moment(self.taken_after, "taken_after", end_of_day=False) if self.taken_after else None
        before = _moment(self.taken_before, "taken_before", end_of_day=True) if self.taken_before else None
        return after, before

    def apply(self, photos: QuerySet) -> QuerySet:
        for person in self.people:  # photos with all of them: one EXISTS each, no duplicate rows
            photos = photos.filter(Exists(Face.objects.filter(photo=OuterRef("pk"), person=person)))
        if self.unknown:
            photos = photos.filter(Exists(Face.objects.filter(photo=OuterRef("pk"), person__isnull=True)))
        if self.statuses:
            photos = photos.filter(status__in=self.statuses)
        after, before = self.bounds()
        if after is not None:
            photos = photos.filter(taken_at__gte=after)
        if before is not None:
            # A day ends where the next begins; a date-time is that very moment.
            photos = (
                photos.filter(taken_at__lt=before)
                if len(self.taken_before) == 10
                else photos.filter(taken_at__lte=before)
            )
        return photos

    @property
    def active(self) -> bool:
        return bool(self.people or self.unknown or self.statuses or self.taken_after or self.taken_before)

    def query(self) -> str:
        """The filters as a query string (ending in & when not empty), for links to other pages."""
        pairs = [("person", person.pk) for person in self.people]
        pairs += [("unknown", 1)] if self.unknown else []
        pairs += [("status", status) for status in self.statuses]
        pairs += [
            (name, value)
            for name, value in (("taken_after", self.taken_after), ("taken_before", self.taken_before))
            if value
        ]
        return urlencode(pairs) + "&" if pairs else ""
