"""{% person_alerts person %}: a person's alert rules, as a form, on the person page."""

from django import template

from alerts.forms import PersonAlertsForm

register = template.Library()


@register.inclusion_tag("alerts/_person_alerts.html", takes_context=True)
def person_alerts(context, person) -> dict:
    return {"person": person, "form": PersonAlertsForm(instance=person), "csrf_token": context.get("csrf_token")}
