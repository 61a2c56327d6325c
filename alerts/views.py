"""The alerts pages: alerts and summaries, the alert settings, test alerts, email confirmation."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core import signing
from django.core.cache import cache
from django.core.mail import send_mail
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from alerts import dispatch
from alerts.channels import CHANNELS
from alerts.forms import AlertSettingsForm, PersonAlertsForm
from alerts.models import AlertSettings, Delivery, Summary
from alerts.timeline import timeline
from recognition.models import Alert, Person
from recognition.views import is_local

ALERTS_PER_PAGE = 50
CONFIRM_SALT = "alerts.confirm-email"
CONFIRM_MAIL_INTERVAL = 60  # seconds between confirmation mails a user can trigger


@login_required
def alerts(request: HttpRequest) -> HttpResponse:
    page = Paginator(timeline(request.user), ALERTS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "alerts/alerts.html", {"page": page})


@login_required
def summary_detail(request: HttpRequest, pk: int) -> HttpResponse:
    summary = get_object_or_404(Summary.objects.select_related("person", "photo"), pk=pk, owner=request.user)
    listing = summary.alerts.select_related("person", "photo").prefetch_related("deliveries").order_by("-created_at")
    page = Paginator(listing, ALERTS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "alerts/summary.html", {"summary": summary, "page": page})


@require_POST
@login_required
def alert_read(request: HttpRequest, pk: int) -> HttpResponse:
    alert = get_object_or_404(Alert, pk=pk, owner=request.user)
    Alert.objects.filter(pk=alert.pk).update(seen=True)
    return back(request)


@require_POST
@login_required
def summary_read(request: HttpRequest, pk: int) -> HttpResponse:
    summary = get_object_or_404(Summary, pk=pk, owner=request.user)
    Summary.objects.filter(pk=summary.pk).update(seen=True)
    summary.alerts.update(seen=True)
    return back(request)


@require_POST
@login_required
def alerts_read_all(request: HttpRequest) -> HttpResponse:
    count = Alert.objects.filter(owner=request.user, seen=False).update(seen=True)
    count += Summary.objects.filter(owner=request.user, seen=False).update(seen=True)
    messages.success(request, f"Marked {count} alert{'' if count == 1 else 's'} as read.")
    return redirect("alerts")


def back(request: HttpRequest) -> HttpResponse:
    url = request.POST.get("next")
    return redirect(url if is_local(url) else "alerts")


@login_required
def alert_settings(request: HttpRequest) -> HttpResponse:
    prefs = AlertSettings.for_user(request.user)
    before = prefs.email_address
    form = AlertSettingsForm(request.POST or None, instance=prefs)
    if request.method == "POST" and form.is_valid():
        prefs = form.save()
        messages.success(request, "Settings saved.")
        if prefs.email_address and prefs.email_address != before and prefs.email_address != prefs.email_confirmed:
            send_confirmation(request, prefs)
        return redirect("settings")
    tests = {
        name: Delivery.objects.filter(owner=request.user, channel=name, alert=None, summary=None)[:1]
        for name in CHANNELS
    }
    channels = [(channel, tests[channel.name]) for channel in (cls(prefs) for cls in CHANNELS.values())]
    return render(request, "alerts/settings.html", {"form": form, "prefs": prefs, "channels": channels})


@require_POST
@login_required
def settings_new_secret(request: HttpRequest) -> HttpResponse:
    prefs = AlertSettings.for_user(request.user)
    prefs.webhook_secret = uuid.uuid4().hex
    prefs.save(update_fields=["webhook_secret"])
    messages.success(request, "A new webhook secret is in use from now on.")
    return redirect("settings")


@require_POST
@login_required
def send_test_alert(request: HttpRequest, channel: str) -> HttpResponse:
    prefs = AlertSettings.for_user(request.user)
    if channel not in CHANNELS or not CHANNELS[channel](prefs).is_enabled():
        messages.error(request, "Set this channel up first.")
        return redirect("settings")
    dispatch.send_test(prefs, channel)
    messages.success(request, f"A test alert is on its way by {CHANNELS[channel].label}; its result shows below.")
    return redirect("settings")


def confirmation_token(prefs: AlertSettings) -> str:
    return signing.dumps({"user": prefs.user_id, "email": prefs.email_address}, salt=CONFIRM_SALT)


def send_confirmation(request: HttpRequest, prefs: AlertSettings) -> bool:
    """Mail a link that confirms the address. Nothing the user typed goes in it but the address itself."""
    if not cache.add(f"alerts:confirm-mail:{prefs.user_id}", 1, CONFIRM_MAIL_INTERVAL):
        messages.error(request, "A confirmation link was sent a moment ago; wait a minute to send another.")
        return False
    link = settings.SITE_URL.rstrip("/") + reverse("confirm-email", args=[confirmation_token(prefs)])
    hours = settings.ALERT_EMAIL_CONFIRM_MAX_AGE // 3600
    send_mail(
        subject="Confirm your address for photosite alerts",
        message=(
            "Someone asked photosite to send alerts to this address. If that was you, open this link "
            f"(valid for {hours} hours) while signed in:\n\n{link}\n\nIf it was not you, ignore this mail: "
            "nothing will be sent to you.\n"
        ),
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=[prefs.email_address],
        fail_silently=True,
    )
    messages.info(request, f"We sent a link to {prefs.email_address}: alerts are emailed once you open it.")
    return True


@require_POST
@login_required
def resend_confirmation(request: HttpRequest) -> HttpResponse:
    prefs = AlertSettings.for_user(request.user)
    if prefs.email_address and not prefs.email_ready:
        send_confirmation(request, prefs)
    return redirect("settings")


@login_required
def confirm_email(request: HttpRequest, token: str) -> HttpResponse:
    """The link from the confirmation mail: signed, expiring, for the signed-in user and that address only."""
    prefs = AlertSettings.for_user(request.user)
    try:
        data = signing.loads(token, salt=CONFIRM_SALT, max_age=settings.ALERT_EMAIL_CONFIRM_MAX_AGE)
    except signing.SignatureExpired:
        messages.error(request, "This link has expired: send a new one from the settings.")
        return redirect("settings")
    except signing.BadSignature:
        messages.error(request, "This link is not valid.")
        return redirect("settings")
    if data.get("user") != request.user.pk or data.get("email") != prefs.email_address:
        messages.error(request, "This link is for another address or account.")
        return redirect("settings")
    AlertSettings.objects.filter(pk=prefs.pk).update(email_confirmed=prefs.email_address)
    messages.success(request, f"Confirmed: alerts are emailed to {prefs.email_address}.")
    return redirect("settings")


@require_POST
@login_required
def person_alerts(request: HttpRequest, pk: int) -> HttpResponse:
    person = get_object_or_404(Person, pk=pk, owner=request.user)
    form = PersonAlertsForm(request.POST, instance=person)
    if form.is_valid():
        form.save()
        messages.success(request, f"Alerts for {person}: {'on' if person.alerts_enabled else 'off'}.")
    else:
        messages.error(request, "Choose channels from the list.")
    return redirect(person)
