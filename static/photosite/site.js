/* Small helpers on every page: confirm before destructive buttons; a photo page that is still being
   processed reloads itself once it is done. */
(function () {
  "use strict";

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
            item.dataset.status = reference.status;
            var label = item.querySelector(".status");
            label.textContent = reference.status;
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
