// The dashboard's few behaviours: the live alert feed (with a beep for weapons) and the
// parcel viewer's toggles, zoom and contrast. No library, nothing fetched from outside.
"use strict";

(function liveAlerts() {
  const table = document.getElementById("alerts");
  if (!table) return;
  const body = table.tBodies[0];
  const live = document.getElementById("live");
  const soundButton = document.getElementById("sound");
  let afterId = Number(table.dataset.afterId || 0);
  let audio = null;   // browsers allow sound only after a click: the button creates it
  let retryMs = 500;

  soundButton.addEventListener("click", () => {
    if (audio) { audio.close(); audio = null; } else { audio = new AudioContext(); beep(); }
    soundButton.textContent = audio ? soundButton.dataset.on : soundButton.dataset.off;
    soundButton.setAttribute("aria-pressed", audio ? "true" : "false");
  });

  // Three short high tones, made here: no audio file to fetch.
  function beep() {
    if (!audio) return;
    for (let i = 0; i < 3; i++) {
      const start = audio.currentTime + i * 0.25;
      const tone = audio.createOscillator();
      const gain = audio.createGain();
      tone.type = "square";
      tone.frequency.value = 1320;
      gain.gain.setValueAtTime(0.0001, start);
      gain.gain.exponentialRampToValueAtTime(0.3, start + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, start + 0.18);
      tone.connect(gain).connect(audio.destination);
      tone.start(start);
      tone.stop(start + 0.2);
    }
  }

  function setLive(on) {
    live.classList.toggle("on", on);
    live.textContent = on ? live.dataset.on : live.dataset.off;
  }

  function addAlerts(alerts) {
    const empty = document.getElementById("no-alerts");
    if (empty) empty.remove();
    let weapon = false;
    for (const alert of alerts) {
      if (alert.id <= afterId) continue;
      afterId = alert.id;
      const holder = document.createElement("tbody");
      holder.innerHTML = alert.html;   // rendered by the server, escaped there
      const row = holder.firstElementChild;
      row.classList.add("fresh");
      body.prepend(row);
      weapon = weapon || alert.weapon;
    }
    while (body.rows.length > 200) body.deleteRow(-1);
    if (weapon) beep();
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}/ws/alerts?after_id=${afterId}`);
    socket.onopen = () => { setLive(true); retryMs = 500; };
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "alerts") addAlerts(message.alerts);
      if (message.type === "health") document.getElementById("health").innerHTML = message.html;
    };
    socket.onclose = (event) => {
      setLive(false);
      if (event.code === 4401) { location.reload(); return; }  // logged out or expired
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 10000);
    };
  }
  connect();
})();

(function parcelViewer() {
  const stack = document.getElementById("stack");
  if (!stack) return;
  const viewport = document.getElementById("viewport");
  const xray = document.getElementById("xray");
  const width = Number(stack.dataset.width);
  const height = Number(stack.dataset.height);
  let scale = 1;

  function fitScale() {
    return Math.min(viewport.clientWidth / width, viewport.clientHeight / height) * 0.98;
  }
  function zoomTo(value) {
    scale = Math.max(0.1, Math.min(value, 20));
    stack.style.width = `${width * scale}px`;
    stack.style.height = `${height * scale}px`;
  }
  zoomTo(fitScale());
  placeLabels(document.getElementById("boxes"), width);

  const toggles = {
    grey(on) { xray.src = on ? xray.dataset.grey : xray.dataset.colour; },
    material(on) { document.getElementById("material").hidden = !on; },
    boxes(on) { document.getElementById("boxes").style.display = on ? "" : "none"; },
  };
  for (const button of document.querySelectorAll("[data-toggle]")) {
    button.addEventListener("click", () => {
      const on = button.getAttribute("aria-pressed") !== "true";
      button.setAttribute("aria-pressed", on ? "true" : "false");
      toggles[button.dataset.toggle](on);
    });
  }
  for (const button of document.querySelectorAll("[data-zoom]")) {
    button.addEventListener("click", () => {
      const how = button.dataset.zoom;
      zoomTo(how === "fit" ? fitScale() : scale * (how === "in" ? 1.25 : 0.8));
    });
  }
  viewport.addEventListener("wheel", (event) => {
    event.preventDefault();
    zoomTo(scale * (event.deltaY < 0 ? 1.1 : 1 / 1.1));
  }, { passive: false });

  const contrast = document.getElementById("contrast");
  contrast.addEventListener("input", () => {
    const filter = `contrast(${contrast.value}%)`;
    xray.style.filter = filter;
  });
})();

// Box labels in the picture's pixels: one that would run off the right edge ends at its box's
// right side instead, and one that would cover an earlier label moves below it, so boxes that
// overlap (two classes on one object) keep every label readable.
function placeLabels(svg, width) {
  if (!svg) return;
  const placed = [];
  for (const text of svg.querySelectorAll("text")) {
    const rect = text.previousElementSibling;
    let box = text.getBBox();
    if (box.x + box.width > width) {
      text.setAttribute("text-anchor", "end");
      text.setAttribute("x", Number(rect.getAttribute("x")) + Number(rect.getAttribute("width")) - 2);
      box = text.getBBox();
    }
    for (let tries = 0; tries < 20 && placed.some((other) => overlaps(box, other)); tries++) {
      text.setAttribute("y", Number(text.getAttribute("y")) + box.height);
      box = text.getBBox();
    }
    placed.push(box);
  }
}

function overlaps(a, b) {
  return a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
}
