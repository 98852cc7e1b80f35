// Admin pages: while a re-matching run is running, fetch /admin/rematch again every few
// seconds and swap in its runs table (the page works without this: its "Refresh" link).
(function () {
  'use strict';
  var INTERVAL_MS = 3000;

  function runs(doc) {
    return doc.getElementById('rematch-runs');
  }

  function poll() {
    var current = runs(document);
    if (!current || current.getAttribute('data-running') !== 'true') return;
    window.setTimeout(function () {
      fetch('/admin/rematch', { credentials: 'same-origin', headers: { Accept: 'text/html' } })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) {
          var fresh = runs(new DOMParser().parseFromString(html, 'text/html'));
          var now = runs(document);
          if (fresh && now) {
            // Keep the keyboard focus if it was on a button of the table.
            var focused = now.contains(document.activeElement);
            now.replaceWith(fresh);
            if (focused) fresh.setAttribute('tabindex', '-1'), fresh.focus();
          }
          poll();
        })
        .catch(function () { /* stop polling; the Refresh link still works */ });
    }, INTERVAL_MS);
  }

  document.addEventListener('DOMContentLoaded', poll);
})();
