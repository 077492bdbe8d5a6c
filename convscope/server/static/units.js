// convscope live: the unit explorer (issue 15). For the selected channel of the activation grid's
// layer: its top patches this session (or a `convscope units` OUTDIR's with --units), each with its
// score and input frame (click: seek a file there), the histogram of its per-frame maxima, the
// layer overview (every channel by session mean or this frame's maximum, dead ones marked, click to
// select) and its feature visualisation, optimised in the background with a progress bar.
// The server keeps the data; this file asks for it with 'units' messages and draws the replies.
'use strict';

(() => {
  const S = window.convscope;
  const POLL_MS = 1000;
  const FAST_MS = 400; // while a visualisation is running
  const panel = document.createElement('div');
  panel.className = 'panel units';
  panel.dataset.testid = 'units';
  panel.hidden = true;
  panel.innerHTML = `
    <div class="panel-head units-head">
      <h2>Unit <span class="muted" data-testid="unit-title">–</span></h2>
      <button type="button" data-testid="units-toggle" aria-expanded="false"
              title="show / hide the unit explorer (it opens when you select a channel)">▸ explore</button>
    </div>
    <div class="units-body" data-testid="units-body" hidden>
    <div class="units-sub muted" data-testid="unit-source"></div>
    <div class="unit-patches" data-testid="unit-patches"></div>
    <div class="units-label muted">per-frame maximum over the session</div>
    <canvas class="unit-histogram" data-testid="unit-histogram" width="272" height="56"></canvas>
    <div class="units-row">
      <span class="units-label muted">layer overview</span>
      <select data-testid="unit-order" title="sort the channels">
        <option value="mean">by session mean</option><option value="frame">by this frame</option>
      </select>
    </div>
    <canvas class="unit-overview" data-testid="unit-overview" width="272" height="64"
            title="every channel, sorted; red: never active this session · click to select"></canvas>
    <div class="units-row featvis-row">
      <span class="units-label muted">feature visualisation</span>
      <button type="button" data-testid="featvis-start" title="optimise an image that excites this unit (in the background)">visualise</button>
    </div>
    <progress data-testid="featvis-progress" max="1" value="0" hidden></progress>
    <img class="featvis" data-testid="featvis" alt="feature visualisation" hidden>
    <div class="featvis-note muted" data-testid="featvis-note"></div>
    </div>`;
  const col = document.querySelector('.col-a');
  if (col) col.append(panel);
  const q = (sel) => panel.querySelector(`[data-testid="${sel}"]`);
  const order = q('unit-order');

  let wanted = null; // {layer, channel}
  let interacted = false; // the user selected a channel here: visualise it without a click
  let last = null; // the newest reply
  let timer = null;
  let open = false; // collapsed until a channel is selected here (the dashboard's layout fits then)
  const visWanted = new Set(); // "layer:channel" the user asked to visualise

  const key = (layer, channel) => `${layer}:${channel}`;
  const fmt = (v) => (v === null || v === undefined ? '–' : Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3));

  function setOpen(value, reveal) {
    open = value;
    q('units-body').hidden = !open;
    const t = q('units-toggle');
    t.textContent = open ? '▾ hide' : '▸ explore';
    t.setAttribute('aria-expanded', String(open));
    window.dispatchEvent(new Event('resize'));
    if (open) {
      ask();
      schedule();
      if (reveal) panel.scrollIntoView({ block: 'nearest' });
    } else {
      clearTimeout(timer);
    }
  }
  q('units-toggle').addEventListener('click', () => setOpen(!open, true));

  function ask() {
    if (!open || !wanted || !S.hello || !S.hello.units) return;
    const featvis = S.hello.units.featvis && (interacted || visWanted.has(key(wanted.layer, wanted.channel)));
    if (featvis) visWanted.add(key(wanted.layer, wanted.channel));
    S.send({ type: 'units', layer: wanted.layer, channel: wanted.channel, order: order.value, featvis });
  }

  function schedule() {
    clearTimeout(timer);
    if (!open) return;
    const running = last && last.featvis && ['queued', 'running'].includes(last.featvis.state);
    timer = setTimeout(() => { if (!document.hidden) ask(); schedule(); }, running ? FAST_MS : POLL_MS);
  }

  S.on('hello', (msg) => {
    panel.hidden = !msg.units;
    q('featvis-start').hidden = !(msg.units && msg.units.featvis);
  });

  S.on('state', (st) => {
    if (!st.conv_layer) return;
    const changed = wanted && (wanted.layer !== st.conv_layer || wanted.channel !== st.channel);
    if (changed) interacted = true;
    if (!wanted || changed) {
      wanted = { layer: st.conv_layer, channel: st.channel };
      q('unit-title').textContent = `${wanted.layer} · channel ${wanted.channel}`;
      if (changed && !open) setOpen(true, true);
      else if (open) { ask(); schedule(); }
    }
  });

  order.addEventListener('change', ask);
  q('featvis-start').addEventListener('click', () => {
    if (!wanted) return;
    visWanted.add(key(wanted.layer, wanted.channel));
    ask();
    schedule();
  });

  S.on('units', (msg) => {
    if (!wanted || msg.layer !== wanted.layer || msg.channel !== wanted.channel) return;
    last = msg;
    S.units = msg; // for the browser tests and debugging
    draw(msg);
  });

  function draw(msg) {
    q('unit-title').textContent = `${msg.layer} · channel ${msg.channel}`;
    const dataset = msg.source === 'dataset';
    q('unit-source').textContent = dataset
      ? `top ${msg.top.length} over the dataset (${S.hello.units.dataset})`
      : `top ${msg.top.length} of ${msg.frames} frames this session`;
    drawPatches(msg, dataset);
    drawHistogram(q('unit-histogram'), msg.histogram);
    drawOverview(q('unit-overview'), msg.overview, msg.channel);
    drawFeatvis(msg.featvis);
  }

  function drawPatches(msg, dataset) {
    const box = q('unit-patches');
    const seekable = !!(S.hello && S.hello.playback);
    const figs = msg.top.map((t, i) => {
      const fig = document.createElement('figure');
      fig.className = 'unit-patch';
      fig.dataset.testid = 'unit-patch';
      fig.dataset.frame = t.frame === null || t.frame === undefined ? '' : String(t.frame);
      fig.dataset.score = String(t.score);
      const img = document.createElement('img');
      img.src = t.image || '';
      img.alt = `top ${i + 1}`;
      const cap = document.createElement('figcaption');
      const where = dataset ? (t.source || '') + (t.frame !== null && t.frame !== undefined ? ` #${t.frame}` : '') : `frame ${t.frame}`;
      cap.textContent = `${fmt(t.score)} · ${where}`;
      fig.title = `score ${t.score} · ${where} · box ${t.box.map((v) => Math.round(v)).join(',')}` +
        (!dataset && seekable ? ' · click: seek there' : '');
      if (!dataset && seekable) {
        fig.classList.add('seekable');
        fig.addEventListener('click', () => S.send({ type: 'seek', frame: t.frame }));
      }
      fig.append(img, cap);
      return fig;
    });
    if (!figs.length) {
      const p = document.createElement('p');
      p.className = 'muted';
      p.textContent = 'no patches yet';
      figs.push(p);
    }
    box.replaceChildren(...figs);
  }

  function drawHistogram(canvas, h) {
    const ctx = canvas.getContext('2d');
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    canvas.dataset.frames = h ? String(h.counts.reduce((a, b) => a + b, 0)) : '0';
    if (!h) { canvas.title = 'no session histogram'; return; }
    const top = Math.max(1, ...h.counts);
    const w = canvas.width / h.counts.length;
    const H = canvas.height - 12;
    ctx.fillStyle = '#5aa0ff';
    h.counts.forEach((c, i) => {
      const bh = Math.round((H * c) / top);
      ctx.fillRect(i * w + 0.5, H - bh, Math.max(1, w - 1), bh);
    });
    ctx.fillStyle = '#8a94a6';
    ctx.font = '10px sans-serif';
    ctx.fillText(fmt(h.min), 0, canvas.height - 1);
    const hi = fmt(h.max);
    ctx.fillText(hi, canvas.width - ctx.measureText(hi).width, canvas.height - 1);
    canvas.title = `per-frame maxima from ${h.min} to ${h.max}`;
  }

  function drawOverview(canvas, ov, selected) {
    const ctx = canvas.getContext('2d');
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    const n = ov.order.length;
    canvas.dataset.channels = String(n);
    canvas.dataset.dead = String(ov.dead.length);
    if (!n) return;
    const values = ov.order_by === 'frame' ? ov.last : ov.mean;
    const finite = values.filter((v) => v !== null);
    const hi = Math.max(1e-12, ...finite.map((v) => Math.abs(v)));
    const w = canvas.width / n;
    const H = canvas.height - 6;
    const dead = new Set(ov.dead);
    ov.order.forEach((c, i) => {
      const v = values[c] === null ? 0 : Math.max(0, values[c]);
      const bh = Math.max(1, Math.round((H * v) / hi));
      ctx.fillStyle = c === selected ? '#ffffff' : '#5aa0ff';
      ctx.fillRect(i * w, H - bh, Math.max(1, w - (w > 3 ? 1 : 0)), bh);
      if (dead.has(c)) { ctx.fillStyle = '#ff5a5a'; ctx.fillRect(i * w, H + 2, Math.max(1, w - (w > 3 ? 1 : 0)), 4); }
    });
    canvas._order = ov.order;
  }

  q('unit-overview').addEventListener('click', (e) => {
    const canvas = e.currentTarget;
    const ord = canvas._order;
    if (!ord || !ord.length) return;
    const r = canvas.getBoundingClientRect();
    const i = Math.min(ord.length - 1, Math.max(0, Math.floor(((e.clientX - r.left) / r.width) * ord.length)));
    S.send({ type: 'view', channel: ord[i] });
  });
  q('unit-overview').addEventListener('mousemove', (e) => {
    const canvas = e.currentTarget;
    const ord = canvas._order;
    if (!ord || !ord.length || !last) return;
    const r = canvas.getBoundingClientRect();
    const i = Math.min(ord.length - 1, Math.max(0, Math.floor(((e.clientX - r.left) / r.width) * ord.length)));
    const c = ord[i];
    const ov = last.overview;
    canvas.title = `channel ${c} · mean ${fmt(ov.mean[c])} · this frame ${fmt(ov.last[c])}` +
      (ov.dead.includes(c) ? ' · never active' : '') + ' · click to select';
  });

  function drawFeatvis(fv) {
    const img = q('featvis');
    const bar = q('featvis-progress');
    const note = q('featvis-note');
    panel.dataset.featvis = fv ? fv.state : 'off';
    if (!fv) { img.hidden = true; bar.hidden = true; note.textContent = 'off (--no-featvis)'; return; }
    const running = fv.state === 'queued' || fv.state === 'running';
    bar.hidden = !running;
    bar.max = fv.steps || 1;
    bar.value = fv.step || 0;
    if (fv.state === 'done' && fv.image) {
      if (img.src !== fv.image) img.src = fv.image;
      img.hidden = false;
    } else {
      img.hidden = true;
    }
    note.textContent = {
      idle: 'click visualise, or select a channel, to optimise an image for this unit',
      queued: 'queued…',
      running: `optimising in the background: step ${fv.step} / ${fv.steps}`,
      done: `optimised for ${fv.steps} steps (jitter, scale, rotation, decorrelated Fourier)`,
      cancelled: 'stopped (another unit was selected); visualise to restart',
      error: `failed: ${fv.error || ''}`,
    }[fv.state] || fv.state;
  }
})();
