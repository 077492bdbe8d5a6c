// convscope live: snapshot (issue 14). The button (or key s) asks the server to write the current
// moment (every panel as PNG, raw maps as .npy, snapshot.json) to its --snapshots folder; the
// reply offers the folder as a zip download.
'use strict';

(() => {
  const S = window.convscope;
  const $ = (id) => document.getElementById(id);
  const button = $('snapshot');
  const token = new URLSearchParams(location.search).get('token');

  function take() {
    if (button.disabled) return;
    button.disabled = true;
    button.textContent = '… saving';
    S.send({ type: 'snapshot' });
    setTimeout(() => { button.disabled = false; button.textContent = '⬇ Snapshot'; }, 4000);
  }

  S.on('hello', (msg) => {
    button.hidden = msg.snapshots === false;
  });
  S.on('snapshot', (msg) => {
    S.lastSnapshot = msg;
    button.disabled = false;
    button.textContent = '⬇ Snapshot';
    const note = $('snapshot-note');
    const url = msg.url + (token ? `?token=${encodeURIComponent(token)}` : '');
    note.replaceChildren(`saved ${msg.files} files to ${msg.folder} · `);
    const a = document.createElement('a');
    a.href = url;
    a.download = `convscope-${msg.name}.zip`;
    a.textContent = 'download zip';
    a.dataset.testid = 'snapshot-download';
    note.append(a);
    note.hidden = false;
    clearTimeout(note.timer);
    note.timer = setTimeout(() => { note.hidden = true; }, 15000);
    a.click(); // offer the download at once
  });
  S.on('error', (msg) => {
    if (msg.about === 'snapshot') { button.disabled = false; button.textContent = '⬇ Snapshot'; }
  });

  button.addEventListener('click', take);
  document.addEventListener('keydown', (e) => {
    const t = e.target;
    if (e.ctrlKey || e.metaKey || e.altKey || e.key !== 's') return;
    if (t && (t.isContentEditable || (/^(INPUT|SELECT|TEXTAREA)$/.test(t.tagName) && t.type !== 'range' && t.type !== 'checkbox'))) return;
    e.preventDefault();
    take();
  });
})();
