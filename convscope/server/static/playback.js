// convscope live: playback of files and folders (issue 14). A timeline with the position, seek by
// click or drag, one frame back/forward (keys , and .), play/pause (space), replay at the end and
// the speed (0.25x-4x on the media clock, or "every frame"). Every viewer shares one playback
// state: the server sends it as 'playback' messages; this file only draws it and sends
// seek/step/speed/pause. Live sources (hello.playback null) hide the bar.
'use strict';

(() => {
  const S = window.convscope;
  const $ = (id) => document.getElementById(id);
  const bar = $('playback');
  const timeline = $('timeline');
  let pb = null; // the newest 'playback' message
  let shown = null; // input frame index of the frame drawn last
  let dragging = false;
  let lastSeek = 0;
  let seekTimer = null;

  const clock = (t) => {
    const m = Math.floor(t / 60);
    const s = t - 60 * m;
    return `${m}:${s < 10 ? '0' : ''}${s.toFixed(2)}`;
  };

  function render() {
    if (!pb) return;
    const pos = dragging ? Number(timeline.value) : (shown === null ? pb.position : shown);
    timeline.max = String(pb.count - 1);
    if (!dragging) timeline.value = String(pos);
    const time = pb.fps > 0 ? pos / pb.fps : 0;
    $('position').textContent = `frame ${pos + 1} / ${pb.count} · ${clock(time)} / ${clock(pb.duration)}`;
    const play = $('play');
    play.textContent = pb.ended ? '↻ Replay' : pb.playing ? '❚❚' : '▶';
    play.title = pb.ended ? 'replay from the start (space)' : pb.playing ? 'pause (space)' : 'play (space)';
    play.dataset.state = pb.ended ? 'ended' : pb.playing ? 'playing' : 'paused';
    const speed = pb.every_frame ? 'every' : String(pb.speed);
    if ([...$('speed').options].some((o) => o.value === speed)) $('speed').value = speed;
    bar.dataset.playing = String(pb.playing);
    bar.dataset.ended = String(pb.ended);
    if (pb.ended) $('pause').textContent = '↻ Replay';
  }

  S.on('hello', (msg) => {
    bar.hidden = !msg.playback;
    if (msg.playback) { pb = msg.playback; shown = null; render(); }
  });
  S.on('playback', (msg) => { pb = msg; S.playback = msg; render(); });
  S.on('state', () => render());
  S.on('frame', (meta) => {  // the first frame header this page received (the tests check it)
    if (meta.source_frame && S.firstSourceFrame === undefined) S.firstSourceFrame = meta.source_frame.index;
  });
  S.sourceFrames = []; // input frame index of each frame drawn (the newest 500), for tests and debugging
  S.on('drawn', (meta) => {
    if (!meta.source_frame) return;
    shown = meta.source_frame.index;
    S.sourceFrames.push(shown);
    if (S.sourceFrames.length > 500) S.sourceFrames.shift();
    render();
  });

  const playPause = () => S.send({ type: 'pause', paused: !(pb ? !pb.playing : S.state && S.state.paused) });
  const step = (by) => S.send({ type: 'step', by });

  // Seek while dragging (at most every 120 ms) and where the drag ends.
  function seek(final) {
    const frame = Number(timeline.value);
    clearTimeout(seekTimer);
    const now = performance.now();
    if (final || now - lastSeek > 120) {
      lastSeek = now;
      S.send({ type: 'seek', frame });
    } else {
      seekTimer = setTimeout(() => seek(true), 120);
    }
    render();
  }
  timeline.addEventListener('pointerdown', () => { dragging = true; });
  timeline.addEventListener('input', () => { dragging = true; seek(false); });
  timeline.addEventListener('change', () => { seek(true); dragging = false; });
  // A drag's 'change' comes right after pointerup: let it seek first, then follow the frames again.
  window.addEventListener('pointerup', () => {
    setTimeout(() => { if (dragging) { dragging = false; seek(true); } }, 0);
  });

  $('play').addEventListener('click', playPause);
  $('step-back').addEventListener('click', () => step(-1));
  $('step-forward').addEventListener('click', () => step(1));
  $('speed').addEventListener('change', (e) => {
    const v = e.target.value;
    S.send(v === 'every' ? { type: 'speed', every_frame: true } : { type: 'speed', speed: Number(v), every_frame: false });
  });

  // Keys: , and . step (files and folders), space plays/pauses; not while typing in a field.
  document.addEventListener('keydown', (e) => {
    const t = e.target;
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (t && (t.isContentEditable || (/^(INPUT|SELECT|TEXTAREA)$/.test(t.tagName) && t.type !== 'range' && t.type !== 'checkbox'))) return;
    if (e.key === ' ') {
      e.preventDefault();
      if (pb) playPause(); else $('pause').click();
    } else if (pb && e.key === ',') {
      e.preventDefault();
      step(-1);
    } else if (pb && e.key === '.') {
      e.preventDefault();
      step(1);
    }
  });
})();
