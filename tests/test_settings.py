"""Production settings, read the way a server reads them: in a fresh process, from the environment alone."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys

from django.conf import settings

PRODUCTION = {
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "photos.example.com",
    # Behind an HTTPS proxy that sets X-Forwarded-Proto (README): plain HTTP is redirected, HSTS preloadable.
    "SECURE_SSL_REDIRECT": "1",
    "SECURE_HSTS_PRELOAD": "1",
}


def run(code_or_args: str | list[str], **env: str) -> subprocess.CompletedProcess:
    """Python in a fresh process with only these variables set (no SECRET_KEY, no DEBUG unless given)."""
    args = ["-c", code_or_args] if isinstance(code_or_args, str) else code_or_args
    environment = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **env}
    environment["DJANGO_SETTINGS_MODULE"] = "photosite.settings"
    return subprocess.run(
        [sys.executable, *args], cwd=settings.BASE_DIR, env=environment, capture_output=True, text=True, timeout=120
    )


READ_SETTINGS = """
import json
from django.conf import settings
names = ["DEBUG", "ALLOWED_HOSTS", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SESSION_COOKIE_HTTPONLY",
         "X_FRAME_OPTIONS", "SECURE_HSTS_SECONDS", "MEDIA_URL", "MIDDLEWARE", "REST_FRAMEWORK",
         "PHOTO_MAX_BYTES", "UPLOAD_RATE_LIMIT", "QUEUE_MAX_DEPTH", "JOB_TIMEOUT", "FACES_MAX_PIXELS",
         "RATE_LIMIT_FAIL_OPEN", "USER_QUOTA_BYTES"]
print(json.dumps({name: getattr(settings, name) for name in names}))
"""


def read_settings(**env: str) -> dict:
    result = run(READ_SETTINGS, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_secret_key_is_required_when_not_in_debug():
    result = run(READ_SETTINGS)
    assert result.returncode != 0
    assert "ImproperlyConfigured: Set SECRET_KEY in the environment" in result.stderr


def test_debug_is_off_by_default_and_cookies_are_secure():
    found = read_settings(SECRET_KEY=PRODUCTION["SECRET_KEY"], ALLOWED_HOSTS="photos.example.com, other.example")
    assert found["DEBUG"] is False
    assert found["ALLOWED_HOSTS"] == ["photos.example.com", "other.example"]
    assert found["SESSION_COOKIE_SECURE"] is True and found["CSRF_COOKIE_SECURE"] is True
    assert found["SESSION_COOKIE_HTTPONLY"] is True and found["X_FRAME_OPTIONS"] == "DENY"
    assert found["SECURE_HSTS_SECONDS"] > 0
    assert found["MEDIA_URL"] in ("", "/"), "no public media folder: media goes through owner-checking views"
    assert "django.middleware.csrf.CsrfViewMiddleware" in found["MIDDLEWARE"]
    assert found["REST_FRAMEWORK"]["DEFAULT_PERMISSION_CLASSES"] == ["rest_framework.permissions.IsAuthenticated"]


def test_an_empty_secure_cookies_is_the_safe_default():
    found = read_settings(SECRET_KEY=PRODUCTION["SECRET_KEY"], SECURE_COOKIES="")
    assert found["SESSION_COOKIE_SECURE"] is True and found["CSRF_COOKIE_SECURE"] is True
    assert read_settings(SECRET_KEY=PRODUCTION["SECRET_KEY"], SECURE_COOKIES="0")["SESSION_COOKIE_SECURE"] is False


def test_debug_runs_without_a_secret_key():
    found = read_settings(DJANGO_DEBUG="1")
    assert found["DEBUG"] is True


def test_limits_come_from_the_environment():
    found = read_settings(
        SECRET_KEY="x" * 50,
        PHOTO_MAX_BYTES="1000",
        UPLOAD_RATE_LIMIT="5/minute",
        QUEUE_MAX_DEPTH="7",
        JOB_TIMEOUT="9",
        FACES_MAX_PIXELS="1234",
        RATE_LIMIT_FAIL_OPEN="30",
        USER_QUOTA_BYTES="5000000",
    )
    assert (found["PHOTO_MAX_BYTES"], found["UPLOAD_RATE_LIMIT"], found["QUEUE_MAX_DEPTH"]) == (1000, "5/minute", 7)
    assert (found["JOB_TIMEOUT"], found["FACES_MAX_PIXELS"]) == (9, 1234)
    assert (found["RATE_LIMIT_FAIL_OPEN"], found["USER_QUOTA_BYTES"]) == (30, 5_000_000)


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], VAR_DIR=str(tmp_path), **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


READ_HEADERS = """
import json, sys
import django
django.setup()
from django.test import Client
client = Client(HTTP_HOST="photos.example.com")
answers = {}
for name, extra in [("plain http", {}), ("proxied https", {"HTTP_X_FORWARDED_PROTO": "https"})]:
    response = client.get("/accounts/login/", **extra)
    answers[name] = {"status": response.status_code, "headers": dict(response.headers),
                     "cookies": {key: dict(morsel) for key, morsel in response.cookies.items()}}
print(json.dumps(answers))
"""


def response_headers(tmp_path, **env: str) -> dict:
    result = run(READ_HEADERS, VAR_DIR=str(tmp_path), **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_behind_an_https_proxy_the_answers_carry_hsts_and_frame_denial(tmp_path):
    answers = response_headers(tmp_path, BEHIND_HTTPS_PROXY="1", **PRODUCTION)
    plain = answers["plain http"]
    assert plain["status"] == 301
    assert plain["headers"]["Location"] == "https://photos.example.com/accounts/login/"
    https = answers["proxied https"]
    assert https["status"] == 200
    headers = https["headers"]
    assert headers["Strict-Transport-Security"] == "max-age=3600; includeSubDomains; preload"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert https["cookies"]["csrftoken"]["secure"] is True


def test_without_the_proxy_setting_a_forwarded_proto_is_not_trusted(tmp_path):
    """A client could send X-Forwarded-Proto itself: unless BEHIND_HTTPS_PROXY says a proxy sets it, it is
    ignored, so the request is plain HTTP (redirected) and gets no HSTS."""
    answers = response_headers(tmp_path, **PRODUCTION)
    for answer in answers.values():
        assert answer["status"] == 301 and "Strict-Transport-Security" not in answer["headers"]


def test_alert_settings_come_from_the_environment():
    code = (
        "import json; from django.conf import settings as s; print(json.dumps([s.ALERT_COOLDOWN, "
        "s.ALERT_EARLIER_SETTLE, s.ALERT_RETRY_INTERVALS, s.ALERT_EMAIL_CONFIRM_MAX_AGE, s.WEBHOOK_ALLOW_LOCAL, "
        "s.MQTT_ALLOW_LOCAL, s.RQ_QUEUES['alerts']['URL'] == s.RQ_REDIS_URL]))"
    )
    defaults = run(code, DJANGO_DEBUG="1")
    assert defaults.returncode == 0, defaults.stderr
    assert json.loads(defaults.stdout) == [600, 30, [10, 60, 300], 72 * 3600, False, False, True]
    changed = run(code, DJANGO_DEBUG="1", ALERT_COOLDOWN="30s", ALERT_EARLIER_SETTLE="2m", ALERT_RETRY_INTERVALS="1,2",
                  ALERT_EMAIL_CONFIRM_MAX_AGE="900", WEBHOOK_ALLOW_LOCAL="1", MQTT_ALLOW_LOCAL="1")  # fmt: skip
    assert json.loads(changed.stdout) == [30, 120, [1, 2], 900, True, True, True]


READ_STORAGE = """
import json
from django.conf import settings
from django.core.files.storage import default_storage
options = {key: getattr(default_storage, key) for key in ("bucket_name", "endpoint_url", "location", "region_name",
                                                           "access_key", "querystring_expire", "default_acl")}
options["addressing_style"] = default_storage.client_config.s3["addressing_style"]
print(json.dumps({"backend": type(default_storage._wrapped).__name__, **options}))
"""


def test_media_on_s3_from_the_environment_alone():
    done = run(READ_STORAGE, **PRODUCTION, MEDIA_STORAGE="s3", S3_ENDPOINT_URL="http://minio:9000",
               S3_BUCKET="photos", S3_ACCESS_KEY_ID="key", S3_SECRET_ACCESS_KEY="secret", S3_REGION="eu-west-1",
               S3_PREFIX="/site/", MEDIA_REDIRECT_SECONDS="120")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "backend": "S3Storage", "bucket_name": "photos", "endpoint_url": "http://minio:9000", "location": "site",
        "region_name": "eu-west-1", "access_key": "key", "querystring_expire": 120, "default_acl": None,
        "addressing_style": "path",
    }  # fmt: skip
    missing = run(READ_STORAGE, **PRODUCTION, MEDIA_STORAGE="s3")
    assert missing.returncode != 0 and "S3_BUCKET" in missing.stderr
