"""Template context shared by every page."""

from django.http import HttpRequest


def unread_alerts(request: HttpRequest) -> dict[str, int]:
    """The count of unread alerts for the page header."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"unread_alerts": user.alerts.filter(seen=False).count()}
