/* The viewer: a gallery card opens its photo full-window; previous and next follow the gallery's order
   and filter, by buttons, arrow keys or a swipe, on to the next or previous page of the gallery (which
   opens with the viewer on its first or last photo). Escape goes back to the same place in the
   gallery. A face box opens that face's actions on the photo page. */
(function () {
  "use strict";

  var dialog = document.getElementById("viewer");
  var grid = document.getElementById("photo-grid");
  if (!dialog || !grid || typeof dialog.showModal !== "function") return;

  var image = document.getElementById("viewer-image");
  var frame = document.getElementById("viewer-frame");
  var title = document.getElementById("viewer-title");
  var caption = document.getElementById("viewer-caption");
  var openLink = document.getElementById("viewer-open");
  var prev = document.getElementById("viewer-prev");
  var next = document.getElementById("viewer-next");
  var current = -1;
  var scrollY = 0;
  var request = 0;

  function cards() {
    return Array.prototype.slice.call(grid.querySelectorAll(".card[data-photo-id]"));
  }

  function show(index) {
    var all = cards();
    if (index < 0 || index >= all.length) return;
    current = index;
    var card = all[index];
    var id = card.dataset.photoId;
    var name = card.querySelector(".card-name").textContent;
    title.textContent = name + " (" + (index + 1) + " of " + all.length + ")";
    openLink.href = "/photos/" + id + "/";
    prev.disabled = index === 0 && !pageLink("prev");
    next.disabled = index === all.length - 1 && !pageLink("next");
    frame.querySelectorAll(".face-box").forEach(function (box) { box.remove(); });
    caption.textContent = "";
    image.alt = name;
    image.src = "/media/photos/" + id + "/web.jpg";
    var mine = ++request;
    fetch("/api/photos/" + id + "/", { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (photo) {
        if (!photo || mine !== request) return;
        describe(photo);
        drawFaces(photo);
      })
      .catch(function () { /* the photo still shows; its faces are on its page */ });
  }

  function describe(photo) {
    var parts = [];
    if (photo.taken_at) {
      var when = new Date(photo.taken_at).toLocaleString(undefined, { dateStyle: "long", timeStyle: "short" });
      parts.push((photo.taken_at_source === "exif" ? "Taken " : "Uploaded ") + when);
    }
    if (photo.people.length) parts.push(photo.people.join(", "));
    if (photo.status !== "done") parts.push(photo.status + (photo.error ? ": " + photo.error : ""));
    caption.textContent = parts.join(" · ");
  }

  function drawFaces(photo) {
    if (!photo.width || !photo.height) return;
    photo.faces.forEach(function (face, i) {
      var box = document.createElement("a");
      box.className = "face-box" + (face.person ? " known" : "");
      box.href = "/photos/" + photo.id + "/#face-" + face.id;
      var who = face.person ? face.person.name : "unknown";
      box.setAttribute("aria-label", "Face " + (i + 1) + ": " + who + " (its actions)");
      box.title = who;
      box.style.left = (100 * face.box.left / photo.width) + "%";
      box.style.top = (100 * face.box.top / photo.height) + "%";
      box.style.width = (100 * (face.box.right - face.box.left) / photo.width) + "%";
      box.style.height = (100 * (face.box.bottom - face.box.top) / photo.height) + "%";
      frame.append(box);
    });
  }

  function open(index) {
    scrollY = window.scrollY;
    dialog.showModal();
    show(index);
    dialog.querySelector(".viewer-close").focus();
  }

  function pageLink(rel) {
    return document.querySelector('.pagination a[rel="' + rel + '"]');
  }

  function step(delta) {
    var all = cards();
    var beyond = current + delta < 0 ? "prev" : current + delta >= all.length ? "next" : null;
    if (!beyond) return show(current + delta);
    var link = pageLink(beyond);
    if (link) window.location.href = link.href + "&view=" + (beyond === "next" ? "first" : "last");
  }

  // Arriving from the previous or next page in the viewer: open it where the user was going.
  var params = new URLSearchParams(window.location.search);
  var arriving = params.get("view");
  if (arriving && cards().length) {
    params.delete("view");
    history.replaceState(null, "", window.location.pathname + (params.toString() ? "?" + params : ""));
    open(arriving === "last" ? cards().length - 1 : 0);
  }

  grid.addEventListener("click", function (event) {
    var link = event.target.closest(".card-link");
    // A new tab or window, or a modified click, keeps the browser's meaning.
    if (!link || event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    open(cards().indexOf(link.closest(".card")));
  });
  prev.addEventListener("click", function () { step(-1); });
  next.addEventListener("click", function () { step(1); });
  document.getElementById("viewer-close").addEventListener("click", function () { dialog.close(); });
  dialog.addEventListener("keydown", function (event) {
    if (event.key === "ArrowLeft") { step(-1); event.preventDefault(); }
    if (event.key === "ArrowRight") { step(1); event.preventDefault(); }
  });
  // Escape (the dialog's own) or the close button: back to the same scroll position, on the card shown last.
  dialog.addEventListener("close", function () {
    image.removeAttribute("src");
    var card = cards()[current];
    window.scrollTo(0, scrollY);
    if (card) card.querySelector(".card-link").focus({ preventScroll: true });
  });

  var touchX = null;
  dialog.addEventListener("touchstart", function (event) {
    touchX = event.touches.length === 1 ? event.touches[0].clientX : null;
  }, { passive: true });
  dialog.addEventListener("touchend", function (event) {
    if (touchX === null) return;
    var dx = event.changedTouches[0].clientX - touchX;
    touchX = null;
    if (Math.abs(dx) > 50) step(dx < 0 ? 1 : -1);
  });
})();
