// A file's page: drag a rectangle on the image to fill the "Draw a face" form (in the image's
// pixels). Without this file the four number fields are typed in.
"use strict";

(function () {
  const figure = document.getElementById("file-figure");
  const form = document.getElementById("draw-form");
  if (!figure || !form) return;
  const svg = figure.querySelector("svg.boxes");
  const rect = svg && svg.querySelector("rect.drawing");
  const width = parseFloat(figure.dataset.width);
  const height = parseFloat(figure.dataset.height);
  if (!svg || !rect || !(width > 0) || !(height > 0)) return;
  figure.classList.add("can-draw");

  const field = (n) => form.querySelector('[name="' + n + '"]');
  let start = null;

  function toImage(ev) {
    const r = svg.getBoundingClientRect();
    const x = ((ev.clientX - r.left) / r.width) * width;
    const y = ((ev.clientY - r.top) / r.height) * height;
    return [Math.min(width, Math.max(0, x)), Math.min(height, Math.max(0, y))];
  }

  function show(a, b) {
    const x1 = Math.min(a[0], b[0]), y1 = Math.min(a[1], b[1]);
    const x2 = Math.max(a[0], b[0]), y2 = Math.max(a[1], b[1]);
    rect.setAttribute("x", x1);
    rect.setAttribute("y", y1);
    rect.setAttribute("width", x2 - x1);
    rect.setAttribute("height", y2 - y1);
    return [x1, y1, x2, y2].map((v) => Math.round(v));
  }

  svg.addEventListener("pointerdown", (ev) => {
    if (ev.button !== 0) return;
    start = toImage(ev);
    svg.setPointerCapture(ev.pointerId);
    ev.preventDefault();
  });
  svg.addEventListener("pointermove", (ev) => {
    if (start) show(start, toImage(ev));
  });
  svg.addEventListener("pointerup", (ev) => {
    if (!start) return;
    const box = show(start, toImage(ev));
    start = null;
    if (box[2] - box[0] < 4 || box[3] - box[1] < 4) return;
    ["x1", "y1", "x2", "y2"].forEach((n, i) => { field(n).value = box[i]; });
    const submit = form.querySelector('button[type="submit"]');
    if (submit) submit.focus();
  });
})();
