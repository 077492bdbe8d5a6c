// convscope live: layout helpers (issue 14, item 5). Click a panel's title to enlarge it to the
// whole window (click again or Escape to restore); the map panels take as many columns as they need
// to fit the column's height, so every map stays in view with all of them on.
'use strict';

(() => {
  const S = window.convscope;
  const $ = (id) => document.getElementById(id);
  const GAP = 10;

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
    const cols = Math.max(2, Math.min(best, 4));
    maps.style.gridTemplateColumns = `repeat(${cols}, minmax(0, 1fr))`;
  }
  const later = () => requestAnimationFrame(fitMaps);
  window.addEventListener('resize', later);
  S.on('state', later);
  S.on('hello', later);
  S.fitMaps = fitMaps;
})();
