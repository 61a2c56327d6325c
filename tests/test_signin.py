"""Brute-force limits on sign-in, counted in a real Redis: per account and address, per address, per account."""

from __future__ import annotations

import pytest
from django.test import Client

from recognition import signin

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "correct horse battery"  # the user fixture's


@pytest.fixture(autouse=True)
def fast_hasher(settings):
    """Tens of attempts per test: a quick hash (only the counting is under test here, not PBKDF2)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def attempt(client: Client, address: str, password: str, username: str = "alice", url: str = "/accounts/login/"):
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=address)


def assert_held(response) -> None:
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 15 * 60
    assert "Too many failed sign-ins for this account from your address. Try again in" in response.content.decode()
    assert "_auth_user_id" not in response.wsgi_request.session


def test_five_wrong_passwords_hold_that_address_not_the_owner(user, redis_server):
    attacker = Client()
    for _ in range(5):
        response = attempt(attacker, "203.0.113.9", "guess")
        assert response.status_code == 200
        assert "Please enter a correct username and password" in response.content.decode()
    assert_held(attempt(attacker, "203.0.113.9", PASSWORD))  # held: even the right password is not checked
    # The owner, from their own address, signs in as ever.
    assert attempt(Client(), "198.51.100.7", PASSWORD).status_code == 302
    # The admin's sign-in page is held by the same count.
    assert_held(attempt(Client(), "203.0.113.9", PASSWORD, url="/admin/login/?next=/admin/"))


def test_one_address_trying_many_accounts_is_held(user, redis_server, settings):
    settings.SIGN_IN_RATE_LIMIT = "2/15m"  # 20 per address
    client = Client()
    for number in range(20):
        assert attempt(client, "203.0.113.10", "guess", username=f"user{number}").status_code == 200
    assert_held(attempt(client, "203.0.113.10", "guess", username="someone-else"))
    assert attempt(Client(), "198.51.100.7", PASSWORD).status_code == 302


def test_a_spread_attack_on_one_account_does_not_lock_out_a_browser_that_signed_in_before(user, redis_server, settings):
    settings.SIGN_IN_RATE_LIMIT = "2/15m"  # 20 per account
    owner = Client()
    assert attempt(owner, "198.51.100.7", PASSWORD).status_code == 302
    assert signin.KNOWN_BROWSER_COOKIE in owner.cookies
    owner.post("/accounts/logout/")
    for number in range(20):
        assert attempt(Client(), f"203.0.113.{number + 20}", "guess").status_code == 200
    assert_held(attempt(Client(), "203.0.113.99", PASSWORD))  # a new address: held by the account's count
    assert_held(attempt(Client(), "198.51.100.8", PASSWORD))  # a new browser of the owner's, too
    # The browser that signed in before is not held by the account's count.
    assert attempt(owner, "198.51.100.7", PASSWORD).status_code == 302


def test_a_success_clears_the_count_of_its_address(user, redis_server):
    client = Client()
    for _ in range(4):
        attempt(client, "203.0.113.11", "typo")
    assert attempt(client, "203.0.113.11", PASSWORD).status_code == 302
    client.post("/accounts/logout/")
    for _ in range(4):
        assert attempt(client, "203.0.113.11", "typo").status_code == 200


@pytest.mark.parametrize(
    ("meta", "proxy", "address"),
    [
        ({"REMOTE_ADDR": "203.0.113.5"}, False, "203.0.113.5"),
        ({"REMOTE_ADDR": "2001:db8:1:2:3:4:5:6"}, False, "2001:db8:1:2::/64"),
        ({"REMOTE_ADDR": "::ffff:203.0.113.5"}, False, "203.0.113.5"),
        ({"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "1.2.3.4, 203.0.113.5"}, True, "203.0.113.5"),
        ({"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "203.0.113.5"}, False, "10.0.0.2"),
    ],
)
def test_client_address(rf, settings, meta, proxy, address):
    if proxy:
        settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    request = rf.get("/", **meta)
    assert signin.client_address(request) == address
