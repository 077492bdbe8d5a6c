// convscope live: layout helpers (issue 14, item 5). Click a panel's title to enlarge it to the
// whole window (click again or Escape to restore); the map panels take as many columns as they need
// to fit the column's height, so every map stays in view with all of them on.
'use strict';

(() => {
  const S = window.convscope;
  const $ = (id) => document.getElementById(id);
  const GAP = 10;
  const MIN_MAP = 104;

  function setEnlarged(panel) {
    document.querySelectorAll('.panel.enlarged').forEach((p) => { if (p !== panel) p.classList.remove('enlarged'); });
    if (panel) panel.classList.toggle('enlarged');
    document.body.classList.toggle('has-enlarged', !!document.querySelector('.panel.enlarged'));
    window.dispatchEvent(new Event('resize')); // the canvases refit (app.js listens)
  }

  document.addEventListener('click', (e) => {
    const title = e.target.closest('figure.panel > figcaption, .panel > h2, .panel-head > h2');
    if (!title) return;
    const panel = title.closest('.panel');
    if (panel) setEnlarged(panel);
  });
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && document.querySelector('.panel.enlarged')) setEnlarged(null);
  });
  for (const t of document.querySelectorAll('figure.panel > figcaption, .panel > h2, .panel-head > h2')) {
    t.title = t.title || 'click to enlarge (again or Esc to restore)';
  }

  // The fewest columns for the visible map panels (square canvases) that fit the column's height.
  function fitMaps() {
    const maps = $('maps');
    const col = maps.closest('.col');
    const figs = [...maps.children].filter((f) => !f.hidden);
    if (!figs.length || !col) return;
    const others = [...col.children].filter((c) => c !== maps).reduce((h, c) => h + c.offsetHeight + GAP, 0);
    const avail = col.clientHeight - others;
    const width = maps.clientWidth;
    const chrome = figs[0].offsetHeight - (figs[0].querySelector('.canvas-box') || figs[0]).offsetHeight;
    let best = figs.length;
    for (let c = 1; c <= figs.length; c += 1) {
      const rows = Math.ceil(figs.length / c);
      const side = (width - (c - 1) * GAP) / c;
      if (rows * (side + chrome) + (rows - 1) * GAP <= avail) { best = c; break; }
    }
    // as many as it takes: 18 registered maps fit at 1440x900 in 5-7. Below 1100 px wide the column
    // scrolls instead of shrinking the maps past MIN_MAP px (their titles and colour bars stay legible).
    const most = innerWidth < 1100 ? Math.max(2, Math.floor((width + GAP) / (MIN_MAP + GAP))) : Infinity;
    const cols = Math.min(Math.max(2, best), most);
    maps.style.gridTemplateColumns = `repeat(${cols}, minmax(0, 1fr))`;
  }
  // Colour bars under heatmaps (Grad-CAM, Grad-CAM++): the colormap from the raw map's min to its
  // max (the renderer scales each map to its own range, engine.py). Gradient images have no colormap;
  // magnitude maps (saliency) are scaled to |gradient|'s range, which the frame header does not carry.
  const JET = 'linear-gradient(to right, #00008f, #0000ff 12.5%, #00ffff 37.5%, #ffff00 62.5%, #ff0000 87.5%, #800000)';
  const GREY = 'linear-gradient(to right, #000, #fff)';
  const num = (v) => (Math.abs(v) >= 100 || (v !== 0 && Math.abs(v) < 0.01) ? v.toExponential(2) : v.toPrecision(3));
  function colorBars(meta) {
    const grey = S.state && S.state.grayscale;
    for (const fig of document.querySelectorAll('figure.map')) {
      const name = fig.dataset.algorithm;
      const a = S.hello && S.hello.algorithms.find((x) => x.name === name);
      const info = (meta.maps || {})[name];
      let bar = fig.querySelector(':scope > .colorbar');
      const show = a && a.display === 'heatmap' && info && info.value_range;
      if (!show) { if (bar) bar.hidden = true; continue; }
      if (!bar) {
        bar = document.createElement('div');
        bar.className = 'colorbar';
        bar.dataset.testid = `colorbar-${name.replace(/_/g, '-')}`;
        bar.innerHTML = '<span class="lo"></span><span class="ramp"></span><span class="hi"></span>';
        fig.append(bar);
      }
      bar.hidden = false;
      bar.querySelector('.ramp').style.background = grey ? GREY : JET;
      const [lo, hi] = info.value_range;
      bar.querySelector('.lo').textContent = num(lo);
      bar.querySelector('.hi').textContent = num(hi);
      bar.title = `colour scale of this map: ${num(lo)} (left) to ${num(hi)} (right), the raw map's range`;
    }
  }
  S.on('drawn', colorBars);

  // FC map hover: the neuron's index and, on the output layer, its class label (like the grid's
  // tooltip) and its value (the fc_values blob, layers up to 4096 neurons; else the selected one's).
  const fcTip = document.createElement('div');
  fcTip.className = 'tooltip';
  fcTip.dataset.testid = 'fc-tooltip';
  fcTip.hidden = true;
  $('fc-box').append(fcTip);
  $('fc').addEventListener('mousemove', (ev) => {
    const f = S.meta && S.meta.fc;
    const canvas = $('fc');
    if (!f) { fcTip.hidden = true; return; }
    const r = canvas.getBoundingClientRect();
    const col = Math.floor((((ev.clientX - r.left) / r.width) * canvas.width) / f.cell);
    const row = Math.floor((((ev.clientY - r.top) / r.height) * canvas.height) / f.cell);
    const i = row * f.cols + col;
    if (col < 0 || row < 0 || col >= f.cols || i >= f.neurons) { fcTip.hidden = true; return; }
    const lin = S.hello ? S.hello.linear_layers : [];
    const output = lin.length && lin[lin.length - 1].name === f.layer && f.neurons === S.hello.num_classes;
    let text = `neuron ${i}`;
    if (output && S.hello.labels[i] !== undefined) text += ` “${S.hello.labels[i]}”`;
    const values = S.fcValues && S.fcValues.length === f.neurons ? S.fcValues : null; // every neuron's (scales.js)
    if (values) text += ` = ${(S.formatValue || num)(values[i])}`;
    else if (f.selected === i && f.selected_value !== null && f.selected_value !== undefined) text += ` = ${num(f.selected_value)}`;
    else text += ' · click to select';
    fcTip.textContent = text;
    const box = $('fc-box').getBoundingClientRect();
    fcTip.hidden = false;
    fcTip.style.left = `${Math.max(4, Math.min(ev.clientX - box.left + 12, box.width - fcTip.offsetWidth - 4))}px`;
    fcTip.style.top = `${Math.max(ev.clientY - box.top - 28, 4)}px`;
  });
  $('fc').addEventListener('mouseleave', () => { fcTip.hidden = true; });

  const later = () => requestAnimationFrame(fitMaps);
  window.addEventListener('resize', later);
  S.on('state', later);
  S.on('hello', later);
  S.fitMaps = fitMaps;
})();
