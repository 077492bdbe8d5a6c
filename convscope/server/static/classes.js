// convscope live: class search (issue 14). A search box over the model's labels, by name or index,
// pins any class as the Grad-CAM target; the pinned class shows as a chip with an x that unpins
// it (back to following the top-1). The picker is generic (S.classPicker), so other class targets
// (a contrast class) can reuse it.
'use strict';

(() => {
  const S = window.convscope;
  const $ = (id) => document.getElementById(id);
  const MAX_RESULTS = 12;

  // Labels matching `query`: an index typed as a number first, then names that start with the
  // query (or a word in them starts with it), then names that contain it.
  function search(labels, query) {
    const q = query.trim().toLowerCase();
    if (!q) return [];
    const out = [];
    const seen = new Set();
    const add = (i) => { if (!seen.has(i) && out.length < MAX_RESULTS) { seen.add(i); out.push(i); } };
    if (/^\d+$/.test(q) && Number(q) < labels.length) add(Number(q));
    const lower = labels.map((l) => String(l).toLowerCase());
    lower.forEach((l, i) => { if (l.startsWith(q)) add(i); });
    lower.forEach((l, i) => { if (l.split(/[\s,_-]+/).some((w) => w.startsWith(q))) add(i); });
    lower.forEach((l, i) => { if (l.includes(q)) add(i); });
    return out;
  }

  function classPicker(input, list, onPick) {
    let items = [];
    let active = 0;
    const labels = () => (S.hello ? S.hello.labels : []);
    function close() { list.hidden = true; list.replaceChildren(); items = []; input.setAttribute('aria-expanded', 'false'); }
    function show() {
      items = search(labels(), input.value);
      active = 0;
      list.replaceChildren(...items.map((i, k) => {
        const li = document.createElement('li');
        li.dataset.index = i;
        li.setAttribute('role', 'option');
        li.classList.toggle('active', k === active);
        const num = document.createElement('span');
        num.className = 'num';
        num.textContent = i;
        li.append(num, ` ${labels()[i]}`);
        return li;
      }));
      if (!items.length && input.value.trim()) {
        const li = document.createElement('li');
        li.className = 'none';
        li.textContent = 'no class matches';
        list.append(li);
      }
      list.hidden = !input.value.trim();
      input.setAttribute('aria-expanded', String(!list.hidden));
    }
    function pick(i) { onPick(i); input.value = ''; close(); input.blur(); }
    function move(by) {
      if (!items.length) return;
      active = (active + by + items.length) % items.length;
      [...list.children].forEach((li, k) => li.classList.toggle('active', k === active));
      list.children[active].scrollIntoView({ block: 'nearest' });
    }
    input.addEventListener('input', show);
    input.addEventListener('focus', () => { if (input.value.trim()) show(); });
    input.addEventListener('keydown', (e) => {
      if (e.key === 'ArrowDown') { e.preventDefault(); move(1); }
      else if (e.key === 'ArrowUp') { e.preventDefault(); move(-1); }
      else if (e.key === 'Enter') { e.preventDefault(); if (items.length) pick(items[active]); }
      else if (e.key === 'Escape') { input.value = ''; close(); input.blur(); }
    });
    list.addEventListener('mousedown', (e) => {  // before the input's blur closes the list
      const li = e.target.closest('li[data-index]');
      if (li) { e.preventDefault(); pick(Number(li.dataset.index)); }
    });
    input.addEventListener('blur', () => setTimeout(close, 150));
    return { search: (q) => search(labels(), q), close };
  }
  S.classPicker = classPicker;

  classPicker($('class-search'), $('class-results'), (i) => S.send({ type: 'view', cam_class: i }));

  // The pinned class, visible wherever the Top-5 is, removable with its x.
  function renderPin() {
    const st = S.state;
    const chip = $('pinned');
    const pinned = st && st.cam_class !== null && st.cam_class !== undefined;
    chip.hidden = !pinned;
    if (!pinned) return;
    const name = S.hello && S.hello.labels[st.cam_class] !== undefined ? S.hello.labels[st.cam_class] : `class ${st.cam_class}`;
    chip.querySelector('.what').textContent = `◆ pinned ${st.cam_class} “${name}”`;
    chip.title = 'Grad-CAM (and guided backprop on the class) explain this class, not the top-1';
  }
  S.on('state', renderPin);
  S.on('hello', renderPin);
  $('unpin').addEventListener('click', () => S.send({ type: 'view', cam_class: null }));
})();
