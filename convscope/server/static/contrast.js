// convscope live: contrast and counterfactual targets, and the algorithm options (issue 13).
// "Why class A rather than B": pin A (a click on the Top-5, or the class search), then "vs" on B.
// Every class target then explains score A minus score B; the chip's x removes the contrast.
// "counterfactual" explains what speaks against the class (the negated score). The options
// (Integrated Gradients' steps, SmoothGrad's samples, Score-CAM's channels, smoothing) come from
// hello.options and go to the server as one `options` object; the server checks their bounds.
'use strict';

(() => {
  const S = window.convscope;
  const $ = (id) => document.getElementById(id);
  const label = (i) => (S.hello && S.hello.labels[i] !== undefined ? S.hello.labels[i] : `class ${i}`);

  // A "vs" button on every Top-5 row (the rows are redrawn with each frame).
  function decorate() {
    const st = S.state;
    for (const li of $('predictions').querySelectorAll('li[data-index]')) {
      const index = Number(li.dataset.index);
      li.classList.toggle('versus', !!st && st.versus === index);
      if (li.querySelector('.vs')) continue;
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'vs';  // its "vs" is drawn by CSS, so the row's text stays "label  probability"
      b.setAttribute('aria-label', 'vs');
      b.dataset.testid = `versus-${index}`;
      b.title = `contrast: explain the class rather than “${label(index)}” (score difference)`;
      b.addEventListener('click', (e) => {
        e.stopPropagation();
        S.send({ type: 'view', versus: S.state && S.state.versus === index ? null : index });
      });
      li.append(b);
    }
  }

  function renderChip() {
    const st = S.state;
    const chip = $('versus-chip');
    const on = st && st.versus !== null && st.versus !== undefined;
    chip.hidden = !on;
    if (on) chip.querySelector('.what').textContent = `rather than ${st.versus} “${label(st.versus)}”`;
    $('counterfactual').checked = !!(st && st.counterfactual);
    for (const input of document.querySelectorAll('[data-option]')) {
      const value = st && st.options ? st.options[input.dataset.option] : undefined;
      const fallback = S.hello.options[input.dataset.option].default;
      const shown = value === undefined ? fallback : value;
      if (input.type === 'checkbox') input.checked = !!shown;
      else if (document.activeElement !== input) input.value = shown === null ? '' : shown;
    }
    decorate();
  }

  function buildOptions(hello) {
    const box = $('options');
    box.replaceChildren();
    for (const [name, o] of Object.entries(hello.options || {})) {
      if (!o.show) continue;
      const row = document.createElement('label');
      row.className = 'option';
      row.title = o.help || '';
      const input = document.createElement('input');
      input.dataset.option = name;
      input.dataset.testid = `option-${name.replace(/_/g, '-')}`;
      if (o.type === 'bool') {
        input.type = 'checkbox';
        input.addEventListener('change', () => S.send({ type: 'view', options: { [name]: input.checked } }));
        row.append(input, ` ${o.title}`);
      } else {
        input.type = 'number';
        if (o.min !== undefined) input.min = o.min;
        if (o.max !== undefined) input.max = o.max;
        input.step = o.type === 'int' ? 1 : 'any';
        input.placeholder = o.default === null ? 'all' : String(o.default);
        input.addEventListener('change', () => {
          const v = input.value.trim();
          const value = v === '' ? null : o.type === 'int' ? parseInt(v, 10) : Number(v);
          S.send({ type: 'view', options: { [name]: Number.isNaN(value) ? null : value } });
        });
        row.append(`${o.title} `, input);
      }
      box.append(row);
    }
  }

  S.on('hello', (msg) => { buildOptions(msg); renderChip(); });
  S.on('state', renderChip);
  S.on('drawn', decorate);
  $('unversus').addEventListener('click', () => S.send({ type: 'view', versus: null }));
  $('counterfactual').addEventListener('change', (e) => S.send({ type: 'view', counterfactual: e.target.checked }));
})();
