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
          if (photo && ["done", "failed"].indexOf(photo.status) !== -1 && !photo.matching) {
            window.location.reload();
            return;
          }
          if (photo) status.textContent = photo.matching ? "matching…" : photo.status;
          setTimeout(poll, 2000);
        })
        .catch(function () { setTimeout(poll, 10000); });
    };
    setTimeout(poll, 2000);
  }

  // Adding a person whose name is in use: ask before sending, so the chosen photo is not lost.
  var addPerson = document.getElementById("add-person");
  var known = document.getElementById("known-names");
  if (addPerson && known) {
    var names = JSON.parse(known.textContent);
    addPerson.addEventListener("submit", function (event) {
      if (event.submitter && event.submitter.name === "if_exists") return;
      var typed = addPerson.elements.name.value.trim().toLowerCase();
      var same = names.filter(function (person) { return person.name.toLowerCase() === typed; })[0];
      if (!same) return;
      event.preventDefault();
      var question = document.getElementById("name-in-use");
      question.querySelector(".existing-link").textContent = same.name;
      question.querySelector(".existing-link").href = same.url;
      question.querySelectorAll(".existing-name").forEach(function (span) { span.textContent = same.name; });
      question.hidden = false;
      document.getElementById("add-person-submit").hidden = true;
      question.querySelector("button").focus();
    });
    addPerson.elements.name.addEventListener("input", function () {
      document.getElementById("name-in-use").hidden = true;
      document.getElementById("add-person-submit").hidden = false;
    });
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
