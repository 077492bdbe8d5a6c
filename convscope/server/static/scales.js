// convscope live: what the colours mean, and an FC map that fills its box (issue 14, item 5).
//  - a colour bar under the activation grid: per layer, the layer's min to max (every tile on one
//    scale); per channel, each tile spans its own min to max, and the bar shows the selected
//    channel's (the hover tooltip shows any tile's);
//  - colour bars under magnitude maps (saliency, SmoothGrad²): max_c |gradient| from its min to
//    its max (the header's maps.<name>.scale_range); heatmaps' bars are drawn by layout.js;
//  - the FC map re-tiled to the shape of its box (the server sends a near-square grid of cells;
//    the page lays the same cells out in the number of columns that makes them largest), and the
//    header's fc.cols/rows follow, so clicks, the outline and the hover tooltip keep working.
'use strict';

(() => {
  const S = window.convscope;
  const $ = (id) => document.getElementById(id);
  const JET = 'linear-gradient(to right, #00008f, #0000ff 12.5%, #00ffff 37.5%, #ffff00 62.5%, #ff0000 87.5%, #800000)';
  const GREY = 'linear-gradient(to right, #000, #fff)';
  const num = (v) => (!Number.isFinite(v) ? String(v)
    : Math.abs(v) >= 1000 || (v !== 0 && Math.abs(v) < 0.01) ? v.toExponential(1) : v.toPrecision(3));
  S.formatValue = num;

  function makeBar(testid) {
    const bar = document.createElement('div');
    bar.className = 'colorbar';
    bar.dataset.testid = testid;
    bar.innerHTML = '<span class="what"></span><span class="lo"></span><span class="ramp"></span><span class="hi"></span>';
    return bar;
  }
  function setBar(bar, lo, hi, what, title) {
    bar.hidden = false;
    bar.querySelector('.ramp').style.background = S.state && S.state.grayscale ? GREY : JET;
    bar.querySelector('.what').textContent = what;
    bar.querySelector('.lo').textContent = num(lo);
    bar.querySelector('.hi').textContent = num(hi);
    bar.title = title;
  }

  // ---- the activation grid ------------------------------------------------------------------
  const gridBar = makeBar('colorbar-activations');
  $('grid-box').after(gridBar);
  function gridScale(meta) {
    const a = meta.activations;
    const r = S.ranges;
    if (!a || !r || r.length < 2 || a.empty === 'all zero' || !S.state) { gridBar.hidden = true; return; }
    if (S.state.normalize === 'layer') {
      let lo = Infinity;
      let hi = -Infinity;
      for (let i = 0; i < r.length; i += 2) { lo = Math.min(lo, r[i]); hi = Math.max(hi, r[i + 1]); }
      setBar(gridBar, lo, hi, 'layer', `per layer: every tile on one scale, ${num(lo)} (left) to ${num(hi)} (right)`);
    } else {
      const ch = Math.min(S.state.channel || 0, a.channels - 1);
      const lo = r[2 * ch];
      const hi = r[2 * ch + 1];
      setBar(gridBar, lo, hi, `ch ${ch}`, `per channel: each tile spans its own min (left) to max (right); ` +
        `channel ${ch}: ${num(lo)} to ${num(hi)} (hover a tile for its range)`);
    }
  }

  // ---- magnitude maps -----------------------------------------------------------------------
  function magnitudeBars(meta) {
    for (const fig of document.querySelectorAll('figure.map')) {
      const name = fig.dataset.algorithm;
      const a = S.hello && S.hello.algorithms.find((x) => x.name === name);
      if (!a || a.display !== 'magnitude') continue;
      const info = (meta.maps || {})[name];
      let bar = fig.querySelector(':scope > .colorbar');
      if (!info || !info.scale_range) { if (bar) bar.hidden = true; continue; }
      if (!bar) {
        bar = makeBar(`colorbar-${name.replace(/_/g, '-')}`);
        fig.append(bar);
      }
      const [lo, hi] = info.scale_range;
      setBar(bar, lo, hi, '|∇|', `colour scale: max over colour channels of |gradient|, ${num(lo)} (left) to ${num(hi)} (right)`);
    }
  }

  // ---- the FC map, re-tiled to its box ------------------------------------------------------
  function retile() {
    const f = S.meta && S.meta.fc;
    const canvas = $('fc');
    const box = $('fc-box');
    if (!f || !f.cell || canvas.width !== f.cols * f.cell) return;
    const W = box.clientWidth;
    const H = box.clientHeight;
    if (!W || !H) return;
    const n = f.neurons;
    const cell = f.cell;
    let best = f.cols;
    let bestScale = Math.min(W / (f.cols * cell), H / (Math.ceil(n / f.cols) * cell));
    for (let c = 1; c <= n; c += 1) {
      const s = Math.min(W / (c * cell), H / (Math.ceil(n / c) * cell));
      if (s > bestScale * 1.0001) { bestScale = s; best = c; }
    }
    if (best !== f.cols) {
      const src = document.createElement('canvas');
      src.width = canvas.width;
      src.height = canvas.height;
      src.getContext('2d').drawImage(canvas, 0, 0);
      const rows = Math.ceil(n / best);
      canvas.width = best * cell;
      canvas.height = rows * cell;
      const ctx = canvas.getContext('2d');
      ctx.fillStyle = '#0a0d12';
      ctx.fillRect(0, 0, canvas.width, canvas.height);
      for (let i = 0; i < n; i += 1) { // each cell (with the selection outline drawn in it) moves whole
        ctx.drawImage(src, (i % f.cols) * cell, Math.floor(i / f.cols) * cell, cell, cell,
          (i % best) * cell, Math.floor(i / best) * cell, cell, cell);
      }
      f.cols = best;
      f.rows = rows;
      f.width = canvas.width;
      f.height = canvas.height;
    }
    canvas.style.width = `${Math.floor(canvas.width * bestScale)}px`;
    canvas.style.height = `${Math.floor(canvas.height * bestScale)}px`;
  }
  S.retileFC = retile;

  // A bar whose numbers do not fit on their line hides them (they stay in its tooltip): never cut.
  function compact() {
    for (const bar of document.querySelectorAll('.colorbar')) {
      if (bar.hidden) continue;
      bar.classList.remove('compact');
      const lo = bar.querySelector('.lo');
      const hi = bar.querySelector('.hi');
      const box = bar.getBoundingClientRect();
      const out = [lo, hi].some((s) => { const r = s.getBoundingClientRect(); return r.bottom > box.bottom + 0.5 || r.right > box.right + 0.5; });
      bar.classList.toggle('compact', out);
    }
  }
  S.on('drawn', (meta) => { gridScale(meta); magnitudeBars(meta); retile(); compact(); });
  window.addEventListener('resize', () => requestAnimationFrame(compact));
  S.on('state', () => { if (S.meta) gridScale(S.meta); });
  window.addEventListener('resize', () => requestAnimationFrame(retile));
})();
