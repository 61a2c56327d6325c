/* The gallery: send each dropped or picked photo on its own request to the JSON API, summed up in one
   line ("38 uploaded, 2 refused: show"); keep the cards' status live by polling; select many cards
   for one action. */
(function () {
  "use strict";

  var FINISHED = ["done", "failed"];
  var CONCURRENT_UPLOADS = 3;
  var POLL_MS = 1500;
  var POLL_MAX_MS = 15000;
  var MAX_ROWS = 100;

  var form = document.getElementById("upload-form");
  var input = document.getElementById("id_images");
  var zone = document.getElementById("drop-zone");
  var uploads = document.getElementById("uploads");
  var summary = document.getElementById("upload-summary");
  var announce = document.getElementById("upload-announce");
  var list = document.getElementById("upload-list");
  var grid = document.getElementById("photo-grid");
  var template = document.getElementById("card-template");
  if (!form || !grid) return;

  var csrfToken = form.querySelector("[name=csrfmiddlewaretoken]").value;
  var maxBytes = parseInt(form.dataset.maxBytes, 10) || 0;
  var perPage = parseInt(grid.dataset.perPage, 10) || 0;
  var waiting = [];
  var active = 0;
  var counts = { total: 0, ok: 0, refused: 0 };

  // Uploads: one row per file inside a collapsed list, one summary line, one announcement per batch.

  function addFiles(files) {
    if (!files.length) return;
    if (!waiting.length && !active) counts = { total: 0, ok: 0, refused: 0 };
    Array.prototype.forEach.call(files, function (file) {
      waiting.push({ file: file, row: addRow(file) });
    });
    counts.total += files.length;
    uploads.hidden = false;
    announce.textContent = "Uploading " + counts.total + " photo" + (counts.total === 1 ? "" : "s") + ".";
    showSummary();
    pump();
  }

  function addRow(file) {
    var row = document.createElement("li");
    row.className = "upload-item";
    var name = document.createElement("span");
    name.className = "upload-name";
    name.textContent = file.name;
    var bar = document.createElement("progress");
    bar.max = 1;
    bar.value = 0;
    bar.setAttribute("aria-label", "upload of " + file.name);
    var note = document.createElement("span");
    note.className = "upload-note";
    note.textContent = "waiting";
    row.append(name, bar, note);
    list.prepend(row);
    return row;
  }

  function finishRow(row, ok, text, link) {
    row.classList.add(ok ? "ok" : "failed");
    var bar = row.querySelector("progress");
    var word = document.createElement("span");
    word.className = "upload-result";
    word.textContent = ok ? "uploaded" : "refused";
    bar.replaceWith(word);
    var note = row.querySelector(".upload-note");
    note.textContent = text;
    if (link) {
      var a = document.createElement("a");
      a.href = link;
      a.textContent = "see that photo";
      note.append(" ", a);
    }
    if (ok) counts.ok += 1;
    else counts.refused += 1;
    // The list stays short: refused files stay to be read, the oldest successes go.
    var done = list.querySelectorAll(".upload-item.ok");
    for (var i = MAX_ROWS; i < done.length; i++) done[i].remove();
    showSummary();
  }

  function showSummary() {
    var finished = counts.ok + counts.refused;
    var parts = [];
    if (finished < counts.total) parts.push("Uploading " + (finished + 1) + " of " + counts.total);
    parts.push(counts.ok + " uploaded");
    summary.replaceChildren(parts.join(" · "));
    if (counts.refused) {
      var refused = document.createElement("span");
      refused.className = "refused";
      refused.textContent = counts.refused + " refused";
      summary.append(", ", refused);
    }
    uploads.classList.toggle("has-refused", counts.refused > 0);
    if (finished === counts.total && counts.total) {
      // One polite announcement when the batch is over, not one per file and change.
      announce.textContent = summary.textContent + ".";
    }
  }

  function pump() {
    while (active < CONCURRENT_UPLOADS && waiting.length) {
      active += 1;
      send(waiting.shift(), function () {
        active -= 1;
        pump();
      });
    }
  }

  function send(item, done) {
    var file = item.file;
    var row = item.row;
    if (maxBytes && file.size > maxBytes) {
      finishRow(row, false, "The file is larger than the limit of " + Math.round(maxBytes / 1048576) + " MB.");
      return done();
    }
    var data = new FormData();
    data.append("image", file, file.name);
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.dataset.apiUrl);
    xhr.setRequestHeader("X-CSRFToken", csrfToken);
    xhr.setRequestHeader("Accept", "application/json");
    row.querySelector(".upload-note").textContent = "uploading";
    xhr.upload.onprogress = function (event) {
      var bar = row.querySelector("progress");
      if (bar && event.lengthComputable) bar.value = event.loaded / event.total;
    };
    xhr.onload = function () {
      var body = {};
      try { body = JSON.parse(xhr.responseText); } catch (e) { /* not JSON: a proxy's error page */ }
      if (xhr.status === 202 || xhr.status === 200) {
        if (body.duplicate) {
          finishRow(row, true, "Uploaded before:", "/photos/" + body.id + "/");
        } else {
          finishRow(row, true, body.message || "uploaded");
        }
        addCard(body, file.name);
      } else {
        finishRow(row, false, body.error || describe(xhr.status));
      }
      done();
    };
    xhr.onerror = function () {
      finishRow(row, false, "Network error: the upload did not reach the server.");
      done();
    };
    xhr.send(data);
  }

  function describe(status) {
    if (status === 413) return "The file is too large.";
    if (status === 429) return "Too many uploads: try again later.";
    if (status === 403) return "Not allowed: sign in again.";
    if (status === 400) return "This is not an image we can read.";
    return "Upload failed (HTTP " + status + ").";
  }

  // Cards

  function cards() {
    return grid.querySelectorAll(".card[data-photo-id]");
  }

  function cardOf(id) {
    return grid.querySelector('.card[data-photo-id="' + id + '"]');
  }

  function addCard(body, fileName) {
    if (!body.id || cardOf(body.id)) return startPolling();
    if (!grid.dataset.firstPage) return; // new photos appear on page 1 without filters only
    var card = template.content.firstElementChild.cloneNode(true);
    card.dataset.photoId = body.id;
    var box = card.querySelector(".select");
    box.value = body.id;
    box.setAttribute("aria-label", "Select " + fileName);
    fillCard(card, { id: body.id, status: body.status, error: body.message || "", names: [],
                     thumbnail: null, url: "/photos/" + body.id + "/", name: fileName });
    var heading = grid.querySelector(".date-heading.just-uploaded");
    if (!heading) {
      heading = document.createElement("li");
      heading.className = "date-heading just-uploaded";
      heading.innerHTML = "<h2>Just uploaded</h2>";
      grid.prepend(heading);
    }
    heading.after(card);
    trimPage();
    var empty = document.getElementById("empty-gallery");
    if (empty) empty.remove();
    startPolling();
  }

  // Page 1 keeps its size: the oldest cards move on to page 2, as a reload would show.
  function trimPage() {
    if (!perPage) return;
    var all = cards();
    for (var i = all.length - 1; i >= perPage; i--) all[i].remove();
    var last = grid.lastElementChild;
    while (last && last.classList.contains("date-heading")) {
      last.remove();
      last = grid.lastElementChild;
    }
  }

  function fillCard(card, photo) {
    card.dataset.status = photo.status;
    card.dataset.matching = photo.matching ? "1" : "";
    card.querySelector(".card-link").href = photo.url;
    if (photo.name) card.querySelector(".card-name").textContent = photo.name;
    var status = card.querySelector(".status");
    var shown = photo.matching ? "matching" : photo.status;
    status.textContent = photo.matching ? "matching…" : photo.status;
    status.className = "status status-" + shown;
    var showError = photo.status === "failed" || photo.status === "waiting";
    card.querySelector(".card-error").textContent = showError ? photo.error : "";
    card.querySelector(".names").textContent = (photo.names || []).join(", ");
    var thumb = card.querySelector(".thumb");
    if (photo.thumbnail && !thumb.querySelector("img")) {
      var img = document.createElement("img");
      img.src = photo.thumbnail;
      img.alt = photo.name || "";
      thumb.replaceChildren(img);
    }
  }

  // Live status: poll while any card is unfinished or still being matched, then stop.

  var polling = false;
  var delay = POLL_MS;

  function unfinishedIds() {
    return Array.prototype.filter.call(cards(), function (card) {
      return FINISHED.indexOf(card.dataset.status) === -1 || card.dataset.matching;
    }).map(function (card) { return card.dataset.photoId; });
  }

  function startPolling() {
    if (polling || !unfinishedIds().length) return;
    polling = true;
    delay = POLL_MS;
    setTimeout(poll, delay);
  }

  function poll() {
    var ids = unfinishedIds();
    if (!ids.length) { polling = false; return; }
    fetch(grid.dataset.statusUrl + "?ids=" + ids.join(","), {
      headers: { Accept: "application/json" }, credentials: "same-origin",
    })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (body) {
        body.photos.forEach(function (photo) {
          var card = cardOf(photo.id);
          if (card) fillCard(card, photo);
        });
        delay = POLL_MS;
      })
      .catch(function () {
        delay = Math.min(delay * 2, POLL_MAX_MS); // the server is busy or away: ask less often
      })
      .then(function () {
        if (unfinishedIds().length) setTimeout(poll, delay);
        else polling = false;
      });
  }

  // Picking and dropping

  input.addEventListener("change", function () {
    addFiles(input.files);
    input.value = "";
  });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
  });
  ["dragenter", "dragover"].forEach(function (type) {
    document.addEventListener(type, function (event) {
      event.preventDefault();
      zone.classList.add("dragging");
    });
  });
  ["dragleave", "dragend"].forEach(function (type) {
    document.addEventListener(type, function (event) {
      if (event.target === zone || !zone.contains(event.relatedTarget)) zone.classList.remove("dragging");
    });
  });
  // A drop anywhere on the page uploads, rather than the browser leaving the page to show the image.
  document.addEventListener("drop", function (event) {
    event.preventDefault();
    zone.classList.remove("dragging");
    if (event.dataTransfer && event.dataTransfer.files.length) addFiles(event.dataTransfer.files);
  });

  // Select many: click a card's box, shift-click for a range; Escape clears. One action for all.

  var bulk = document.getElementById("bulk-form");
  var countLabel = document.getElementById("selection-count");
  var idleText = countLabel.textContent;
  var lastBox = null;

  function boxes() {
    return Array.prototype.slice.call(grid.querySelectorAll(".card .select"));
  }

  function selected() {
    return boxes().filter(function (box) { return box.checked; });
  }

  function showSelection() {
    var n = selected().length;
    countLabel.textContent = n ? n + " selected" : idleText;
    bulk.querySelectorAll("button[name=action]").forEach(function (button) { button.disabled = !n; });
    document.getElementById("select-none").hidden = !n;
    grid.classList.toggle("selecting", n > 0);
    boxes().forEach(function (box) { box.closest(".card").classList.toggle("selected", box.checked); });
  }

  // A box was just ticked or unticked; with Shift, every box from the last one used goes the same way.
  function picked(box, range) {
    if (range && lastBox && lastBox !== box) {
      var all = boxes();
      var from = all.indexOf(lastBox);
      var to = all.indexOf(box);
      if (from !== -1) {
        all.slice(Math.min(from, to), Math.max(from, to) + 1).forEach(function (b) { b.checked = box.checked; });
      }
    }
    lastBox = box;
    showSelection();
  }

  grid.addEventListener("click", function (event) {
    var box = event.target.closest(".select");
    if (box) picked(box, event.shiftKey);
  });
  grid.addEventListener("keydown", function (event) {
    // On a card's link, "x" (as in Gmail) ticks its box without leaving the keyboard's place; Shift+X a range.
    if (event.key.toLowerCase() !== "x" || !event.target.classList.contains("card-link")) return;
    var box = event.target.closest(".card").querySelector(".select");
    box.checked = !box.checked;
    picked(box, event.shiftKey);
  });
  document.getElementById("select-all").addEventListener("click", function () {
    boxes().forEach(function (box) { box.checked = true; });
    showSelection();
  });
  document.getElementById("select-none").addEventListener("click", function () {
    boxes().forEach(function (box) { box.checked = false; });
    showSelection();
    countLabel.focus();
  });
  document.addEventListener("keydown", function (event) {
    var viewer = document.getElementById("viewer");
    if (event.key === "Escape" && selected().length && !(viewer && viewer.open)) {
      boxes().forEach(function (box) { box.checked = false; });
      showSelection();
    }
  });
  bulk.addEventListener("submit", function (event) {
    var action = event.submitter && event.submitter.value;
    var n = selected().length;
    var what = n + " photo" + (n === 1 ? "" : "s");
    var question = action === "delete" ? "Delete " + what + "? This cannot be undone."
      : action === "reprocess" ? "Reprocess " + what + "? Your names and decisions on their faces stay." : "";
    if (question) {
      if (!window.confirm(question)) { event.preventDefault(); return; }
      var confirmed = document.createElement("input");
      confirmed.type = "hidden";
      confirmed.name = "confirm";
      confirmed.value = "1";
      bulk.append(confirmed);
    }
  });
  countLabel.tabIndex = -1;
  document.getElementById("select-all").hidden = false; // a script's button: hidden without one
  showSelection();

  startPolling();
})();
