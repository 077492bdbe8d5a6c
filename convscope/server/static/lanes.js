// convscope live: what each panel costs, and how old a background map is (issue 13).
// The frame header carries `costs` (milliseconds each view cost on its own this frame) and
// `background` (maps computed off the frame loop on the newest frame they could take: pending,
// frames_old, ms, stale). Each panel's caption gets a small badge with them
// (data-testid "cost-<panel>"; a background map's badge is also "age-<map>").
'use strict';

(() => {
  const S = window.convscope;
  const $ = (id) => document.getElementById(id);
  const dash = (name) => name.replace(/_/g, '-');

  // Where a panel's caption is: the fixed panels by id, every map and plugin view by its figure.
  function captionOf(view) {
    const fixed = { input: 'input', activations: 'activations', channel: 'channel', fc: 'fc' }[view];
    if (fixed) {
      const panel = $(fixed).closest('.panel');
      return panel && panel.querySelector('figcaption, .panel-head > h2, h2');
    }
    if (view.startsWith('map:')) {
      const fig = document.querySelector(`figure.map[data-algorithm="${CSS.escape(view.slice(4))}"]`);
      return fig && fig.querySelector('figcaption');
    }
    const fig = document.querySelector(`figure.view[data-view="${CSS.escape(view)}"]`);
    return fig && fig.querySelector('figcaption');
  }

  function badge(view) {
    const caption = captionOf(view);
    if (!caption) return null;
    let b = caption.querySelector(':scope > .cost');
    if (!b) {
      b = document.createElement('span');
      b.className = 'cost';
      b.dataset.testid = `cost-${dash(view.replace(/^map:/, ''))}`;
      caption.append(b);
    }
    return b;
  }

  const ms = (v) => (v >= 100 ? `${Math.round(v)} ms` : `${v.toPrecision(2)} ms`);

  S.on('drawn', (meta) => {
    const costs = meta.costs || {};
    for (const [view, cost] of Object.entries(costs)) {
      const b = badge(view);
      if (!b) continue;
      b.textContent = ms(cost);
      b.title = 'what this panel cost on its own this frame (its map, extra rows and drawing; the shared forward and backward passes are in the status line)';
      b.classList.remove('background', 'pending', 'stale');
      delete b.dataset.age;
    }
    for (const [name, info] of Object.entries(meta.background || {})) {
      const b = badge(`map:${name}`);
      if (!b) continue;
      b.dataset.testid = `age-${dash(name)}`;
      b.classList.add('background');
      b.classList.toggle('pending', !!info.pending);
      b.classList.toggle('stale', !!info.stale);
      if (info.pending) {
        b.textContent = 'computing in the background…';
        b.dataset.age = '';
      } else {
        const old = info.frames_old === 1 ? '1 frame old' : `${info.frames_old} frames old`;
        b.textContent = `${info.stale ? 'previous selection, recomputing' : old} · ${ms(info.ms)}`;  // the age first: it matters most
        b.dataset.age = String(info.frames_old);
      }
      b.title = 'too slow for every frame: computed in the background on the newest frame whenever its previous result is done';
    }
  });
})();

// The extra input rows a map took (`maps.<name>.rows`: "32 masked channels", "16 steps"), under its title.
(() => {
  const S = window.convscope;
  S.on('drawn', (meta) => {
    for (const [name, info] of Object.entries(meta.maps || {})) {
      const fig = document.querySelector(`figure.map[data-algorithm="${CSS.escape(name)}"]`);
      if (!fig) continue;
      const caption = fig.querySelector('figcaption');
      let span = caption.querySelector(':scope > .rows');
      if (!info.rows) { if (span) span.remove(); continue; }
      if (!span) {
        span = document.createElement('span');
        span.className = 'muted rows';
        span.dataset.testid = `rows-${name.replace(/_/g, '-')}`;
        caption.insertBefore(span, caption.querySelector(':scope > .cost'));
      }
      span.textContent = ` · ${info.rows}`;
    }
  });
})();
