// Likeness console: small progressive enhancements. Every action also works without this file.
"use strict";

/** The session's CSRF token (from the page's <meta name="csrf-token">). */
function csrfToken() {
  const m = document.querySelector('meta[name="csrf-token"]');
  return m ? m.content : "";
}

/**
 * Sends a console form with fetch (the same fields, CSRF included) and resolves when the server
 * answered 2xx; rejects with the server's message otherwise.
 */
async function postForm(form, extra) {
  const body = new URLSearchParams(new FormData(form));
  if (extra) for (const [k, v] of Object.entries(extra)) body.set(k, v);
  const res = await fetch(form.action, {
    method: "POST",
    body,
    headers: { "X-Requested-With": "fetch", "X-CSRF-Token": csrfToken() },
    credentials: "same-origin",
  });
  if (!res.ok) {
    const text = await res.text();
    const doc = new DOMParser().parseFromString(text, "text/html");
    const msg = doc.querySelector('[role="alert"]');
    throw new Error(msg ? msg.textContent.trim() : res.status + " " + res.statusText);
  }
  return res;
}

/** Shows a message in the page's live region (created on first use). */
function announce(text, isError) {
  let region = document.getElementById("live-region");
  if (!region) {
    region = document.createElement("p");
    region.id = "live-region";
    region.setAttribute("role", "status");
    region.className = "notice";
    const main = document.getElementById("main");
    if (main) main.prepend(region);
  }
  region.className = isError ? "error" : "notice";
  region.textContent = text;
}

// Buttons with data-confirm ask before their form is sent.
document.addEventListener("submit", (ev) => {
  const btn = ev.submitter;
  const msg = (btn && btn.dataset.confirm) || ev.target.dataset.confirm;
  if (msg && !window.confirm(msg)) ev.preventDefault();
});

window.Likeness = { csrfToken, postForm, announce };
