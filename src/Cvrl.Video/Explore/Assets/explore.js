// Cvrl explore: draws the map of an embedding set and lists each video's nearest neighbours. The data (data.js) is
// computed in .NET by Cvrl.Explore.ExploreReport; this page only draws it. Works from file:// with no network.
(function () {
  "use strict";
  const D = window.CVRL_EXPLORE;
  const n = D.count;
  const canvas = document.getElementById("map");
  const ctx = canvas.getContext("2d");
  const tooltip = document.getElementById("tooltip");
  const labelled = D.classes.length > 0;
  const colourOf = (c) => c < 0 ? D.noClassColour : D.colours[c]; // chosen in .NET, the same as the SVG map's
  const pointColour = (i) => labelled ? colourOf(D.labels[i]) : "#2563eb";
  const escape = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  const className = (i) => labelled && D.labels[i] >= 0 ? D.classes[D.labels[i]] : null;

  // ---- header ---------------------------------------------------------------------------------------------------
  document.getElementById("title").textContent = D.title;
  document.title = `${D.title} · Cvrl explore`;
  const M = D.moments; // sets of windows: each item a span of a video
  const parts = [M ? `<b>${n}</b> windows of <b>${M.videos.length}</b> videos` : `<b>${n}</b> videos`, `<b>${D.dim}</b> dimensions`];
  if (D.encoder) parts.push(`encoder <b>${escape(D.encoder)}</b>`);
  parts.push(`fingerprint <b title="${escape(D.fingerprint)}">${escape(D.fingerprint.slice(0, 16))}</b>`);
  if (D.runtime) parts.push(`runtime <b>${escape(D.runtime)}</b>`);
  if (D.views) parts.push(`views <b>${escape(D.views)}</b>`);
  const explained = D.map.explained.length ? ` (${D.map.explained.map((e) => (100 * e).toFixed(1) + "%").join(" + ")} of the variance)` : "";
  parts.push(`map <b>${D.map.method}</b>${explained}`);
  parts.push(`made ${escape(D.created)}`);
  document.getElementById("about").innerHTML = parts.join(" · ");

  // ---- legend and kNN ------------------------------------------------------------------------------------------
  if (labelled) {
    const counts = D.classes.map(() => 0);
    D.labels.forEach((l) => { if (l >= 0) counts[l]++; });
    document.getElementById("legend").innerHTML = D.classes.map((c, i) =>
      `<div><span class="swatch" style="background:${colourOf(i)}"></span>${escape(c)} <span class="muted">(${counts[i]})</span></div>`).join("");
  }
  if (D.knn) {
    const k = D.knn;
    const section = document.getElementById("knn");
    const rows = k.confusions.length
      ? `<table><tr><th>class</th><th>taken for</th><th class="n">videos</th></tr>${k.confusions.map((c) =>
          `<tr><td>${escape(c.actual)}</td><td>${escape(c.predicted)}</td><td class="n">${c.count}</td></tr>`).join("")}</table>`
      : `<p class="muted">No class is confused with another.</p>`;
    section.innerHTML = `<h2>Leave-one-out kNN</h2><div><span class="big" id="knnAccuracy">${(100 * k.correct / k.total).toFixed(1)}%</span>
      <span class="muted">(${k.correct} of ${k.total}; ${k.k} neighbours${k.temperature ? `, votes exp(s / ${k.temperature})` : ""})</span></div>
      <div class="muted" style="margin-top:4px">Most confused classes</div>${rows}`;
    section.hidden = false;
  }

  // ---- view transform ------------------------------------------------------------------------------------------
  let minX = Infinity, maxX = -Infinity, minY = Infinity, maxY = -Infinity;
  for (let i = 0; i < n; i++) {
    minX = Math.min(minX, D.x[i]); maxX = Math.max(maxX, D.x[i]);
    minY = Math.min(minY, D.y[i]); maxY = Math.max(maxY, D.y[i]);
  }
  const spanX = Math.max(maxX - minX, 1e-9), spanY = Math.max(maxY - minY, 1e-9);
  let zoom = 1, panX = 0, panY = 0, width = 0, height = 0;
  const sx = new Float32Array(n), sy = new Float32Array(n);
  function base() {
    const pad = 28, scale = Math.min((width - 2 * pad) / spanX, (height - 2 * pad) / spanY);
    return { scale, ox: (width - scale * spanX) / 2, oy: (height - scale * spanY) / 2 };
  }
  function project() {
    const b = base();
    for (let i = 0; i < n; i++) {
      sx[i] = (b.ox + (D.x[i] - minX) * b.scale) * zoom + panX;
      sy[i] = (height - (b.oy + (D.y[i] - minY) * b.scale)) * zoom + panY;
    }
  }

  // ---- state ---------------------------------------------------------------------------------------------------
  let selected = -1, hovered = -1, filter = "";
  const matches = new Uint8Array(n).fill(1);
  const radius = () => Math.max(2, Math.min(5, 900 / Math.sqrt(n))) * Math.min(2, Math.sqrt(zoom));

  function draw() {
    const dpr = window.devicePixelRatio || 1;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const r = radius();
    // Points by colour, one path each: 10,000 points redraw in a few milliseconds.
    const groups = new Map();
    let drawn = 0;
    for (let i = 0; i < n; i++) {
      const c = matches[i] ? pointColour(i) : "#e5e7eb";
      if (!groups.has(c)) groups.set(c, []);
      groups.get(c).push(i);
      drawn++;
    }
    const order = [...groups.keys()].sort((a, b) => (a === "#e5e7eb" ? -1 : b === "#e5e7eb" ? 1 : 0));
    for (const c of order) {
      ctx.fillStyle = c;
      ctx.globalAlpha = c === "#e5e7eb" ? 1 : 0.85;
      ctx.beginPath();
      for (const i of groups.get(c)) { ctx.moveTo(sx[i] + r, sy[i]); ctx.arc(sx[i], sy[i], r, 0, 2 * Math.PI); }
      ctx.fill();
    }
    ctx.globalAlpha = 1;
    if (selected >= 0) {
      ctx.strokeStyle = "rgba(17,24,39,.55)";
      ctx.lineWidth = 1;
      ctx.beginPath();
      for (const j of D.neighbours[selected]) { ctx.moveTo(sx[selected], sy[selected]); ctx.lineTo(sx[j], sy[j]); }
      ctx.stroke();
      for (const j of D.neighbours[selected]) ring(j, r + 3, "#111827", 1.5);
      ring(selected, r + 5, "#111827", 3);
    }
    if (hovered >= 0 && hovered !== selected) ring(hovered, r + 3, "#111827", 2);
    canvas.dataset.points = String(drawn);
  }
  function ring(i, r, colour, w) {
    ctx.strokeStyle = colour; ctx.lineWidth = w;
    ctx.beginPath(); ctx.arc(sx[i], sy[i], r, 0, 2 * Math.PI); ctx.stroke();
  }
  function resize() {
    const rect = canvas.getBoundingClientRect(), dpr = window.devicePixelRatio || 1;
    width = rect.width; height = rect.height;
    canvas.width = Math.round(width * dpr); canvas.height = Math.round(height * dpr);
    project(); draw();
  }

  function nearest(mx, my) {
    const limit = Math.max(8, radius() + 4);
    let best = -1, bestD = limit * limit;
    for (let i = 0; i < n; i++) {
      if (!matches[i]) continue;
      const dx = sx[i] - mx, dy = sy[i] - my, d = dx * dx + dy * dy;
      if (d < bestD) { bestD = d; best = i; }
    }
    return best;
  }

  function media(i) {
    return D.thumbs[i] ? `<img class="strip" src="${escape(D.thumbs[i])}" alt="frames of ${escape(D.keys[i])}" loading="lazy">`
      : `<span class="nothumb">no thumbnail</span>`;
  }

  // ---- timelines (sets of windows) -----------------------------------------------------------------------------
  // For a clicked window: the similarity of every window of its video and of its neighbours' videos, over time.
  // The vectors come as int8 with one scale per window (base64), decoded once; similarities are their dot products.
  let vectors = null, timelineRows = [];
  function similarities(i) {
    if (!M || !M.vectors) return null;
    if (!vectors) {
      const bin = atob(M.vectors);
      vectors = new Int8Array(bin.length);
      for (let k = 0; k < bin.length; k++) vectors[k] = (bin.charCodeAt(k) << 24) >> 24;
    }
    const d = D.dim, sims = new Float32Array(n), a = i * d;
    for (let j = 0; j < n; j++) {
      let s = 0;
      const b = j * d;
      for (let k = 0; k < d; k++) s += vectors[a + k] * vectors[b + k];
      sims[j] = s * M.scales[i] * M.scales[j];
    }
    return sims;
  }
  function timelines(i) {
    const section = document.getElementById("timelines");
    timelineRows = [];
    if (!M || i < 0) { section.innerHTML = ""; return; }
    const sims = similarities(i);
    const order = [M.video[i]];
    for (const j of D.neighbours[i]) if (!order.includes(M.video[j]) && order.length < 6) order.push(M.video[j]);
    timelineRows = order.map((v) => {
      const items = [];
      for (let j = 0; j < n; j++) if (M.video[j] === v) items.push(j);
      items.sort((a, b) => M.start[a] - M.start[b]);
      let best = -1;
      if (sims) for (const j of items) if (j !== i && (best < 0 || sims[j] > sims[best])) best = j;
      return { video: M.videos[v], index: v, items, best, bestScore: best >= 0 ? sims[best] : null, bestStart: best >= 0 ? M.start[best] : null };
    });
    section.innerHTML = `<h2>Along the videos</h2><div class="muted">Similarity with the selected window over each video's length${sims ? "" : " (the set is too large to carry its vectors: neighbours only)"}; dark ticks: nearest neighbours; red: the selected window.</div>`
      + timelineRows.map((r, k) => `<div class="timeline"><div class="tlabel"><span class="key">${escape(r.video)}</span> <span class="muted">${r.bestScore !== null ? `best ${r.bestScore.toFixed(3)} at ${r.bestStart.toFixed(2)} s` : ""}</span></div><canvas data-row="${k}"></canvas></div>`).join("");
    section.querySelectorAll("canvas").forEach((c) => drawTimeline(c, timelineRows[Number(c.dataset.row)], i, sims));
  }
  function drawTimeline(c, row, i, sims) {
    const dpr = window.devicePixelRatio || 1, w = c.clientWidth || 300, h = 36;
    c.width = Math.round(w * dpr); c.height = Math.round(h * dpr);
    const g = c.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    const len = Math.max(M.length[row.index], 1e-6), x = (t) => (t / len) * w, level = (s) => Math.max(0, Math.min(1, s));
    g.fillStyle = "#f3f4f6"; g.fillRect(0, 0, w, h);
    if (sims) {
      for (const j of row.items) {
        const s = level(sims[j]);
        g.fillStyle = `hsl(${220 - 220 * s},75%,${72 - 27 * s}%)`;
        g.fillRect(x(M.start[j]), h - 4 - (h - 8) * s, Math.max(1, x(M.end[j]) - x(M.start[j])), (h - 8) * s + 4);
      }
      g.strokeStyle = "#111827"; g.lineWidth = 1; g.beginPath();
      row.items.forEach((j, k) => {
        const px = x((M.start[j] + M.end[j]) / 2), py = h - 4 - (h - 8) * level(sims[j]);
        if (k) g.lineTo(px, py); else g.moveTo(px, py);
      });
      g.stroke();
    }
    g.fillStyle = "#111827";
    for (const j of D.neighbours[i]) if (M.video[j] === row.index) g.fillRect(x(M.start[j]), 0, Math.max(2, x(M.end[j]) - x(M.start[j])), 5);
    if (M.video[i] === row.index) { g.strokeStyle = "#dc2626"; g.lineWidth = 2; g.strokeRect(x(M.start[i]), 1, Math.max(2, x(M.end[i]) - x(M.start[i])), h - 2); }
  }

  function select(i) {
    selected = i;
    const sel = document.getElementById("selection");
    const list = document.getElementById("neighbours");
    timelines(i);
    if (i < 0) { sel.innerHTML = `<p class="muted">No video selected.</p>`; list.innerHTML = ""; draw(); return; }
    const cls = className(i);
    sel.innerHTML = `<h2>Selected</h2><div class="key" id="selectedKey">${escape(D.keys[i])}</div>${cls ? `<div class="muted">class ${escape(cls)}</div>` : ""}
      <div style="margin-top:6px">${media(i)}</div><div class="muted" style="margin-top:8px">Nearest ${D.neighbours[i].length} by cosine similarity (as <code>cvrl search</code> ranks them):</div>`;
    list.innerHTML = D.neighbours[i].map((j, r) => {
      const c = className(j);
      const tag = c ? ` <span class="${c === cls ? "same" : "other"}">${escape(c)}</span>` : "";
      return `<li data-index="${j}" data-key="${escape(D.keys[j])}"><span class="rank">${r + 1}</span>
        <div class="line"><span class="key">${escape(D.keys[j])}${tag}</span><span class="score">${D.scores[i][r]}</span></div>
        <div class="media">${media(j)}</div></li>`;
    }).join("");
    draw();
  }
  document.getElementById("neighbours").addEventListener("click", (e) => {
    const li = e.target.closest("li[data-index]");
    if (li) select(Number(li.dataset.index));
  });

  // ---- interaction ---------------------------------------------------------------------------------------------
  let drag = null;
  canvas.addEventListener("mousemove", (e) => {
    const rect = canvas.getBoundingClientRect(), mx = e.clientX - rect.left, my = e.clientY - rect.top;
    if (drag) {
      panX = drag.panX + mx - drag.x; panY = drag.panY + my - drag.y;
      drag.moved = drag.moved || Math.abs(mx - drag.x) + Math.abs(my - drag.y) > 3;
      project(); draw(); return;
    }
    const i = nearest(mx, my);
    if (i !== hovered) { hovered = i; draw(); }
    if (i < 0) { tooltip.hidden = true; return; }
    const c = className(i);
    tooltip.innerHTML = `${media(i)}<div class="key">${escape(D.keys[i])}${c ? ` <span class="muted">(${escape(c)})</span>` : ""}</div>`;
    tooltip.hidden = false;
    const area = canvas.parentElement.getBoundingClientRect();
    const tw = tooltip.offsetWidth, th = tooltip.offsetHeight;
    tooltip.style.left = `${Math.min(mx + 14, area.width - tw - 4)}px`;
    tooltip.style.top = `${my + 14 + th < area.height ? my + 14 : Math.max(4, my - th - 10)}px`;
  });
  canvas.addEventListener("mouseleave", () => { hovered = -1; tooltip.hidden = true; drag = null; draw(); });
  canvas.addEventListener("mousedown", (e) => {
    const rect = canvas.getBoundingClientRect();
    drag = { x: e.clientX - rect.left, y: e.clientY - rect.top, panX, panY, moved: false };
  });
  canvas.addEventListener("mouseup", (e) => {
    const wasDrag = drag && drag.moved;
    drag = null;
    if (wasDrag) return;
    const rect = canvas.getBoundingClientRect();
    select(nearest(e.clientX - rect.left, e.clientY - rect.top));
  });
  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    const rect = canvas.getBoundingClientRect(), mx = e.clientX - rect.left, my = e.clientY - rect.top;
    const factor = Math.exp(-e.deltaY * 0.0015), next = Math.min(200, Math.max(0.5, zoom * factor));
    panX = mx - (mx - panX) * (next / zoom); panY = my - (my - panY) * (next / zoom);
    zoom = next; project(); draw();
  }, { passive: false });
  canvas.addEventListener("dblclick", () => { zoom = 1; panX = 0; panY = 0; project(); draw(); });
  document.getElementById("filter").addEventListener("input", (e) => {
    filter = e.target.value.trim().toLowerCase();
    let count = 0;
    for (let i = 0; i < n; i++) { matches[i] = !filter || D.keys[i].toLowerCase().includes(filter) ? 1 : 0; count += matches[i]; }
    document.getElementById("filterCount").textContent = filter ? `${count} of ${n} videos match` : "";
    draw();
  });
  window.addEventListener("resize", resize);

  // For scripts and tests: where a point is drawn (page coordinates), and selection by index.
  window.cvrlExplore = {
    count: n,
    screenPosition(i) { const rect = canvas.getBoundingClientRect(); return { x: rect.left + sx[i], y: rect.top + sy[i] }; },
    select,
    get selected() { return selected; },
    get timelines() { return timelineRows.map((r) => ({ video: r.video, windows: r.items.length, best: r.best, bestScore: r.bestScore, bestStart: r.bestStart })); },
  };
  resize();
  if (D.missingThumbCount > 0) console.info(`${D.missingThumbCount} video(s) have no thumbnail`);
})();
