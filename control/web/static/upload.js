// Upload page: drop files on the page, send them one request each with a progress bar per
// file (three at a time), and show each file's result as it arrives. Without this script the
// form sends all files in one request.
"use strict";

(function () {
  const form = document.querySelector("form.upload-form");
  if (!form) return;
  const input = form.querySelector('input[type="file"]');
  const zone = document.getElementById("dropzone");
  const list = document.getElementById("upload-list");
  const results = document.getElementById("upload-results");
  const hint = zone.querySelector(".drop-hint");
  const max = Number(form.dataset.maxFiles || "100");
  if (hint) hint.hidden = false;

  for (const ev of ["dragenter", "dragover"]) {
    zone.addEventListener(ev, (e) => { e.preventDefault(); zone.classList.add("dragging"); });
  }
  for (const ev of ["dragleave", "drop"]) {
    zone.addEventListener(ev, () => zone.classList.remove("dragging"));
  }
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    if (e.dataTransfer && e.dataTransfer.files.length) {
      input.files = e.dataTransfer.files;
      send(Array.from(e.dataTransfer.files));
    }
  });

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    send(Array.from(input.files));
  });

  function send(files) {
    if (!files.length) { window.Likeness.announce(form.dataset.none, true); return; }
    if (files.length > max) { window.Likeness.announce(form.dataset.tooMany + " " + max, true); return; }
    results.hidden = false;
    const queue = files.map((file) => ({ file, li: pending(file) }));
    let running = 0;
    const next = () => {
      while (running < 3 && queue.length) {
        const job = queue.shift();
        running += 1;
        upload(job.file, job.li).finally(() => { running -= 1; next(); });
      }
    };
    next();
    input.value = "";
  }

  function pending(file) {
    const li = document.createElement("li");
    li.className = "upload-item";
    const name = document.createElement("strong");
    name.textContent = file.name;
    const bar = document.createElement("progress");
    bar.max = 100;
    bar.value = 0;
    bar.setAttribute("aria-label", file.name);
    const state = document.createElement("span");
    state.className = "muted";
    state.textContent = " " + form.dataset.waiting;
    li.append(name, " ", bar, state);
    list.prepend(li);
    return li;
  }

  function upload(file, li) {
    return new Promise((resolve) => {
      const data = new FormData();
      data.append("csrf", window.Likeness.csrfToken());
      data.append("file", file, file.name);
      const xhr = new XMLHttpRequest();
      const bar = li.querySelector("progress");
      const state = li.querySelector("span");
      xhr.upload.addEventListener("progress", (e) => {
        if (e.lengthComputable) bar.value = Math.round((e.loaded / e.total) * 100);
        state.textContent = " " + form.dataset.sending;
      });
      xhr.addEventListener("load", () => {
        const tpl = document.createElement("template");
        tpl.innerHTML = xhr.responseText.trim();
        const item = tpl.content.querySelector("li.upload-item");
        if (item) {
          li.replaceWith(item);
        } else {
          state.textContent = " " + xhr.status + " " + xhr.statusText;
          state.className = "error";
        }
        resolve();
      });
      xhr.addEventListener("error", () => {
        state.textContent = " " + form.dataset.none;
        state.className = "error";
        resolve();
      });
      xhr.open("POST", form.action);
      xhr.setRequestHeader("X-Requested-With", "fetch");
      xhr.send(data);
    });
  }
})();
