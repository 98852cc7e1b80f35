// The progress of an erasure run (/admin/erasures/{id}) or of an access export on a person's
// page: while it is not finished, the page is reloaded every two seconds (the page works
// without this script: it has a "Refresh" link).
(function () {
  "use strict";
  function pending() {
    var run = document.getElementById("erasure-run");
    if (run) {
      var s = run.getAttribute("data-status");
      return s === "running" || s === "waiting";
    }
    return document.querySelector("[data-export-status='queued'], [data-export-status='running']") !== null;
  }
  function poll() {
    if (pending()) {
      window.setTimeout(function () { window.location.reload(); }, 2000);
    }
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", poll);
  } else {
    poll();
  }
})();
