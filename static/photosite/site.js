/* Small helpers on every page: confirm before destructive buttons; focus goes back to where a form was
   used (the #fragment its redirect names) or to its message; a photo page that is still being
   processed reloads itself once it is done. */
(function () {
  "use strict";

  // After a form's redirect, keyboard and screen-reader users go on where they were, not at the top.
  var target = window.location.hash && document.getElementById(decodeURIComponent(window.location.hash.slice(1)));
  var messages = document.getElementById("messages");
  if (target && target.tabIndex >= -1 && target.hasAttribute("tabindex")) target.focus();
  else if (messages && !document.querySelector("[autofocus]")) messages.focus({ preventScroll: true });

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-confirm]");
    if (button && !window.confirm(button.dataset.confirm)) event.preventDefault();
  });

  var status = document.getElementById("photo-status");
  if (status && ["done", "failed"].indexOf(status.dataset.status) === -1) {
    var poll = function () {
      fetch(status.dataset.statusUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (response) { return response.json(); })
        .then(function (body) {
          var photo = body.photos[0];
          if (photo && ["done", "failed"].indexOf(photo.status) !== -1) {
            window.location.reload();
            return;
          }
          if (photo) status.textContent = photo.status;
          setTimeout(poll, 2000);
        })
        .catch(function () { setTimeout(poll, 10000); });
    };
    setTimeout(poll, 2000);
  }

  // A person's reference photos: follow their encoding until none is queued.
  var references = document.getElementById("references");
  var queued = function () { return references.querySelectorAll('[data-status="queued"]').length; };
  if (references && queued()) {
    var follow = function () {
      fetch(references.dataset.statusUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (response) { return response.json(); })
        .then(function (person) {
          person.references.forEach(function (reference) {
            var item = references.querySelector('[data-reference-id="' + reference.id + '"]');
            if (!item) return;
            // A group photo: the page shows its faces to choose from.
            if (reference.status === "choose" && !item.querySelector(".face-choice")) window.location.reload();
            item.dataset.status = reference.status;
            var label = item.querySelector(".status");
            label.textContent = reference.status === "choose" ? "choose a face" : reference.status;
            label.className = "status status-" + reference.status;
            item.querySelector(".reference-error").textContent = reference.error;
          });
          if (queued()) setTimeout(follow, 2000);
        })
        .catch(function () { setTimeout(follow, 10000); });
    };
    setTimeout(follow, 2000);
  }
})();
