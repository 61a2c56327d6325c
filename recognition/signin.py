"""Brute-force limits on signing in, for the site's sign-in page and the admin's alike.

Failed attempts are counted (recognition.limits, in Redis) three ways:
- per account and client address (SIGN_IN_RATE_LIMIT, 5 per 15 minutes): an attacker guessing from
  their address is stopped there, and the owner signing in from theirs is not touched;
- per client address, whatever the account (10 times that): one address spraying many accounts;
- per account, whatever the address (10 times that): a guess spread over many addresses. A browser that
  has signed in to the account before (a signed cookie) is not held by this one, so an attacker can
  not lock the real owner out with it.
While one of them is full, sign-in answers 429 with Retry-After and says how long to wait, without
checking the password at all. A successful sign-in clears its (account, address) count.
"""

from __future__ import annotations

import ipaddress
import math

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied
from django.core.signing import BadSignature
from django.http import HttpRequest, HttpResponse

from recognition import limits
from recognition.limits import Rate

ACCOUNT_AND_ADDRESS = limits.Limit("sign-in", "SIGN_IN_RATE_LIMIT")
KNOWN_BROWSER_COOKIE = "photosite_known"
KNOWN_BROWSER_SALT = "photosite.signin.known-browser"
KNOWN_BROWSER_AGE = 365 * 24 * 3600
WIDER = 10  # the per-address and per-account limits allow this many times SIGN_IN_RATE_LIMIT


class ScaledLimit(limits.Limit):
    """A limit at `factor` times another setting's rate."""

    def __init__(self, name: str, setting: str, factor: int) -> None:
        super().__init__(name, setting)
        self.factor = factor

    @property
    def rate(self) -> Rate | None:
        rate = super().rate
        return Rate(rate.count * self.factor, rate.period) if rate else None


ADDRESS = ScaledLimit("sign-in-address", "SIGN_IN_RATE_LIMIT", WIDER)
ACCOUNT = ScaledLimit("sign-in-account", "SIGN_IN_RATE_LIMIT", WIDER)


def client_address(request: HttpRequest) -> str:
    """The client's address; behind the HTTPS proxy (BEHIND_HTTPS_PROXY) the one it appended to
    X-Forwarded-For. IPv6 clients are counted by their /64, which one client usually holds whole."""
    address = request.META.get("REMOTE_ADDR", "")
    if getattr(settings, "SECURE_PROXY_SSL_HEADER", None):
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")[-1].strip()
        address = forwarded or address
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address[:64] or "unknown"
    if parsed.version == 6:
        if parsed.ipv4_mapped:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


def account_key(username: str | None) -> str:
    return (username or "").strip().lower()[:150]


def known_browser(request: HttpRequest, account: str) -> bool:
    """This browser has signed in to this account before."""
    try:
        known = request.get_signed_cookie(KNOWN_BROWSER_COOKIE, salt=KNOWN_BROWSER_SALT, max_age=KNOWN_BROWSER_AGE)
    except (KeyError, BadSignature):
        return False
    return account in known.split(",")


def wait(request: HttpRequest, account: str) -> float:
    """Seconds until this client may try this account again; 0 when it may now."""
    address = client_address(request)
    waits = [ACCOUNT_AND_ADDRESS.wait(f"{account}|{address}"), ADDRESS.wait(address)]
    if not known_browser(request, account):
        waits.append(ACCOUNT.wait(account))
    return max(waits)


def failed(request: HttpRequest, account: str) -> None:
    address = client_address(request)
    ACCOUNT_AND_ADDRESS.hit(f"{account}|{address}")
    ADDRESS.hit(address)
    ACCOUNT.hit(account)


def succeeded(request: HttpRequest, account: str) -> None:
    ACCOUNT_AND_ADDRESS.clear(f"{account}|{client_address(request)}")
    request.signed_in_account = account  # SignInLimitMiddleware remembers this browser


class RateLimitedBackend(ModelBackend):
    """Django's ModelBackend behind the sign-in limits: a held client's password is not even checked."""

    def authenticate(self, request: HttpRequest | None, username=None, password=None, **kwargs):
        if request is None or password is None:
            return super().authenticate(request, username=username, password=password, **kwargs)
        account = account_key(username or kwargs.get("username"))
        seconds = wait(request, account)
        if seconds:
            request.sign_in_retry_after = seconds
            raise PermissionDenied("too many failed sign-ins")  # stops every backend; the form says why
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            failed(request, account)
        else:
            succeeded(request, account)
        return user


def held_message(seconds: float) -> str:
    return (
        f"Too many failed sign-ins for this account from your address. Try again in {limits.wait_words(seconds)}; "
        "if you have forgotten your password, ask the site's staff to reset it."
    )


class SignInLimitMiddleware:
    """Answers a held sign-in with 429 and Retry-After, and remembers the browsers that signed in."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        seconds = getattr(request, "sign_in_retry_after", None)
        if seconds:
            response.status_code = 429
            response["Retry-After"] = str(math.ceil(seconds))
        account = getattr(request, "signed_in_account", None)
        if account:
            self.remember(request, response, account)
        return response

    def remember(self, request: HttpRequest, response: HttpResponse, account: str) -> None:
        try:
            known = request.get_signed_cookie(KNOWN_BROWSER_COOKIE, salt=KNOWN_BROWSER_SALT, max_age=KNOWN_BROWSER_AGE)
        except (KeyError, BadSignature):
            known = ""
        accounts = [name for name in known.split(",") if name and name != account][-9:] + [account]
        response.set_signed_cookie(
            KNOWN_BROWSER_COOKIE,
            ",".join(accounts),
            salt=KNOWN_BROWSER_SALT,
            max_age=KNOWN_BROWSER_AGE,
            secure=settings.SESSION_COOKIE_SECURE,
            httponly=True,
            samesite="Lax",
        )
