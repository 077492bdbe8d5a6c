// convscope live: the page side. One WebSocket; JSON for metadata, binary messages for images.
// Per frame: a JSON header, then one binary message with every panel (see onBinary).
// Selections are sent as JSON and come back to every open tab as the shared "state".
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const token = new URLSearchParams(location.search).get('token');
  const FIXED = { input: 'input', activations: 'activations', channel: 'channel', fc: 'fc' };

  // Exposed for debugging and for the browser tests.
  const S = (window.convscope = {
    ws: null, hello: null, state: null, status: null, meta: null, ranges: null,
    framesReceived: 0, framesDrawn: 0, errors: [],
    sendRaw: (text) => S.ws && S.ws.send(text),
    // For the page's other scripts (playback.js, classes.js): send a message, and listen to every
    // message type ('hello', 'state', 'status', 'playback' ...) and to 'drawn' (a frame was drawn).
    send: (msg) => send(msg),
    listeners: {},
    on: (type, fn) => { (S.listeners[type] = S.listeners[type] || []).push(fn); },
  });
  const emit = (type, msg) => { for (const fn of S.listeners[type] || []) fn(msg); };

  const frames = new Map(); // seq -> {meta}: headers waiting for their binary message
  let lastDrawn = -1;
  const tabTimes = [];

  // ---- connection -------------------------------------------------------------------------
  function connect() {
    const proto = location.protocol === 'https:' ? 'wss' : 'ws';
    const query = token ? `?token=${encodeURIComponent(token)}` : '';
    const ws = new WebSocket(`${proto}://${location.host}/ws${query}`);
    ws.binaryType = 'arraybuffer';
    S.ws = ws;
    ws.onmessage = (ev) => {
      if (typeof ev.data === 'string') onJSON(JSON.parse(ev.data));
      else onBinary(ev.data);
    };
    ws.onclose = (ev) => {
      frames.clear();
      $('status').textContent = ev.code === 1008 ? `refused: ${ev.reason}` : 'disconnected · reconnecting…';
      setTimeout(connect, ev.code === 1008 ? 5000 : 1000);
    };
  }

  function send(msg) {
    if (S.ws && S.ws.readyState === WebSocket.OPEN) S.ws.send(JSON.stringify(msg));
  }

  function onJSON(msg) {
    switch (msg.type) {
      case 'hello': onHello(msg); break;
      case 'state': onState(msg); break;
      case 'status': onStatus(msg); break;
      case 'frame': frames.set(msg.seq, { meta: msg }); break;
      case 'error': onError(msg); break;
      default: break;
    }
    emit(msg.type, msg);
  }

  // One binary message per frame: [uint32 length][blob] per panel; a blob is
  // [uint32 seq][uint8 n][n bytes name][payload].
  function onBinary(buf) {
    const view = new DataView(buf);
    const parts = {};
    let seq = -1;
    for (let off = 0; off + 4 <= buf.byteLength;) {
      const len = view.getUint32(off, true);
      const start = off + 4;
      seq = view.getUint32(start, true);
      const n = view.getUint8(start + 4);
      const name = String.fromCharCode(...new Uint8Array(buf, start + 5, n));
      parts[name] = buf.slice(start + 5 + n, start + len);
      off = start + len;
    }
    const entry = frames.get(seq);
    if (!entry) return;
    send({ type: 'ack', seq });
    for (const old of frames.keys()) if (old <= seq) frames.delete(old);
    S.framesReceived += 1;
    drawFrame(entry.meta, parts);
  }

  // ---- drawing ----------------------------------------------------------------------------
  async function drawFrame(meta, parts) {
    const jobs = meta.panels.filter((p) => p.mime.startsWith('image/')).map(async (p) => {
      const bitmap = await createImageBitmap(new Blob([parts[p.name]], { type: p.mime }));
      return [p.name, bitmap];
    });
    const bitmaps = await Promise.all(jobs);
    if (meta.seq <= lastDrawn) { bitmaps.forEach(([, b]) => b.close()); return; }
    lastDrawn = meta.seq;
    S.meta = meta;
    if (parts.ranges) S.ranges = new Float32Array(parts.ranges);
    S.fcValues = parts.fc_values ? new Float32Array(parts.fc_values) : null; // every FC neuron's value (hover)
    for (const [name, bitmap] of bitmaps) {
      const canvas = canvasFor(name);
      if (canvas) paint(canvas, bitmap);
      bitmap.close();
    }
    highlight();
    fitAll();
    renderPredictions(meta.predictions);
    renderCaptions(meta);
    renderSelection();
    S.framesDrawn += 1;
    emit('drawn', meta);
    const now = performance.now();
    tabTimes.push(now);
    while (tabTimes.length && now - tabTimes[0] > 3000) tabTimes.shift();
  }

  // Outline the selected tile and FC cell on the freshly drawn images.
  function highlight() {
    const st = S.state;
    const m = S.meta;
    if (!st || !m) return;
    const a = m.activations;
    if (a && a.layer === st.conv_layer && st.channel < a.channels) outline($('activations'), st.channel, a.tile_w, a.tile_h, a.cols);
    const f = m.fc;
    if (f && f.layer === st.fc_layer && st.neuron !== null && st.neuron < f.neurons) outline($('fc'), st.neuron, f.cell, f.cell, f.cols);
  }

  function outline(canvas, i, w, h, cols) {
    const ctx = canvas.getContext('2d');
    const lw = Math.max(2, Math.round(canvas.width / 200));
    ctx.lineWidth = lw;
    ctx.strokeStyle = '#ffffff';
    ctx.strokeRect((i % cols) * w + lw / 2, Math.floor(i / cols) * h + lw / 2, w - lw, h - lw);
  }

  function canvasFor(name) {
    if (FIXED[name]) return $(FIXED[name]);
    if (name.startsWith('map:')) {
      const fig = mapPanel(name.slice(4));
      return fig && fig.querySelector('canvas');
    }
    const fig = viewPanel(name);
    return fig && fig.querySelector('canvas');
  }

  // A view the page has no element for (a plugin view: hello.views) gets a figure made from the
  // map template, so a new view of the image kind shows with no page code.
  function viewPanel(name) {
    const found = document.querySelector(`figure.view[data-view="${CSS.escape(name)}"]`);
    if (found) return found;
    const v = S.hello && (S.hello.views || []).find((x) => x.name === name);
    if (!v || v.kind !== 'image') return null;
    const fig = $('map-template').content.firstElementChild.cloneNode(true);
    fig.classList.replace('map', 'view');
    fig.dataset.view = name;
    fig.querySelector('.title').textContent = v.title || name;
    fig.querySelector('canvas').dataset.testid = `view-${name}`;
    $('maps').append(fig);
    return fig;
  }

  function paint(canvas, bitmap) {
    if (canvas.width !== bitmap.width || canvas.height !== bitmap.height) {
      canvas.width = bitmap.width;
      canvas.height = bitmap.height;
    }
    canvas.getContext('2d').drawImage(bitmap, 0, 0);
  }

  // Scale a canvas to fill its box while keeping its aspect ratio.
  function fit(canvas) {
    const box = canvas.parentElement;
    const s = Math.min(box.clientWidth / canvas.width, box.clientHeight / canvas.height);
    if (!isFinite(s) || s <= 0) return;
    canvas.style.width = `${Math.floor(canvas.width * s)}px`;
    canvas.style.height = `${Math.floor(canvas.height * s)}px`;
  }
  function fitAll() { fit($('activations')); fit($('fc')); }
  window.addEventListener('resize', fitAll);

  // ---- hello: menus built from the server's lists ------------------------------------------
  const shape = (l) => (l.shape.length ? l.shape.join('×') : '?');

  // Layers grouped by kind (<optgroup>), execution order within a group, so hundreds stay usable.
  // A hello without `kind` (older servers) gives one plain list. Option values are layer names.
  const KINDS = { conv: 'conv', block: 'blocks', norm: 'norm', act: 'activations', tokens: 'tokens', linear: 'linear' };
  const KIND_ORDER = Object.keys(KINDS);

  function layerOption(l) {
    const layout = l.layout && l.layout !== 'map' && l.layout !== 'vector' ? `  (${l.layout})` : '';
    return new Option(`${l.index}. ${l.name}  ${shape(l)}${layout}`, l.name);
  }

  function fillSelect(select, layers) {
    const kinds = [...new Set(layers.map((l) => l.kind).filter(Boolean))];
    if (kinds.length === 0) { select.replaceChildren(...layers.map(layerOption)); return; }
    const rank = (k) => { const i = KIND_ORDER.indexOf(k); return i < 0 ? KIND_ORDER.length : i; };
    kinds.sort((a, b) => rank(a) - rank(b));
    const groups = kinds.map((kind) => {
      const members = layers.filter((l) => l.kind === kind);
      const group = document.createElement('optgroup');
      group.label = `${KINDS[kind] || kind} · ${members.length}`;
      group.dataset.kind = kind;
      group.append(...members.map(layerOption));
      return group;
    });
    select.replaceChildren(...layers.filter((l) => !l.kind).map(layerOption), ...groups);
  }

  function onHello(msg) {
    S.hello = msg;
    $('model').textContent = msg.model;
    const spec = msg.source.kind === 'file' ? msg.source.spec.split(/[\\/]/).pop() : msg.source.spec;
    $('source').textContent = `${msg.source.kind}: ${spec}`;
    $('source').title = msg.source.spec;
    fillSelect($('conv-layer'), msg.conv_layers);
    fillSelect($('cam-layer'), msg.conv_layers);
    fillSelect($('fc-layer'), msg.linear_layers);
    const algs = $('algorithms');
    algs.replaceChildren();
    for (const a of msg.algorithms) {
      const label = document.createElement('label');
      label.title = a.summary || '';
      const box = document.createElement('input');
      box.type = 'checkbox';
      box.value = a.name;
      box.dataset.testid = `algorithm-${a.name}`;
      box.addEventListener('change', () => {
        const chosen = [...algs.querySelectorAll('input:checked')].map((b) => b.value);
        send({ type: 'view', algorithms: chosen });
      });
      label.append(box, ` ${a.title || a.name}`);
      algs.append(label);
      mapPanel(a.name, true);
    }
  }

  function algorithm(name) {
    return S.hello && S.hello.algorithms.find((a) => a.name === name);
  }

  function mapPanel(name, create = false) {
    let fig = document.querySelector(`figure.map[data-algorithm="${CSS.escape(name)}"]`);
    if (!fig && create) {
      fig = $('map-template').content.firstElementChild.cloneNode(true);
      fig.dataset.algorithm = name;
      const a = algorithm(name);
      fig.querySelector('.title').textContent = a ? a.title || name : name;
      fig.title = a ? a.summary || '' : '';
      fig.querySelector('canvas').dataset.testid = name.replace(/_/g, '-');
      fig.hidden = true;
      $('maps').append(fig);
    }
    return fig;
  }

  // ---- shared state -----------------------------------------------------------------------
  function onState(st) {
    S.state = st;
    $('conv-layer').value = st.conv_layer;
    $('fc-layer').value = st.fc_layer;
    $('cam-layer').value = st.cam_layer;
    $('grayscale').checked = st.grayscale;
    $('normalize').value = st.normalize;
    const pause = $('pause');
    pause.setAttribute('aria-pressed', String(st.paused));
    pause.textContent = st.paused ? '▶ Play' : '❚❚ Pause';
    for (const box of $('algorithms').querySelectorAll('input')) box.checked = st.algorithms.includes(box.value);
    for (const fig of document.querySelectorAll('figure.map')) fig.hidden = !st.algorithms.includes(fig.dataset.algorithm);
    if (S.meta) { renderPredictions(S.meta.predictions); renderCaptions(S.meta); }
    renderSelection();
  }

  $('pause').addEventListener('click', () => send({ type: 'pause', paused: !(S.state && S.state.paused) }));
  $('grayscale').addEventListener('change', (e) => send({ type: 'view', grayscale: e.target.checked }));
  $('normalize').addEventListener('change', (e) => send({ type: 'view', normalize: e.target.value }));
  $('conv-layer').addEventListener('change', (e) => send({ type: 'view', conv_layer: e.target.value }));
  $('fc-layer').addEventListener('change', (e) => send({ type: 'view', fc_layer: e.target.value }));
  $('cam-layer').addEventListener('change', (e) => send({ type: 'view', cam_layer: e.target.value }));

  // ---- predictions --------------------------------------------------------------------------
  function renderPredictions(preds) {
    const pinned = S.state ? S.state.cam_class : null;
    const list = $('predictions');
    list.replaceChildren(...preds.map((p) => {
      const li = document.createElement('li');
      li.dataset.index = p.index;
      li.classList.toggle('pinned', p.index === pinned);
      li.title = p.index === pinned ? 'pinned as the Grad-CAM class: click to follow the top-1 again'
        : 'click to pin this class for Grad-CAM';
      const bar = document.createElement('span');
      bar.className = 'bar';
      bar.style.width = `${(100 * p.probability).toFixed(1)}%`;
      const label = document.createElement('span');
      label.className = 'label';
      label.textContent = `${p.index === pinned ? '◆ ' : ''}${p.label}`;
      const prob = document.createElement('span');
      prob.className = 'prob';
      prob.textContent = `${(100 * p.probability).toFixed(1)}%`;
      li.append(bar, label, prob);
      return li;
    }));
  }

  $('predictions').addEventListener('click', (e) => {
    const li = e.target.closest('li');
    if (!li) return;
    const index = Number(li.dataset.index);
    send({ type: 'view', cam_class: S.state && S.state.cam_class === index ? null : index });
  });

  // ---- captions and the selection line ----------------------------------------------------------
  const label = (i) => (S.hello && S.hello.labels[i] !== undefined ? S.hello.labels[i] : `class ${i}`);

  function describeTarget(t) {
    if (!t) return '';
    if ('class' in t) return t.class === null || t.class === undefined ? 'top-1' : `class ${t.class} “${label(t.class)}”`;
    if ('channel' in t) return `channel ${t.channel}`;
    if ('neuron' in t) return `neuron ${t.neuron}`;
    return '';
  }

  // A blank panel (all zero, constant, inf/nan: `empty` in the frame header) gets a visible label
  // over its canvas, data-testid "empty-<panel>", instead of a silent flat picture.
  function markEmpty(box, panel, reason) {
    if (!box) return;
    let tag = box.querySelector(':scope > .empty-label');
    if (!reason) { if (tag) tag.hidden = true; return; }
    if (!tag) {
      tag = document.createElement('div');
      tag.className = 'empty-label';
      tag.dataset.testid = `empty-${panel}`;
      tag.setAttribute('role', 'status');
      box.append(tag);
    }
    tag.textContent = reason;
    tag.hidden = false;
  }

  function renderEmpty(meta) {
    const a = meta.activations;
    markEmpty($('grid-box'), 'activations', a && a.empty);
    markEmpty($('channel').parentElement, 'channel', meta.channel && meta.channel.empty);
    markEmpty($('fc-box'), 'fc', meta.fc && meta.fc.empty);
    for (const fig of document.querySelectorAll('figure.map')) {
      const info = (meta.maps || {})[fig.dataset.algorithm];
      markEmpty(fig.querySelector('.canvas-box'), fig.dataset.algorithm.replace(/_/g, '-'), info && info.empty);
    }
    for (const fig of document.querySelectorAll('figure.view')) {
      const info = meta[fig.dataset.view];
      markEmpty(fig.querySelector('.canvas-box'), fig.dataset.view, info && info.empty);
      fig.hidden = !meta.panels.some((p) => p.name === fig.dataset.view);
    }
  }

  function renderCaptions(meta) {
    const st = S.state;
    renderEmpty(meta);
    for (const [name, info] of Object.entries(meta.maps || {})) {
      const fig = mapPanel(name);
      if (!fig) continue;
      const a = algorithm(name);
      const title = a ? a.title || name : name;
      fig.querySelector('.title').textContent = info.layer ? `${title} · ${info.layer}` : title;
      let text = describeTarget(info.target);
      if (st && 'class' in info.target && st.cam_class !== null) text = `◆ pinned ${text}`;
      if (info.rule && info.rule !== 'standard') text += ` · ${info.rule}`;
      fig.querySelector('.target').textContent = text;
      fig.dataset.target = JSON.stringify(info.target);
    }
    const a = meta.activations;
    $('channel-caption').textContent = a && meta.channel ? `${meta.channel.index} of ${a.layer}` : '';
    if (a) $('grid-info').textContent = `${a.channels} channels · ${a.rows}×${a.cols} tiles · click a tile to select · hover for its range`;
    const f = meta.fc;
    $('fc-info').textContent = f ? `${f.neurons} neurons · [${fmt(f.value_range[0])}, ${fmt(f.value_range[1])}]` : '';
    const inp = meta.panels.find((p) => p.name === 'input');
    $('input-size').textContent = inp ? `${inp.width}×${inp.height}` : '';
  }

  const fmt = (v) => (v === null || v === undefined ? '–' : Math.abs(v) >= 100 ? v.toFixed(1) : v.toPrecision(4));

  function isOutputLayer(name) {
    const lin = S.hello ? S.hello.linear_layers : [];
    const last = lin[lin.length - 1];
    return last && last.name === name && last.shape[0] === S.hello.num_classes;
  }

  function renderSelection() {
    const st = S.state;
    if (!st) return;
    const el = $('selection');
    const parts = [];
    parts.push(`conv <b>${esc(st.conv_layer)}</b> · channel <b>${st.channel}</b>`);
    let neuron = 'none (click the FC map)';
    if (st.neuron !== null) {
      neuron = `<b>${st.neuron}</b>`;
      if (isOutputLayer(st.fc_layer)) neuron += ` “${esc(label(st.neuron))}”`;
      const f = S.meta && S.meta.fc;
      if (f && f.layer === st.fc_layer && f.selected === st.neuron && f.selected_value !== null) neuron += ` = ${fmt(f.selected_value)}`;
    }
    parts.push(`fc <b>${esc(st.fc_layer)}</b> · neuron ${neuron}`);
    const cam = st.cam_class === null ? 'top-1' : `pinned ${st.cam_class} “${esc(label(st.cam_class))}”`;
    const gb = { channel: `channel ${st.channel}`, neuron: st.neuron === null ? 'class' : `neuron ${st.neuron}`, class: 'class' }[st.selection];
    parts.push(`Grad-CAM: ${cam} · guided BP: ${gb}`);
    el.innerHTML = parts.join('<br>');
  }

  function esc(s) {
    return String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' }[c]));
  }

  // ---- activation grid and FC map: click and hover ---------------------------------------------
  function cellAt(canvas, ev, cellW, cellH, cols, count) {
    const r = canvas.getBoundingClientRect();
    const x = ((ev.clientX - r.left) / r.width) * canvas.width;
    const y = ((ev.clientY - r.top) / r.height) * canvas.height;
    const col = Math.floor(x / cellW);
    const row = Math.floor(y / cellH);
    if (col < 0 || row < 0 || col >= cols) return null;
    const i = row * cols + col;
    return i < count ? i : null;
  }

  function tileAt(ev) {
    const a = S.meta && S.meta.activations;
    return a ? cellAt($('activations'), ev, a.tile_w, a.tile_h, a.cols, a.channels) : null;
  }

  $('activations').addEventListener('click', (ev) => {
    const ch = tileAt(ev);
    if (ch !== null) send({ type: 'view', channel: ch, selection: 'channel' });
  });

  $('activations').addEventListener('mousemove', (ev) => {
    const tip = $('tooltip');
    const ch = tileAt(ev);
    if (ch === null) { tip.hidden = true; return; }
    let rg = '';
    if (S.ranges && S.ranges.length >= 2 * (ch + 1)) {
      const lo = S.ranges[2 * ch];
      const hi = S.ranges[2 * ch + 1];
      rg = ` · range [${fmt(lo)}, ${fmt(hi)}]`;
      if (!Number.isFinite(lo) || !Number.isFinite(hi)) rg += ' · non-finite (inf/nan)';
      else if (lo === 0 && hi === 0) rg += ' · all zero';
      else if (hi - lo <= 1e-6 * Math.max(Math.abs(lo), Math.abs(hi))) rg += ' · constant';
    }
    tip.textContent = `channel ${ch}${rg}`;
    const box = $('grid-box').getBoundingClientRect();
    tip.hidden = false;
    tip.style.left = `${Math.min(ev.clientX - box.left + 12, box.width - tip.offsetWidth - 4)}px`;
    tip.style.top = `${Math.max(ev.clientY - box.top - 28, 4)}px`;
  });
  $('activations').addEventListener('mouseleave', () => { $('tooltip').hidden = true; });

  $('fc').addEventListener('click', (ev) => {
    const f = S.meta && S.meta.fc;
    if (!f) return;
    const n = cellAt($('fc'), ev, f.cell, f.cell, f.cols, f.neurons);
    if (n !== null) send({ type: 'view', neuron: n, selection: 'neuron' });
  });

  // ---- status and errors --------------------------------------------------------------------------
  function onStatus(s) {
    S.status = s;
    const el = $('status');
    el.dataset.source = s.source.status;
    const now = performance.now();
    const tab = tabTimes.filter((t) => now - t <= 3000);
    const tabFps = tab.length > 1 ? (tab.length - 1) / ((tab[tab.length - 1] - tab[0]) / 1000) : 0;
    const parts = [
      `<span class="dot"></span>${s.source.status === 'ended' ? 'ended' : s.paused ? 'paused' : esc(s.source.status)}` +
        (s.source.status === 'reconnecting' ? ` (attempt ${s.source.attempt})` : ''),
      `dashboard ${s.fps.toFixed(1)} fps`,
      `network ${s.net_fps ? s.net_fps.toFixed(1) : '–'} fps`,
      `ratio ${s.ratio === null ? '–' : s.ratio.toFixed(2)}`,
      // "skipped": frames a live source produced while the dashboard was busy, counted only while
      // playing; a file or folder skips nothing (its timeline and "every frame" say where it is).
      ...(s.live === false ? [] : [`<span class="skipped" title="frames the live source produced while the dashboard was still computing the previous one (not an error: the dashboard always shows the newest frame; not counted while paused)">skipped ${s.skipped === undefined ? s.dropped : s.skipped}</span>`]),
      `${s.viewers} viewer${s.viewers === 1 ? '' : 's'}`,
    ];
    if (s.error) parts.push(`<span class="err">${esc(s.error)}</span>`);
    else if (s.source.last_error && s.source.status !== 'playing') parts.push(`<span class="err">${esc(s.source.last_error)}</span>`);
    el.innerHTML = parts.join(' · ');
    el.title = `network FPS: ${s.net_fps_method}\nengine ${s.engine_ms} ms + encode ${s.encode_ms} ms per frame` +
      ` (${s.encode_share === null ? '–' : (100 * s.encode_share).toFixed(1)}%), ${(s.frame_bytes / 1024).toFixed(0)} KiB` +
      `\nthis tab: ${tabFps.toFixed(1)} fps`;
  }

  let toastTimer = null;
  function onError(msg) {
    S.errors.push(msg);
    const t = $('toast');
    t.textContent = msg.message;
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.hidden = true; }, 4000);
  }

  // Connect once every script of the page has run: the others (playback.js, trust.js, units.js ...)
  // listen for the first messages ('hello', 'state', 'sanity'), and a busy browser can run the
  // socket's first messages between two scripts that are still loading.
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', connect);
  else connect();
})();
