// convscope live: trust, live (issue 17). The "sanity" switch asks the server to run the selected
// maps on a copy of the model whose top layers are re-initialised (Adebayo et al. 2018) for the
// current frame; each such map is drawn next to the real one with the rank correlation (rho) of the
// two: a map that explains the model must change (low rho). "Deletion" asks once for each map's
// deletion AUC on the current frame (Petsiuk et al. 2018: lower = the map found what the class needs),
// shown as a badge over each map.
// Server side: convscope/server/trust.py.
'use strict';

(() => {
  const S = window.convscope;
  const $ = (id) => document.getElementById(id);
  const controls = document.querySelector('header .controls');

  const style = document.createElement('style');
  style.textContent = `
    .trust-controls { display: flex; align-items: center; gap: 6px; }
    figure.trust-map img { width: 100%; height: 100%; object-fit: contain; display: block; }
    .trust-badge { position: absolute; top: 4px; right: 4px; padding: 1px 6px; border-radius: 4px; font-size: 11.5px;
      background: rgba(8, 10, 14, .78); font-variant-numeric: tabular-nums; pointer-events: auto; }
    figure.trust-map .rho { color: var(--accent-2); }
    figure.trust-map .rho.passes { color: var(--good); }
    figure.map .deletion-score { color: var(--accent); }`;
  document.head.append(style);

  const box = document.createElement('span');
  box.className = 'trust-controls';
  box.innerHTML = `
    <label class="switch" title="run the selected maps on a copy with the top layers re-initialised, next to the real ones">
      <input id="sanity" data-testid="sanity" type="checkbox"> sanity</label>
    <select id="sanity-layers" data-testid="sanity-layers" title="how many conv/linear layers from the top are re-initialised"></select>
    <button id="deletion" data-testid="deletion" type="button"
      title="each map's deletion AUC on this frame: the class probability as the map's most important pixels go (lower = better)">Deletion</button>`;
  controls.append(box);
  const toggle = $('sanity');
  const layers = $('sanity-layers');
  const button = $('deletion');
  const fmt = (v) => (v === null || v === undefined ? '–' : v.toFixed(2));

  function send() {
    S.send({ type: 'sanity', on: toggle.checked, top_layers: Number(layers.value) || 1 });
  }
  toggle.addEventListener('change', send);
  layers.addEventListener('change', () => { if (toggle.checked) send(); });
  button.addEventListener('click', () => {
    button.disabled = true;
    button.textContent = '… scoring';
    S.send({ type: 'deletion' });
    clearTimeout(button.timer);
    button.timer = setTimeout(reset, 60000);
  });
  function reset() { button.disabled = false; button.textContent = 'Deletion'; }

  S.on('sanity', (msg) => {
    const n = msg.layers || 0;
    box.hidden = n < 1;
    const want = [...new Set([1, 3, 10, n].filter((k) => k >= 1 && k <= n))];
    if (layers.options.length !== want.length) {
      layers.replaceChildren(...want.map((k) => new Option(k === n ? `all ${n} layers` : `top ${k}`, k)));
    }
    layers.value = String(msg.top_layers);
    toggle.checked = msg.on;
    if (!msg.on) for (const fig of document.querySelectorAll('figure.trust-map')) fig.hidden = true;
    window.dispatchEvent(new Event('resize')); // layout.js refits the map columns
  });

  const title = (name) => {
    const a = S.hello && S.hello.algorithms.find((x) => x.name === name);
    return a ? a.title : name;
  };

  // One figure per map, right after the real map's figure.
  function figureFor(name) {
    let fig = document.querySelector(`figure.trust-map[data-trust="${CSS.escape(name)}"]`);
    if (!fig) {
      fig = document.createElement('figure');
      fig.className = 'panel trust-map';
      fig.dataset.trust = name;
      fig.dataset.testid = 'sanity-panel';
      fig.innerHTML = `<figcaption><span class="title"></span> <span class="muted what"></span></figcaption>
        <div class="canvas-box square"><img alt=""><span class="trust-badge rho" data-testid="sanity-rho"></span></div>`;
      fig.querySelector('.title').textContent = `${title(name)} · random`;
    }
    const real = document.querySelector(`figure.map[data-algorithm="${CSS.escape(name)}"]`);
    if (real && real.nextElementSibling !== fig) real.after(fig);
    else if (!real && !fig.parentElement) $('maps').append(fig);
    return fig;
  }

  S.on('trust', (msg) => {
    S.lastTrust = msg;
    if (!toggle.checked) return;
    if (msg.error) S.lastTrustError = msg.error;
    const names = Object.keys(msg.maps || {});
    for (const fig of document.querySelectorAll('figure.trust-map')) fig.hidden = !names.includes(fig.dataset.trust);
    for (const name of names) {
      const m = msg.maps[name];
      const fig = figureFor(name);
      fig.hidden = false;
      fig.querySelector('img').src = m.image;
      fig.querySelector('.what').textContent = `top ${msg.top_layers}/${msg.layers}`;
      fig.querySelector('figcaption').title = `${title(name)} on a copy with the top ${msg.top_layers} of ${msg.layers} conv/linear layers re-initialised`;
      const rho = fig.querySelector('.rho');
      rho.textContent = `ρ ${fmt(m.rho)}`;
      rho.classList.toggle('passes', m.rho !== null && m.rho < 0.5);
      rho.title = 'Spearman rank correlation with the real map: near 1 = the map ignores these weights (fails the check)';
    }
    window.dispatchEvent(new Event('resize'));
  });

  S.on('deletion', (msg) => {
    S.lastDeletion = msg;
    reset();
    for (const fig of document.querySelectorAll('figure.map')) {
      const name = fig.dataset.algorithm;
      let tag = fig.querySelector('.deletion-score');
      if (!(name in msg.scores)) { if (tag) tag.hidden = true; continue; }
      if (!tag) {
        tag = document.createElement('span');
        tag.className = 'trust-badge deletion-score';
        tag.dataset.testid = 'deletion-score';
        fig.querySelector('.canvas-box').append(tag);
      }
      tag.hidden = false;
      tag.textContent = `del ${msg.scores[name].toFixed(3)}`;
      tag.title = `deletion AUC on this frame (${msg.steps} steps, class ${msg.class}): lower = the map found what the class needs`;
    }
  });
  S.on('error', (msg) => { if (msg.about === 'deletion') reset(); });
})();
