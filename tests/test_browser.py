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

    # A card opens the viewer; its "Photo page" link goes on to the photo's page.
    card.locator(".card-link").click()
    expect(page.locator("#viewer")).to_be_visible()
    page.click("#viewer-open")
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


# Issue 16: the gallery as people use it.

AXE = Path(os.environ.get("AXE_JS", Path(settings.BASE_DIR) / "var/axe/node_modules/axe-core/axe.min.js"))
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]
PHONE = {"width": 390, "height": 844}


def axe_violations(page) -> list[str]:
    """axe-core's violations of WCAG 2.2 AA (and its best practices) on the page as it is now."""
    if not AXE.exists():
        pytest.fail(f"axe-core not found at {AXE}: run `make axe` (npm install axe-core)")
    page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        """async (tags) => (await axe.run(document, { runOnly: { type: "tag", values: tags } })).violations
             .map((v) => v.id + ": " + v.nodes.map((n) => n.target.join(" ")).join(", "))""",
        AXE_TAGS,
    )
    return found


def sideways_scroll(page) -> int:
    """How many pixels the page scrolls sideways (0 when it fits)."""
    return page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")


def too_wide(page) -> list[str]:
    """The elements that run past the right edge of the window, to say what to fix."""
    return page.evaluate(
        """() => Array.from(document.querySelectorAll("body *"))
             .filter((e) => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
             .slice(0, 8)
             .map((e) => `${e.tagName}#${e.id}.${e.className} ${Math.round(e.getBoundingClientRect().right)}`)"""
    )


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def api_upload(user, relative: str) -> int:
    from tests.conftest import token_client, upload_of

    response = token_client(user).post("/api/photos/", {"image": upload_of(relative)})
    assert response.status_code == 202, response.content
    return response.json()["id"]


def add_person_on_page(page, live_server, name: str, reference: str | None = None) -> None:
    page.goto(live_server.url + "/people/")
    page.fill("input[name=name]", name)
    if reference:
        page.set_input_files("form.add-person input[name=image]", str(face_file(reference)))
    page.click("#add-person-submit")


def test_group_reference_failed_reference_and_matching_cards(page, live_server, user, run_jobs):
    """Bugs 1, 3 and 4: a group photo as a reference waits for a choice; a failed reference says so;
    a name in use asks; cards say "matching..." while references are encoded, then update live."""
    from playwright.sync_api import expect

    from recognition.models import Person, Photo

    photo_id = api_upload(user, "groups/obama_biden.jpg")
    run_jobs()
    sign_in(page, live_server)
    add_person_on_page(page, live_server, "Obama", "people/obama/portrait_2012.jpg")
    page.wait_for_url("**/people/*/")

    page.goto(live_server.url + "/")
    page.evaluate("window.sameDocument = true")
    card = page.locator(f'.card[data-photo-id="{photo_id}"]')
    expect(card.locator(".status")).to_have_text("matching…")  # Obama's reference is still to be encoded
    expect(card.locator(".names")).to_have_text("")
    shot(page, "gallery_matching")
    run_jobs()  # the encoding, then the re-match
    expect(card.locator(".names")).to_have_text("Obama", timeout=30_000)
    expect(card.locator(".status")).to_have_text("done")
    assert page.evaluate("window.sameDocument") is True

    # A group photo as a reference: nothing is guessed, the person page asks which face.
    add_person_on_page(page, live_server, "Group Person", "groups/obama_biden.jpg")
    page.wait_for_url("**/people/*/")
    run_jobs()
    picks = page.locator(".face-pick")
    expect(picks).to_have_count(2, timeout=30_000)  # the page reloads itself once the faces are found
    expect(picks.first).to_contain_text("is Obama")
    assert Photo.objects.get(pk=photo_id).people_names() == ["Obama"]
    assert axe_violations(page) == []
    shot(page, "person_choose_face")
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    picks.first.click()  # Obama's face: it warns, and "Cancel" keeps it Obama's
    assert asked and asked[0].startswith("This face is Obama now.")
    expect(picks).to_have_count(2)
    picks.nth(1).click()
    expect(page.locator(".messages")).to_contain_text("This face is now Group Person's reference.")
    expect(page.locator(".reference .status")).to_have_text("done")
    run_jobs()
    assert Photo.objects.get(pk=photo_id).people_names() == ["Group Person", "Obama"]

    # A cat as the only reference: not their picture, not counted, and the people page says it failed.
    add_person_on_page(page, live_server, "Cat", "nofaces/cat.png")
    page.wait_for_url("**/people/*/")
    run_jobs()
    page.goto(live_server.url + "/people/")
    cat = page.locator(".person-card", has_text="Cat")
    expect(cat).to_contain_text("0 references")
    expect(cat.locator(".reference-failed")).to_have_text("1 reference photo failed")
    expect(cat.locator("img")).to_have_count(0)
    # A name in use asks before making a second one, and keeps the photo chosen.
    add_person_on_page(page, live_server, "obama", "people/obama/senate.jpg")
    expect(page.locator("#name-in-use")).to_contain_text("You already have Obama. Add to the existing person?")
    assert page.url.endswith("/people/")  # asked on the page: nothing was sent yet
    assert axe_violations(page) == []
    shot(page, "people_name_in_use")
    page.click("button:has-text('Add to Obama')")
    page.wait_for_url("**/people/*/")
    expect(page.locator("h1")).to_have_text("Obama")
    expect(page.locator(".reference")).to_have_count(2)
    assert Person.objects.filter(owner=user, name__iexact="obama").count() == 1


@pytest.fixture
def album(user):
    """Six photos, taken on different days; the newest has Obama and an unknown face."""
    from datetime import UTC, datetime

    import numpy as np

    from recognition import engine
    from recognition.models import Alert, Face, Person, PhotoStatus
    from tests.conftest import stored_photo

    obama = Person.objects.create(owner=user, name="Obama")
    files = ["groups/obama_biden.jpg", "people/obama/senate.jpg", "nofaces/cat.png", "people/biden/senate.jpg",
             "nofaces/rocket.jpg", "people/hayes/photo_1.jpg"]  # fmt: skip
    photos = []
    for day, relative in enumerate(files, start=1):
        taken = datetime(2024, 6, 30 - day, 12, tzinfo=UTC)
        photo = stored_photo(user, relative, status=PhotoStatus.DONE, taken_at=taken, taken_at_source="exif")
        with photo.image.open("rb") as source:
            image, photo.width, photo.height = engine.open_image(source, max_side=1600)
        photo.save()
        photo.store_renditions(image)  # what the job would have stored
        photos.append((photo, image))
    pictures, photos = photos, [photo for photo, _ in photos]
    zero = engine.encoding_to_bytes(np.zeros(128))
    group = photos[0]
    face = Face.objects.create(
        photo=group, top=40, left=60, bottom=140, right=150, encoding=zero, person=obama, distance=0.33
    )
    Face.objects.create(photo=group, top=40, left=330, bottom=140, right=420, encoding=zero)
    Face.objects.create(
        photo=photos[1], top=10, left=10, bottom=60, right=60, encoding=zero, person=obama, distance=0.5
    )
    Alert.objects.create(owner=user, photo=group, person=obama, face=face, distance=0.33)
    for photo, image in pictures:
        photo.store_missing_crops(image)
    return photos


def test_viewer_keys_select_many_and_filters(page, live_server, user, album, redis_server):
    from playwright.sync_api import expect

    page.set_viewport_size({"width": 1280, "height": 500})
    sign_in(page, live_server)
    cards = page.locator(".card[data-photo-id]")
    expect(cards).to_have_count(6)
    expect(page.locator(".date-heading").first).to_have_text("Saturday 29 June 2024")

    # The viewer: in the gallery's order, arrow keys, Escape back to the same place.
    page.evaluate("window.scrollTo(0, 150)")
    cards.nth(1).locator(".card-link").click()
    viewer = page.locator("#viewer")
    expect(viewer).to_be_visible()
    scrolled = page.evaluate("window.scrollY")  # where the gallery was when the card was clicked
    assert scrolled > 0
    expect(page.locator("#viewer-title")).to_have_text(re.compile(r"\(2 of 6\)$"))
    page.keyboard.press("ArrowRight")
    expect(page.locator("#viewer-title")).to_have_text(re.compile(r"\(3 of 6\)$"))
    swipe = """(dx) => { const viewer = document.getElementById("viewer");
      const at = (x) => new Touch({ identifier: 1, target: viewer, clientX: x, clientY: 200 });
      viewer.dispatchEvent(new TouchEvent("touchstart", { touches: [at(300)], changedTouches: [at(300)] }));
      viewer.dispatchEvent(new TouchEvent("touchend", { touches: [], changedTouches: [at(300 + dx)] })); }"""
    page.evaluate(swipe, -120)  # a swipe to the left: the next photo
    expect(page.locator("#viewer-title")).to_have_text(re.compile(r"\(4 of 6\)$"))
    page.evaluate(swipe, 120)
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#viewer-title")).to_have_text(re.compile(r"^obama_biden.jpg \(1 of 6\)$"))
    expect(page.locator("#viewer-caption")).to_contain_text("Taken")
    expect(viewer.locator(".face-box")).to_have_count(2)
    assert axe_violations(page) == []
    shot(page, "viewer")
    page.keyboard.press("Escape")
    expect(viewer).to_be_hidden()
    # The dialog's close event, which restores both, comes as a task after it hides: waited for, as expect() waits.
    # Focus goes back to the card shown last: the first of the page (and the photo the viewer named above).
    first_card = "document.querySelector('#photo-grid .card[data-photo-id]')"
    page.wait_for_function(f"document.activeElement && document.activeElement.closest('.card') === {first_card}")
    assert page.evaluate("window.scrollY") == scrolled
    page.keyboard.press("Enter")  # from the keyboard alone, the focused card opens again
    expect(page.locator("#viewer-title")).to_have_text(re.compile(r"\(1 of 6\)$"))
    page.keyboard.press("Escape")
    # A face box in the viewer opens that face's actions.
    cards.nth(0).locator(".card-link").click()
    viewer.locator(".face-box.known").click()
    page.wait_for_url(f"**/photos/{album[0].pk}/#face-*")
    assert page.evaluate("document.activeElement.classList.contains('face')")
    page.go_back()

    # Filters: in the URL, shareable, and the back button works.
    page.locator(".filter-people summary").click()
    page.check("input[name=person]")
    page.click("#filters button[type=submit]")
    page.wait_for_url(re.compile(r"\?person=\d+"))
    expect(cards).to_have_count(2)
    page.check("input[name=unknown]")
    page.click("#filters button[type=submit]")
    expect(cards).to_have_count(1)
    assert "unknown=1" in page.url
    shot(page, "gallery_filtered")
    page.go_back()
    expect(cards).to_have_count(2)
    page.go_back()
    expect(cards).to_have_count(6)

    # Select many: click, shift-click for a range, "x" on a card from the keyboard; one confirmation.
    cards.nth(1).locator(".select").click()
    cards.nth(3).locator(".select").click(modifiers=["Shift"])
    expect(page.locator("#selection-count")).to_have_text("3 selected")
    cards.nth(5).locator(".card-link").focus()
    page.keyboard.press("x")
    expect(page.locator("#selection-count")).to_have_text("4 selected")
    cards.nth(4).locator(".card-link").focus()
    page.keyboard.press("Shift+X")  # a range from the last one ticked: 4 and 5 are now both in
    expect(page.locator("#selection-count")).to_have_text("5 selected")
    page.keyboard.press("x")
    expect(page.locator("#selection-count")).to_have_text("4 selected")
    shot(page, "gallery_selected")
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
    page.click("#bulk-form button[value=delete]")
    expect(page.locator(".messages")).to_contain_text("Deleted 4 photos.")
    assert asked == ["Delete 4 photos? This cannot be undone."]
    expect(cards).to_have_count(2)


def test_not_this_person_says_who_and_focus_stays_on_the_face(page, live_server, user, album):
    from playwright.sync_api import expect

    sign_in(page, live_server)
    page.goto(live_server.url + album[0].get_absolute_url())
    face = page.locator(".face", has_text="Obama")
    face.locator("button:has-text('Not Obama')").click()
    expect(page.locator(".messages")).to_contain_text("Noted: this is not Obama.")
    assert page.evaluate("document.activeElement.id").startswith("face-")
    expect(page.locator("[aria-label='Name face 1']")).to_have_count(1)


def test_uploads_sum_up_and_page_one_keeps_its_size(page, live_server, user, redis_server):
    from playwright.sync_api import expect

    from recognition.models import PhotoStatus
    from tests.conftest import stored_photo

    for _ in range(24):
        stored_photo(user, "nofaces/brick.png", status=PhotoStatus.DONE)
    sign_in(page, live_server)
    cards = page.locator(".card[data-photo-id]")
    expect(cards).to_have_count(24)
    files = [
        file_for_drop("cat.png", "image/png", face_file("nofaces/cat.png").read_bytes()),
        file_for_drop("rocket.jpg", "image/jpeg", face_file("nofaces/rocket.jpg").read_bytes()),
        file_for_drop("notes.txt", "text/plain", b"not a photo"),
    ]
    page.evaluate(DROP_FILES, [files, "#drop-zone"])
    summary = page.locator("#upload-summary")
    expect(summary).to_have_text("2 uploaded, 1 refused")
    expect(page.locator("#upload-announce")).to_have_text("2 uploaded, 1 refused.")
    expect(summary.locator(".refused")).to_have_css("color", "rgb(179, 38, 30)")
    expect(page.locator(".upload-item").first).to_be_hidden()  # collapsed into the summary
    expect(cards).to_have_count(24)  # page 1 stays one page long
    expect(page.locator(".date-heading").first).to_have_text("Just uploaded")
    shot(page, "gallery_uploads")
    page.click("#uploads summary")
    refused = page.locator(".upload-item.failed")
    expect(refused).to_contain_text("refused")
    expect(refused.locator("progress")).to_have_count(0)
    # The same file again links to the photo it made.
    page.evaluate(DROP_FILES, [[files[0]], "#drop-zone"])
    expect(page.locator(".upload-item", has_text="Uploaded before")).to_have_count(1)
    link = page.locator(".upload-item a:has-text('see that photo')")
    expect(link).to_have_attribute("href", re.compile(r"^/photos/\d+/$"))
    # The viewer goes on past the last card of the page to the next page, and back.
    page.goto(live_server.url + "/")  # 26 photos now: two pages
    cards.last.locator(".card-link").click()
    expect(page.locator("#viewer-title")).to_have_text(re.compile(r"\(24 of 24\)$"))
    page.keyboard.press("ArrowRight")
    page.wait_for_url(re.compile(r"\?page=2$"))  # the view= hint is gone from the address
    expect(page.locator("#viewer")).to_be_visible()
    expect(page.locator("#viewer-title")).to_have_text(re.compile(r"\(1 of 2\)$"))
    page.keyboard.press("ArrowLeft")
    page.wait_for_url(re.compile(r"\?page=1$"))
    expect(page.locator("#viewer-title")).to_have_text(re.compile(r"\(24 of 24\)$"))


def test_every_page_is_accessible_and_fits_a_phone(page, live_server, user, album, redis_server, settings):
    """axe-core finds no WCAG 2.2 AA violation on any page, and at 390 px nothing scrolls sideways."""
    from playwright.sync_api import expect

    user.is_staff = user.is_superuser = True
    user.save()
    person = album[0].faces.exclude(person=None).first().person
    settings.ALLOW_SIGNUP = True
    for path in ("/accounts/login/", "/accounts/signup/"):
        for viewport in ({"width": 1280, "height": 900}, PHONE):
            page.set_viewport_size(viewport)
            page.goto(live_server.url + path)
            assert axe_violations(page) == [], path
            assert sideways_scroll(page) == 0, (path, viewport, too_wide(page))
    page.set_viewport_size({"width": 1280, "height": 900})
    sign_in(page, live_server)
    # The confirmation page the bulk actions show without JavaScript.
    page.evaluate(
        """(ids) => { const form = document.getElementById("bulk-form");
          for (const id of ids) { const box = document.createElement("input");
            box.type = "hidden"; box.name = "ids"; box.value = id; form.append(box); }
          const action = document.createElement("input");
          action.type = "hidden"; action.name = "action"; action.value = "delete"; form.append(action);
          HTMLFormElement.prototype.submit.call(form); }""",
        [album[2].pk, album[3].pk],
    )
    expect(page.locator("h1")).to_have_text("Delete 2 photos?")
    assert axe_violations(page) == []
    shot(page, "bulk_confirm")
    page.set_viewport_size(PHONE)
    assert sideways_scroll(page) == 0, too_wide(page)
    pages = {
        "gallery": "/",
        "photo": album[0].get_absolute_url(),
        "people": "/people/",
        "person": person.get_absolute_url(),
        "who is this": "/who/",
        "alerts": "/alerts/",
        "settings": "/settings/",
        "queues": "/admin/queues/",
    }
    for name, path in pages.items():
        for viewport in ({"width": 1280, "height": 900}, PHONE):
            page.set_viewport_size(viewport)
            page.goto(live_server.url + path)
            page.wait_for_load_state("load")
            assert axe_violations(page) == [], (name, viewport)
            assert sideways_scroll(page) == 0, (name, viewport, too_wide(page))
        shot(page, f"phone_{name}")
    # The photo's face labels stay on the photo at phone width, and do not overlap.
    page.goto(live_server.url + album[0].get_absolute_url())
    frame = page.locator(".photo-frame").bounding_box()
    labels = [page.locator(".face-label").nth(i).bounding_box() for i in range(2)]
    for label in labels:
        assert frame["x"] <= label["x"] and label["x"] + label["width"] <= frame["x"] + frame["width"]
    assert labels[0]["x"] + labels[0]["width"] <= labels[1]["x"]
    # The viewer on a phone.
    page.goto(live_server.url + "/")
    page.locator(".card-link").first.click()
    expect(page.locator("#viewer")).to_be_visible()
    assert sideways_scroll(page) == 0
    shot(page, "phone_viewer")
    # Focus is visible on our own controls (not the browser default), the hidden file input's label too.
    page.keyboard.press("Escape")
    page.locator(".card .select").first.focus()
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"
    page.focus("#id_images")
    assert page.evaluate("getComputedStyle(document.querySelector('.file-button')).outlineStyle") == "solid"
    # The first Tab reaches the skip link, which takes the keyboard past the header.
    page.goto(live_server.url + "/people/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"


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
