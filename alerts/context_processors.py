"""Template context shared by every page."""

from django.http import HttpRequest


def unread_alerts(request: HttpRequest) -> dict[str, int]:
    """The count of unread alerts and summaries for the page header."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    alerts = user.alerts.filter(seen=False, earlier=False).count()
    return {"unread_alerts": alerts + user.alert_summaries.filter(seen=False).count()}
