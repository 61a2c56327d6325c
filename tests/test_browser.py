"""The gallery in headless Chromium (Debian's, driven by Playwright) against the live server and a real worker.

Screenshots go to test-artifacts/ (ignored by git) for a person to look at.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from tests.conftest import face_file

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts"
PROCESSING_TIMEOUT_MS = 180_000

# Builds File objects in the page from base64 and drops them on the drop zone, as a desktop drag would.
DROP_FILES = """([files, selector]) => {
  const transfer = new DataTransfer();
  for (const [name, type, data] of files) {
    const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
    transfer.items.add(new File([bytes], name, { type }));
  }
  const zone = document.querySelector(selector);
  zone.dispatchEvent(new DragEvent("dragover", { dataTransfer: transfer, bubbles: true, cancelable: true }));
  zone.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
}"""


@pytest.fixture
def browser(monkeypatch):
    from playwright.sync_api import sync_playwright

    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"Chromium not found at {CHROMIUM}: run `make browser` (apt-get install chromium)")
    # Playwright's sync API runs an event loop in this thread; the ORM calls of the test are still sync.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser) -> Iterator:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


def file_for_drop(name: str, content_type: str, data: bytes) -> list[str]:
    return [name, content_type, base64.b64encode(data).decode()]


def sign_in(page, live_server) -> None:
    page.goto(live_server.url + "/")
    assert "/accounts/login/" in page.url
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", "correct horse battery")
    page.click("button:has-text('Sign in')")
    page.wait_for_url(live_server.url + "/")


def add_person_with_reference(page, live_server, name: str, reference: str) -> None:
    from playwright.sync_api import expect

    page.goto(live_server.url + "/people/")
    page.fill("input[name=name]", name)
    page.set_input_files("form.add-person input[name=image]", str(face_file(reference)))
    page.click("button:has-text('Add person')")
    page.wait_for_url("**/people/*/")
    # The reference's status follows its encoding job on the page, without a reload.
    reference = page.locator(".reference")
    expect(reference).to_have_attribute("data-status", "done", timeout=PROCESSING_TIMEOUT_MS)
    expect(reference.locator(".status")).to_have_text("done")


def test_upload_watch_and_see_who_is_there(page, live_server, user, start_worker):
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    start_worker()
    sign_in(page, live_server)
    add_person_with_reference(page, live_server, "Obama", "people/obama/portrait_2012.jpg")

    page.goto(live_server.url + "/")
    page.evaluate("window.sameDocument = true")  # gone if the page reloads
    page.set_input_files("input[name=images]", str(face_file("groups/obama_biden.jpg")))
    # Two more files dropped together: one photo, and one file that is not an image at all.
    page.evaluate(
        DROP_FILES,
        [
            [
                file_for_drop("cat.png", "image/png", face_file("nofaces/cat.png").read_bytes()),
                file_for_drop("notes.txt", "text/plain", b"not a photo"),
            ],
            "#drop-zone",
        ],
    )

    notes = page.locator(".upload-item", has_text="notes.txt")
    expect(notes).to_have_class("upload-item failed")
    expect(notes.locator(".upload-note")).to_contain_text("not an image we can read")
    expect(page.locator(".upload-item.ok")).to_have_count(2)

    card = page.locator(".card", has_text="obama_biden.jpg")
    expect(card).to_have_count(1)
    expect(card).to_have_attribute("data-status", "done", timeout=PROCESSING_TIMEOUT_MS)
    expect(card.locator(".names")).to_have_text("Obama")
    expect(card.locator(".thumb img")).to_be_visible()
    cat = page.locator(".card", has_text="cat.png")
    expect(cat).to_have_attribute("data-status", "done", timeout=PROCESSING_TIMEOUT_MS)
    assert page.evaluate("window.sameDocument") is True, "the cards changed without a reload"
    page.screenshot(path=str(ARTIFACTS / "gallery.png"), full_page=True)

    card.locator("a").click()
    page.wait_for_url("**/photos/*/")
    image = page.locator(".photo-frame img")
    expect(image).to_be_visible()
    page.wait_for_function("document.querySelector('.photo-frame img').complete")
    boxes = page.locator(".face-box")
    expect(boxes).to_have_count(2)
    obama = page.locator(".face-box", has_text="Obama")
    expect(obama.locator(".face-label")).to_have_text(re.compile(r"^1\. Obama 0\.3\d$"))
    expect(page.locator(".face-box", has_text="unknown")).to_have_count(1)
    # The box sits over Obama's face: the left part of the photo, inside the image.
    frame, box = image.bounding_box(), obama.bounding_box()
    assert frame["x"] <= box["x"] and box["x"] + box["width"] <= frame["x"] + frame["width"] / 2
    assert frame["y"] <= box["y"] and box["y"] + box["height"] <= frame["y"] + frame["height"]
    page.screenshot(path=str(ARTIFACTS / "photo_page.png"), full_page=True)

    # Name the unknown face: it becomes a new person, and the page says so by its box.
    page.fill("input[name=new_name]", "Biden")
    page.click(".name-face button")
    expect(page.locator(".face-box", has_text="Biden")).to_have_count(1)
    expect(page.locator(".messages")).to_contain_text("Named Biden")
    page.screenshot(path=str(ARTIFACTS / "photo_page_named.png"), full_page=True)

    # Readable on a phone: nothing runs off the side of the photo page or the gallery.
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(ARTIFACTS / "photo_page_phone.png"), full_page=True)
    page.goto(live_server.url + "/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(ARTIFACTS / "gallery_phone.png"), full_page=True)

    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(live_server.url + "/people/")
    expect(page.locator(".person-card")).to_have_count(2)
    expect(page.locator(".person-card", has_text="Obama")).to_contain_text("in 1 photo · 1 reference")
    page.screenshot(path=str(ARTIFACTS / "people.png"), full_page=True)
    page.click(".person-card a:has-text('Obama')")
    expect(page.locator(".reference .status")).to_have_text(["done"])
    expect(page.locator(".card", has_text="obama_biden.jpg")).to_have_attribute("data-status", "done")
    page.screenshot(path=str(ARTIFACTS / "person.png"), full_page=True)
    page.goto(live_server.url + "/alerts/")
    expect(page.locator(".alert.unread")).to_contain_text("Obama was found in obama_biden.jpg")
    page.screenshot(path=str(ARTIFACTS / "alerts.png"), full_page=True)
    page.click("button:has-text('Mark as read')")
    expect(page.locator(".alert.unread")).to_have_count(0)
    expect(page.locator("#unread-alerts")).to_have_count(0)

    page.goto(live_server.url + "/settings/")
    page.fill("input[name=webhook_url]", "https://hooks.example/photosite")
    page.click("button:has-text('Save')")
    expect(page.locator(".messages")).to_contain_text("Settings saved")
    expect(page.locator("#webhook-secret")).to_have_text(re.compile(r"^[0-9a-f]{32}$"))
    page.screenshot(path=str(ARTIFACTS / "settings.png"), full_page=True)


def test_who_is_this_groups_unknown_faces_and_names_them(page, live_server, user, start_worker):
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    start_worker()
    sign_in(page, live_server)
    files = ["people/obama/portrait_2012.jpg", "people/obama/congress_address_2009.jpg",
             "people/obama/portrait_2012_crop_small.jpg", "groups/obama_biden.jpg"]  # fmt: skip
    page.set_input_files("input[name=images]", [str(face_file(name)) for name in files])
    cards = page.locator(".card")
    expect(cards).to_have_count(4)
    for number in range(4):
        expect(cards.nth(number)).to_have_attribute("data-status", "done", timeout=PROCESSING_TIMEOUT_MS)

    # The grouping job runs after the photos: the page shows the group once it has.
    page.click("nav a:has-text('Who is this?')")
    group = page.locator(".group-card")
    for _ in range(60):
        if group.count():
            break
        page.wait_for_timeout(1000)
        page.reload()
    expect(group).to_have_count(1)
    expect(group.locator(".group-size")).to_have_text("4 faces")
    expect(group.locator(".group-faces img")).to_have_count(4)
    page.wait_for_function("[...document.querySelectorAll('.group-faces img')].every((i) => i.complete)")
    page.screenshot(path=str(ARTIFACTS / "who_is_this.png"), full_page=True)

    group.locator("a.button:has-text('Name')").click()
    page.wait_for_url("**/who/*/")
    expect(page.locator(".group-face")).to_have_count(4)
    page.wait_for_function("[...document.querySelectorAll('.group-face img')].every((i) => i.complete)")
    page.screenshot(path=str(ARTIFACTS / "group.png"), full_page=True)
    page.fill(".name-group input[name=new_name]", "Obama")
    page.click(".name-group button")
    page.wait_for_url("**/people/*/")
    expect(page.locator(".messages")).to_contain_text("Named 4 faces Obama")
    expect(page.locator(".card")).to_have_count(4)
    expect(page.locator(".reference")).to_have_count(4)  # one per photo: at most 5, from different photos
    page.screenshot(path=str(ARTIFACTS / "group_named.png"), full_page=True)

    page.goto(live_server.url + "/")
    for number in range(4):
        expect(cards.nth(number).locator(".names")).to_contain_text("Obama")
    page.goto(live_server.url + "/who/")
    expect(page.locator(".group-card")).to_have_count(0)
