// Re-fetch this page every data-refresh seconds and swap the parts marked data-live:
// the server renders (and escapes) them, so nothing here builds markup from data.
(function () {
  "use strict";
  var period = Number(document.body.getAttribute("data-refresh")) || 0;
  if (period <= 0 || !window.fetch || !window.DOMParser) { return; }
  function refresh() {
    if (document.hidden) { schedule(); return; }
    fetch(window.location.href, { cache: "no-store", credentials: "same-origin",
                                  headers: { "X-Live-Parts": "1" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html === null) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live]").forEach(function (part) {
          var next = fresh.getElementById(part.id);
          if (next && next.innerHTML !== part.innerHTML) { part.innerHTML = next.innerHTML; }
        });
      })
      // Offline or restarting daemon: keep the last state; the footer time says its age.
      .catch(function () {})
      .then(schedule);
  }
  function schedule() { window.setTimeout(refresh, period * 1000); }
  schedule();
})();
