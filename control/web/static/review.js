// Review queue: decisions in place (the card goes once the server has it, or shows the face's
// next suggestion after a rejection) and keyboard
// shortcuts (j/k move between cards, a approves, r rejects). Without this file the forms post
// and the server redirects back to the queue.
"use strict";

(function () {
  const cards = () => Array.from(document.querySelectorAll("article.face-card"));

  function current() {
    const el = document.activeElement;
    return el && el.closest ? el.closest("article.face-card") : null;
  }

  function focusCard(card) {
    if (!card) return;
    card.focus();
    card.scrollIntoView({ block: "nearest" });
  }

  function move(step) {
    const all = cards();
    if (all.length === 0) return;
    const i = all.indexOf(current());
    const next = i < 0 ? (step > 0 ? 0 : all.length - 1) : Math.min(all.length - 1, Math.max(0, i + step));
    focusCard(all[next]);
  }

  /** The face's card on a fresh copy of this page, or null when it left the queue. */
  async function freshCard(faceId) {
    try {
      const res = await fetch(window.location.href, { credentials: "same-origin" });
      if (!res.ok) return null;
      const doc = new DOMParser().parseFromString(await res.text(), "text/html");
      const found = Array.from(doc.querySelectorAll("article.face-card"))
        .find((c) => c.dataset.faceId === faceId);
      return found ? document.importNode(found, true) : null;
    } catch (_) {
      return null;
    }
  }

  async function decide(form) {
    const card = form.closest("article.face-card");
    const buttons = card ? card.querySelectorAll("button") : [];
    buttons.forEach((b) => { b.disabled = true; });
    try {
      await window.Likeness.postForm(form);
      window.Likeness.announce(form.dataset.done || "");
      if (card) {
        // A rejected suggestion may leave the face with the next candidate: ask the queue
        // whether the face is still in it and show its card as it is now.
        const fresh = await freshCard(card.dataset.faceId);
        if (fresh) {
          card.replaceWith(fresh);
          focusCard(fresh);
          return;
        }
        const all = cards();
        const next = all[all.indexOf(card) + 1] || all[all.indexOf(card) - 1];
        card.classList.add("fade-out");
        setTimeout(() => {
          card.remove();
          if (next) focusCard(next);
        }, 250);
      }
    } catch (err) {
      buttons.forEach((b) => { b.disabled = false; });
      window.Likeness.announce(err.message, true);
    }
  }

  document.addEventListener("submit", (ev) => {
    const form = ev.target;
    if (!(form instanceof HTMLFormElement) || !form.classList.contains("decide")) return;
    if (ev.defaultPrevented || !window.Likeness) return;
    ev.preventDefault();
    decide(form);
  });

  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const t = ev.target;
    if (t && (t.isContentEditable || /^(INPUT|SELECT|TEXTAREA)$/.test(t.tagName))) return;
    const key = ev.key;
    if (key === "j" || key === "k") {
      ev.preventDefault();
      move(key === "j" ? 1 : -1);
    } else if (key === "a" || key === "r") {
      const card = current() || cards()[0];
      if (!card) return;
      const btn = card.querySelector('button[data-key="' + key + '"]');
      if (btn) {
        ev.preventDefault();
        focusCard(card);
        btn.form.requestSubmit(btn);
      }
    }
  });
})();
