/* The gallery: send each dropped or picked photo on its own request to the JSON API, with a progress
   bar and the server's message next to the file, and keep the cards' status live by polling. */
(function () {
  "use strict";

  var FINISHED = ["done", "failed"];
  var CONCURRENT_UPLOADS = 3;
  var POLL_MS = 1500;
  var POLL_MAX_MS = 15000;

  var form = document.getElementById("upload-form");
  var input = document.getElementById("id_images");
  var zone = document.getElementById("drop-zone");
  var list = document.getElementById("upload-list");
  var grid = document.getElementById("photo-grid");
  var template = document.getElementById("card-template");
  if (!form || !grid) return;

  var csrfToken = form.querySelector("[name=csrfmiddlewaretoken]").value;
  var maxBytes = parseInt(form.dataset.maxBytes, 10) || 0;
  var waiting = [];
  var active = 0;

  // Uploads

  function addFiles(files) {
    Array.prototype.forEach.call(files, function (file) {
      waiting.push({ file: file, row: addRow(file) });
    });
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
    var note = document.createElement("span");
    note.className = "upload-note";
    note.textContent = "waiting";
    row.append(name, bar, note);
    list.prepend(row);
    return row;
  }

  function finishRow(row, ok, text) {
    row.classList.add(ok ? "ok" : "failed");
    row.querySelector("progress").value = ok ? 1 : row.querySelector("progress").value;
    row.querySelector(".upload-note").textContent = text;
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
      if (event.lengthComputable) row.querySelector("progress").value = event.loaded / event.total;
    };
    xhr.onload = function () {
      var body = {};
      try { body = JSON.parse(xhr.responseText); } catch (e) { /* not JSON: a proxy's error page */ }
      if (xhr.status === 202 || xhr.status === 200) {
        finishRow(row, true, body.message || (body.duplicate ? "uploaded before" : "uploaded"));
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

  function cardOf(id) {
    return grid.querySelector('[data-photo-id="' + id + '"]');
  }

  function addCard(body, fileName) {
    if (!body.id || cardOf(body.id)) return startPolling();
    if (!grid.dataset.firstPage) return; // new photos appear on page 1 only
    var card = template.content.firstElementChild.cloneNode(true);
    card.dataset.photoId = body.id;
    fillCard(card, { id: body.id, status: body.status, error: body.message || "", names: [],
                     thumbnail: null, url: "/photos/" + body.id + "/", name: fileName });
    grid.prepend(card);
    var empty = document.getElementById("empty-gallery");
    if (empty) empty.remove();
    startPolling();
  }

  function fillCard(card, photo) {
    card.dataset.status = photo.status;
    card.querySelector(".card-link").href = photo.url;
    if (photo.name) card.querySelector(".card-name").textContent = photo.name;
    var status = card.querySelector(".status");
    status.textContent = photo.status;
    status.className = "status status-" + photo.status;
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

  // Live status: poll while any card is unfinished, then stop.

  var polling = false;
  var delay = POLL_MS;

  function unfinishedIds() {
    return Array.prototype.filter.call(grid.querySelectorAll("[data-photo-id]"), function (card) {
      return FINISHED.indexOf(card.dataset.status) === -1;
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

  startPolling();
})();
