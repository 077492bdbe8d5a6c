// convscope live: record the dashboard (issue 14). The ● Rec button starts and stops a recording
// that the server writes as MP4 (H.264) and GIF into its --recordings folder (the snapshots folder
// by default): the full composite (every panel tiled) or the panels ticked in the ▾ menu, on the
// dashboard's clock, or for files "every frame" (one output frame per input frame). When it stops,
// the files are offered for download like snapshots. Every viewer sees that a recording runs.
'use strict';

(() => {
  const S = window.convscope;
  const token = new URLSearchParams(location.search).get('token');
  const el = (tag, props = {}, ...kids) => {
    const e = Object.assign(document.createElement(tag), props);
    e.append(...kids);
    return e;
  };

  const style = el('style', {
    textContent: `
.rec-wrap { position: relative; display: flex; gap: 2px; }
.rec-wrap > button { padding: 4px 9px; }
#record[data-active="true"] { background: #4a1518; border-color: var(--bad); color: #ffd6d6; }
#record .dot { color: var(--bad); }
.record-panel { position: fixed; z-index: 30; background: #11151d; border: 1px solid var(--line); border-radius: 8px;
  padding: 10px 12px; min-width: 230px; max-height: 80vh; overflow: auto; box-shadow: 0 8px 28px #0009; white-space: normal; }
.record-panel h3 { margin: 8px 0 4px; font-size: 11px; text-transform: uppercase; letter-spacing: .06em; color: #aab4c3; }
.record-panel label { display: block; margin: 2px 0; }
.record-panel .row { display: flex; gap: 10px; align-items: center; }
.record-note { position: fixed; right: 14px; bottom: 14px; max-width: 60vw; background: #14261c; border: 1px solid var(--good);
  border-radius: 8px; padding: 8px 12px; z-index: 20; }
.record-note.bad { background: #2a1416; border-color: var(--bad); }
.record-note a { color: var(--accent); margin-left: 8px; }`,
  });
  document.head.append(style);

  const button = el('button', { id: 'record', type: 'button', title: 'record the dashboard to MP4 and GIF (on the server); the ▾ menu chooses panels' });
  button.dataset.testid = 'record';
  const more = el('button', { id: 'record-options', type: 'button', title: 'recording options', textContent: '▾' });
  more.dataset.testid = 'record-options';
  more.setAttribute('aria-expanded', 'false');
  const wrap = el('span', { className: 'rec-wrap' }, button, more);
  const snap = document.getElementById('snapshot');
  (snap ? snap.parentNode : document.querySelector('header .controls')).insertBefore(wrap, snap ? snap.nextSibling : null);

  const menu = el('div', { id: 'record-panel', className: 'record-panel', hidden: true });
  menu.dataset.testid = 'record-panel';
  document.body.append(menu);
  const note = el('div', { className: 'record-note', hidden: true, role: 'status' });
  note.dataset.testid = 'record-note';
  document.body.append(note);

  let rec = { active: false }; // the newest 'recording' message
  let asked = false; // this tab pressed stop: it offers the download
  let pending = false;

  const opt = (value, text, selected) => el('option', { value, textContent: text, selected });
  const all = el('input', { type: 'checkbox', checked: true });
  all.dataset.testid = 'record-all';
  const panelBox = el('div');
  const every = el('input', { type: 'checkbox' });
  every.dataset.testid = 'record-every-frame';
  const fps = el('select', {}, ...[5, 10, 15, 25, 30].map((f) => opt(String(f), `${f} fps`, f === 10)));
  fps.dataset.testid = 'record-fps';
  const size = el('select', {}, ...[96, 160, 224, 320, 480].map((s) => opt(String(s), `${s} px`, s === 224)));
  size.dataset.testid = 'record-size';
  const mp4 = el('input', { type: 'checkbox', checked: true });
  const gif = el('input', { type: 'checkbox', checked: true });

  function buildMenu(hello) {
    const titles = Object.fromEntries((hello.algorithms || []).map((a) => [`map:${a.name}`, a.title]));
    const names = { input: 'Input', activations: 'Activations', channel: 'Channel', fc: 'FC' };
    panelBox.replaceChildren(...hello.recordings.panels.map((p) => {
      const box = el('input', { type: 'checkbox', value: p, checked: p === 'input' || p === 'map:gradcam' });
      box.dataset.testid = `record-panel-${p.replace(':', '-')}`;
      box.addEventListener('change', () => { all.checked = false; sync(); });
      return el('label', {}, box, ` ${titles[p] || names[p] || p}`);
    }));
    every.disabled = !hello.recordings.every_frame;
    const everyLabel = el('label', { title: 'files and folders: one output frame per input frame, at the input\'s frame rate; the dashboard computes every frame (offline speed)' },
      every, ' every frame (one per input frame)');
    if (every.disabled) everyLabel.title = 'only for files and folders';
    menu.replaceChildren(
      el('h3', { textContent: 'Record' }),
      el('label', {}, all, ' whole dashboard (every panel, tiled)'),
      el('h3', { textContent: 'or these panels, left to right' }),
      panelBox,
      el('h3', { textContent: 'Clock and size' }),
      everyLabel,
      el('div', { className: 'row' }, fps, size),
      el('h3', { textContent: 'Files' }),
      el('div', { className: 'row' }, el('label', {}, mp4, ' MP4 (H.264)'), el('label', {}, gif, ' GIF')),
    );
    sync();
  }

  function sync() {
    fps.disabled = every.checked;
    for (const box of panelBox.querySelectorAll('input')) box.closest('label').style.opacity = all.checked ? '0.5' : '1';
  }
  every.addEventListener('change', sync);
  all.addEventListener('change', sync);

  function settings() {
    const msg = { type: 'record', action: 'start', size: Number(size.value), every_frame: every.checked };
    if (!every.checked) msg.fps = Number(fps.value);
    const panels = [...panelBox.querySelectorAll('input:checked')].map((b) => b.value);
    msg.panels = all.checked || !panels.length ? 'all' : panels;
    msg.formats = [mp4.checked && 'mp4', gif.checked && 'gif'].filter(Boolean);
    if (!msg.formats.length) msg.formats = ['mp4', 'gif'];
    return msg;
  }
  S.recordSettings = settings;

  function render() {
    button.dataset.active = String(!!rec.active);
    button.disabled = pending;
    if (rec.active) {
      const what = rec.every_frame ? 'frames' : `frames · ${Number(rec.seconds || 0).toFixed(0)} s`;
      button.replaceChildren(rec.stopping ? '… saving' : `■ Stop · ${rec.frames || 0} ${what}`);
      button.title = `recording ${rec.name}: click to stop and download`;
    } else {
      button.replaceChildren(el('span', { className: 'dot', textContent: '●' }), ' Rec');
      button.title = 'record the dashboard to MP4 and GIF (on the server); the ▾ menu chooses panels';
    }
  }

  function place() {
    const r = wrap.getBoundingClientRect();
    menu.style.top = `${Math.round(r.bottom + 6)}px`;
    menu.style.left = `${Math.round(Math.max(8, Math.min(r.left, innerWidth - 260)))}px`;
  }

  function showNote(children, bad) {
    note.replaceChildren(...children);
    note.classList.toggle('bad', !!bad);
    note.hidden = false;
    clearTimeout(note.timer);
    note.timer = setTimeout(() => { note.hidden = true; }, 20000);
  }

  button.addEventListener('click', () => {
    if (pending) return;
    pending = true;
    setTimeout(() => { pending = false; render(); }, 3000);
    if (rec.active) {
      asked = true;
      S.send({ type: 'record', action: 'stop' });
    } else {
      menu.hidden = true;
      S.send(settings());
    }
    render();
  });
  more.addEventListener('click', () => {
    menu.hidden = !menu.hidden;
    more.setAttribute('aria-expanded', String(!menu.hidden));
    if (!menu.hidden) place();
  });
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && !menu.hidden) { menu.hidden = true; more.setAttribute('aria-expanded', 'false'); }
  });

  S.on('hello', (msg) => {
    wrap.hidden = !msg.recordings;
    if (msg.recordings) buildMenu(msg);
  });
  S.on('recording', (msg) => {
    const was = rec.active;
    rec = msg;
    S.recording = msg;
    if (msg.active !== was) pending = false;
    if (msg.error) showNote([`⚠ ${msg.error}`], true);
    render();
  });
  S.on('recorded', (msg) => {
    S.lastRecording = msg;
    pending = false;
    const links = msg.files.map((f) => {
      const a = el('a', { href: f.url + (token ? `?token=${encodeURIComponent(token)}` : ''), download: `convscope-${f.name}`,
        textContent: `${f.format} (${(f.bytes / 1e6).toFixed(1)} MB)` });
      a.dataset.testid = `record-download-${f.format}`;
      return a;
    });
    showNote([`recorded ${msg.frames} frames (${msg.width}×${msg.height}, ${msg.fps} fps) to ${msg.folder} ·`, ...links], !!msg.error);
    if (asked) links.forEach((a) => a.click()); // offer the downloads in the tab that pressed stop
    asked = false;
    render();
  });
  S.on('error', (msg) => {
    if (msg.about === 'record') { pending = false; asked = false; render(); }
  });
  render();
})();
