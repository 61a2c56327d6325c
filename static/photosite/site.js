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
})();
