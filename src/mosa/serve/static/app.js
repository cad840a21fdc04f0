// mosa web page: prompt -> /api/generate -> three.js skeleton player, span edit, downloads;
// a sequence of prompts -> /api/sequence -> one take whose parts' spans can be regenerated.
// No build step and no network beyond this server: three.js is vendored in ./vendor/.
import * as THREE from './vendor/three.module.min.js';
import { OrbitControls } from './vendor/OrbitControls.js';

const $ = (id) => document.getElementById(id);
const COLORS = { left: 0xff7a45, right: 0x3fb6ff, centre: 0xc8ccd6 };

// Everything the page knows; exposed as window.mosa for the console and the browser test.
const state = {
  ready: false, info: null, skeleton: null, text: '',
  samples: [], current: 0, frame: 0, playing: false, scale: null,
  span: null, busy: false, framesShown: 0, centreY: 0.9,
  seqParts: [],        // the sequence being put together: {text, seconds (null: the model's)}
  parts: null,         // the shown take's parts: {text, start, end, seed} (seconds), or null
  selectedPart: null,  // index into parts of the selected part's span
};
window.mosa = state;

// ---------------------------------------------------------------------------------- scene
const viewer = $('viewer');
let renderer;
try {
  renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
} catch (err) {
  setStatus('WebGL is not available in this browser: ' + err.message, true);
  throw err;
}
renderer.setPixelRatio(window.devicePixelRatio);
viewer.appendChild(renderer.domElement);
const scene = new THREE.Scene();
scene.background = new THREE.Color(0x15171c);
const camera = new THREE.PerspectiveCamera(45, 1, 0.05, 200);
camera.position.set(2.6, 1.8, 3.6);
const controls = new OrbitControls(camera, renderer.domElement);
controls.target.set(0, 0.9, 0);
controls.enableDamping = true;
scene.add(new THREE.HemisphereLight(0xffffff, 0x30323a, 1.6));
const sun = new THREE.DirectionalLight(0xffffff, 1.6);
sun.position.set(3, 6, 4);
scene.add(sun);
// floor: a plate plus a 6 m grid around the body (short lines: software GL drops lines that
// cross the near plane, and 1 px lines need real contrast)
const grid = new THREE.Group();
const plate = new THREE.Mesh(
  new THREE.PlaneGeometry(30, 30),
  new THREE.MeshStandardMaterial({ color: 0x262a33, roughness: 1 }),
);
plate.rotation.x = -Math.PI / 2;
plate.position.y = -0.002;
grid.add(plate, new THREE.GridHelper(6, 12, 0x9aa3b5, 0x4a5163));
scene.add(grid);

window.mosaView = { THREE, scene, camera, controls, renderer };   // for the console

const body = new THREE.Group();
scene.add(body);
let bones = [];   // {mesh, parent, child}
let balls = [];   // one sphere per joint
const UP = new THREE.Vector3(0, 1, 0);

function side(name) {
  if (name.startsWith('left')) return COLORS.left;
  if (name.startsWith('right')) return COLORS.right;
  return COLORS.centre;
}

function buildSkeleton(skeleton) {
  body.clear();
  const cyl = new THREE.CylinderGeometry(0.022, 0.022, 1, 10);
  const ball = new THREE.SphereGeometry(0.035, 14, 10);
  const mats = {};
  const mat = (c) => (mats[c] ??= new THREE.MeshStandardMaterial({ color: c, roughness: 0.55 }));
  bones = [];
  balls = skeleton.names.map((name) => {
    const m = new THREE.Mesh(ball, mat(side(name)));
    body.add(m);
    return m;
  });
  skeleton.parents.forEach((p, j) => {
    if (p < 0) return;
    const mesh = new THREE.Mesh(cyl, mat(side(skeleton.names[j])));
    body.add(mesh);
    bones.push({ mesh, parent: p, child: j });
  });
  body.visible = false;
}

const a = new THREE.Vector3(), b = new THREE.Vector3(), d = new THREE.Vector3();
function pose(joints) {   // joints: 22 x [x, y, z], metres, Y up
  joints.forEach((p, j) => balls[j].position.set(p[0], p[1], p[2]));
  for (const { mesh, parent, child } of bones) {
    a.fromArray(joints[parent]);
    b.fromArray(joints[child]);
    d.subVectors(b, a);
    const len = d.length();
    mesh.position.addVectors(a, b).multiplyScalar(0.5);
    mesh.scale.set(1, Math.max(len, 1e-4), 1);
    if (len > 1e-6) mesh.quaternion.setFromUnitVectors(UP, d.divideScalar(len));
  }
}

function resize() {
  const w = viewer.clientWidth, h = viewer.clientHeight;
  renderer.setSize(w, h, false);
  renderer.domElement.style.width = w + 'px';
  renderer.domElement.style.height = h + 'px';
  camera.aspect = w / Math.max(h, 1);
  camera.updateProjectionMatrix();
}
new ResizeObserver(resize).observe(viewer);
resize();

// ----------------------------------------------------------------------------- playback
function sample() { return state.samples[state.current] || null; }

function shownJoints() {   // frames of the current sample at the chosen scale
  const s = sample();
  if (!s) return null;
  if (s.previews && state.scale !== null && state.scale < s.previews.length - 1) {
    return s.previews[state.scale];
  }
  return s.joints;
}

const follow = new THREE.Vector3();
function showFrame(f) {
  const frames = shownJoints();
  if (!frames) return;
  state.frame = Math.max(0, Math.min(frames.length - 1, Math.floor(f)));
  const joints = frames[state.frame];
  pose(joints);
  // keep the pelvis in view: move target and camera by the pelvis' ground motion
  follow.set(joints[0][0], state.centreY, joints[0][2]).sub(controls.target);
  follow.multiplyScalar(0.15);
  controls.target.add(follow);
  camera.position.add(follow);
  // the floor moves with the body in whole cells (0.5 m) so the lines stay put under it
  grid.position.set(Math.round(joints[0][0] * 2) / 2, 0, Math.round(joints[0][2] * 2) / 2);
  $('scrub').value = state.frame;
  $('frame-out').value = `${state.frame + 1} / ${frames.length}`;
  $('cursor').style.left = `${(100 * state.frame) / Math.max(frames.length - 1, 1)}%`;
  state.framesShown += 1;
}

let last = performance.now(), clock = 0;
function loop(now) {
  const dt = Math.min((now - last) / 1000, 0.25);
  last = now;
  const s = sample();
  if (s && state.playing) {
    clock += dt * s.fps;
    const n = shownJoints().length;
    showFrame(clock % n);
  }
  controls.update();
  renderer.render(scene, camera);
  requestAnimationFrame(loop);
}
requestAnimationFrame(loop);

function setPlaying(on) {
  state.playing = on && !!sample();
  clock = state.frame;
  $('play').innerHTML = state.playing ? '&#10074;&#10074;' : '&#9654;';
}

$('play').onclick = () => setPlaying(!state.playing);
$('scrub').oninput = (e) => { setPlaying(false); showFrame(+e.target.value); };
document.addEventListener('keydown', (e) => {
  if (e.code === 'Space' && !['TEXTAREA', 'INPUT'].includes(e.target.tagName)) {
    e.preventDefault();
    setPlaying(!state.playing);
  }
});

$('scale').oninput = (e) => {
  const s = sample();
  state.scale = +e.target.value;
  const K = s && s.previews ? s.previews.length : 0;
  $('scale-out').value = state.scale >= K - 1 ? `final (${K}/${K})` : `${state.scale + 1}/${K}`;
  showFrame(state.frame);
};

function selectSample(i) {
  state.current = i;
  const s = sample();
  document.querySelectorAll('#sample-tabs .chip').forEach((c, k) => c.classList.toggle('active', k === i));
  const K = s.previews ? s.previews.length : 0;
  const scale = $('scale');
  scale.disabled = K === 0;
  scale.max = Math.max(K - 1, 0);
  scale.value = scale.max;
  state.scale = K ? K - 1 : null;
  $('scale-out').value = K ? `final (${K}/${K})` : 'final';
  $('scrub').max = s.joints.length - 1;
  // look at the mean pelvis height (about 0.9 m for a standing adult)
  state.centreY = s.joints.reduce((acc, f) => acc + f[0][1], 0) / s.joints.length;
  for (const id of ['play', 'scrub', 'download-bvh', 'download-npy']) $(id).disabled = false;
  body.visible = true;
  clearSpan();
  drawParts();
  showFrame(0);
  setPlaying(true);
}

function showSamples(samples, text, parts = null) {
  state.samples = samples;
  state.text = text;
  state.parts = parts;
  const tabs = $('sample-tabs');
  tabs.innerHTML = '';
  if (samples.length > 1) {
    samples.forEach((s, i) => {
      const c = document.createElement('button');
      c.className = 'chip';
      c.textContent = `#${i + 1} seed ${s.seed}`;
      c.onclick = () => selectSample(i);
      tabs.appendChild(c);
    });
  }
  selectSample(0);
}

// ------------------------------------------------------------------------------ timeline
const timeline = $('timeline');
let dragFrom = null;
function timelineFrame(e) {
  const r = timeline.getBoundingClientRect();
  const s = sample();
  const n = s ? s.joints.length : 1;
  return Math.round(Math.max(0, Math.min(1, (e.clientX - r.left) / r.width)) * (n - 1));
}
function clearSpan() {
  state.span = null;
  state.selectedPart = null;
  document.querySelectorAll('#parts .part').forEach((el) => el.classList.remove('active'));
  $('span').style.display = 'none';
  $('span-out').textContent = 'no span selected';
  $('edit').disabled = true;
}
function drawSpan(f0, f1) {
  const s = sample();
  const n = s.joints.length - 1;
  const [lo, hi] = f0 < f1 ? [f0, f1] : [f1, f0];
  const el = $('span');
  el.style.display = 'block';
  el.style.left = `${(100 * lo) / n}%`;
  el.style.width = `${(100 * (hi - lo)) / n}%`;
  state.span = { start: lo / s.fps, end: hi / s.fps };
  $('span-out').textContent = `span ${state.span.start.toFixed(2)}-${state.span.end.toFixed(2)} s`;
  $('edit').disabled = hi - lo < 2 || !(state.info && state.info.model.edit);
}
timeline.addEventListener('pointerdown', (e) => {
  if (!sample()) return;
  dragFrom = timelineFrame(e);
  timeline.setPointerCapture(e.pointerId);
});
timeline.addEventListener('pointermove', (e) => {
  if (dragFrom === null) return;
  const f = timelineFrame(e);
  if (Math.abs(f - dragFrom) > 1) { selectPartBox(null); drawSpan(dragFrom, f); }
});
timeline.addEventListener('pointerup', (e) => {
  if (dragFrom === null) return;
  const f = timelineFrame(e);
  if (Math.abs(f - dragFrom) <= 1) {   // a click: seek
    clearSpan();
    setPlaying(false);
    showFrame(f);
  }
  dragFrom = null;
});

// ----------------------------------------------------------------------------- requests
function setStatus(msg, error = false) {
  const el = $('status');
  el.textContent = msg;
  el.classList.toggle('error', error);
}

// the model was never trained on anything like this prompt: say so (it still generated)
function vocabularyNote(data) {
  const v = data.vocabulary;
  return v && !v.known && v.message ? `\nwarning: ${v.message}` : '';
}

async function post(url, body) {
  const res = await fetch(url, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
  });
  const data = await res.json().catch(() => ({ detail: `HTTP ${res.status}` }));
  if (!res.ok) {
    let msg = data.detail || `HTTP ${res.status}`;
    if (data.hint) msg += `\n(${data.hint})`;
    if (res.status === 503) msg += `\nretry in ${res.headers.get('Retry-After') || 'a few'} s`;
    throw new Error(msg);
  }
  return data;
}

function setBusy(on) {
  state.busy = on;
  $('generate').disabled = on;
  $('seq-generate').disabled = on || state.seqParts.length === 0;
  $('edit').disabled = on || !state.span || !(state.info && state.info.model.edit);
}

$('generate').onclick = async () => {
  const text = $('prompt').value.trim();
  if (!text) { setStatus('type a description first', true); return; }
  const seed = $('seed').value === '' ? null : +$('seed').value;
  const body = {
    text,
    seconds: $('auto-length').checked ? null : +$('seconds').value,
    seed,
    num_samples: Math.max(1, Math.min(8, +$('samples').value || 1)),
    previews: $('previews').checked,
  };
  setBusy(true);
  setStatus('generating...');
  const t0 = performance.now();
  try {
    const data = await post('/api/generate', body);
    showSamples(data.samples, data.text);
    const s = data.samples[0];
    setStatus(`${data.samples.length} motion(s), ${s.seconds.toFixed(1)} s, seed ${s.seed} ` +
      `in ${((performance.now() - t0) / 1000).toFixed(2)} s` + vocabularyNote(data));
  } catch (err) {
    setStatus(err.message, true);
  } finally {
    setBusy(false);
  }
};

$('edit').onclick = async () => {
  const s = sample();
  if (!s || !state.span) return;
  const text = $('prompt').value.trim() || state.text;
  const seed = $('seed').value === '' ? null : +$('seed').value;
  const part = state.selectedPart;
  setBusy(true);
  setStatus('regenerating span...');
  try {
    const edited = await editSpan(s, state.span, text, seed);
    state.samples[state.current] = edited;
    if (state.parts && part !== null) state.parts[part].text = text;
    selectSample(state.current);
    setStatus(`span regenerated (seed ${edited.seed})` + vocabularyNote(edited.reply));
  } catch (err) {
    setStatus(err.message, true);
  } finally {
    setBusy(false);
  }
};

// The server edits motions up to the generator's length (plus one frame). A longer take (a
// sequence) sends a window of it around the span; the edited window comes back in its own
// frame (the first root over the origin, facing +Z), so it is put back where the window was,
// and the frames after the window follow wherever the edit leaves the body.
async function editSpan(s, span, text, seed) {
  const fps = s.fps, T = s.joints.length;
  const most = Math.floor(state.info.model.max_seconds * fps) + 1;
  if (T <= most) {
    const data = await post('/api/edit', { joints: s.joints, text, start: span.start, end: span.end, seed });
    return { ...data.samples[0], reply: data };
  }
  const a = Math.round(span.start * fps), b = Math.min(Math.round(span.end * fps), T);
  let w0 = Math.max(0, a - Math.floor((most - (b - a)) / 2));
  const w1 = Math.min(T, w0 + most);
  w0 = Math.max(0, w1 - most);
  const data = await post('/api/edit', {
    joints: s.joints.slice(w0, w1), text, start: (a - w0) / fps, end: (b - w0) / fps, seed,
  });
  const e = data.samples[0].joints;
  // a kept frame pins the window: the first one before the span, else the first after it
  const place = a > w0 ? rigid(e[0], s.joints[w0]) : rigid(e[b - w0], s.joints[b]);
  const placed = e.map((f) => f.map(place));
  let after = s.joints.slice(w1);
  if (a > w0 && after.length) {
    const follow = rigid(s.joints[w1 - 1], placed[w1 - 1 - w0]);
    after = after.map((f) => f.map(follow));
  }
  const joints = [...s.joints.slice(0, w0), ...placed, ...after];
  const bvh = (await post('/api/bvh', { joints })).bvh;
  return { fps, frames: joints.length, seconds: joints.length / fps, seed: data.samples[0].seed,
    joints, bvh, reply: data };
}

// The facing angle of a pose on the floor: the hips' and shoulders' left-to-right axis.
function yaw(f) {
  const [lh, rh, ls, rs] = state.faceJoints;
  const x = f[rh][0] - f[lh][0] + f[rs][0] - f[ls][0];
  const z = f[rh][2] - f[lh][2] + f[rs][2] - f[ls][2];
  return Math.atan2(z, x);
}

// The rigid motion (a turn about the vertical, then a shift) that takes pose `from` onto
// pose `to`, as a function of one joint position.
function rigid(from, to) {
  const t = yaw(to) - yaw(from), c = Math.cos(t), sn = Math.sin(t);
  const turn = (p) => [p[0] * c - p[2] * sn, p[1], p[0] * sn + p[2] * c];
  const r = turn(from[0]);
  const d = [to[0][0] - r[0], to[0][1] - r[1], to[0][2] - r[2]];
  return (p) => { const q = turn(p); return [q[0] + d[0], q[1] + d[1], q[2] + d[2]]; };
}

// ----------------------------------------------------------------------------- sequence
function drawSeqParts() {
  const box = $('seq-parts');
  box.innerHTML = '';
  state.seqParts.forEach((p, i) => {
    const row = document.createElement('div');
    row.className = 'seq-row';
    const n = document.createElement('span');
    n.className = 'seq-n';
    n.textContent = `${i + 1}.`;
    const text = document.createElement('input');
    text.className = 'seq-text';
    text.value = p.text;
    text.maxLength = 300;
    text.oninput = () => { p.text = text.value; };
    const secs = document.createElement('input');
    secs.className = 'seq-seconds';
    secs.type = 'number';
    secs.step = '0.1';
    secs.placeholder = 'auto';
    secs.title = 'seconds (empty: the model picks)';
    secs.value = p.seconds === null ? '' : p.seconds;
    secs.oninput = () => { p.seconds = secs.value === '' ? null : +secs.value; };
    const rm = document.createElement('button');
    rm.className = 'seq-remove';
    rm.textContent = '\u00d7';
    rm.title = 'remove this part';
    rm.onclick = () => { state.seqParts.splice(i, 1); drawSeqParts(); setBusy(state.busy); };
    row.append(n, text, secs, rm);
    box.appendChild(row);
  });
}

$('seq-add').onclick = () => {
  const text = $('prompt').value.trim();
  if (!text) { setStatus('type a description first', true); return; }
  const seconds = $('auto-length').checked ? null : +$('seconds').value;
  state.seqParts.push({ text, seconds });
  drawSeqParts();
  setBusy(state.busy);
};

$('seq-generate').onclick = async () => {
  const parts = state.seqParts.map((p) => ({ text: p.text.trim(), seconds: p.seconds }));
  const timed = parts.filter((p) => p.seconds !== null).length;
  if (timed !== 0 && timed !== parts.length) {
    setStatus('give every part a length, or none (the model picks them all)', true);
    return;
  }
  const body = {
    texts: parts.map((p) => p.text),
    seconds: timed ? parts.map((p) => p.seconds) : null,
    seed: $('seed').value === '' ? null : +$('seed').value,
  };
  setBusy(true);
  setStatus(`generating a take of ${parts.length} part(s)...`);
  const t0 = performance.now();
  try {
    const data = await post('/api/sequence', body);
    showSamples(data.samples, data.text, data.parts);
    const s = data.samples[0];
    setStatus(`${data.parts.length} parts, ${s.seconds.toFixed(1)} s, seed ${s.seed} ` +
      `in ${((performance.now() - t0) / 1000).toFixed(2)} s` + vocabularyNote(data));
  } catch (err) {
    setStatus(err.message, true);
  } finally {
    setBusy(false);
  }
};

// The parts of the shown take, over the timeline; a click selects the part's span.
function drawParts() {
  const bar = $('parts');
  bar.innerHTML = '';
  const s = sample();
  if (!state.parts || !s) { bar.style.display = 'none'; return; }
  bar.style.display = 'block';
  const n = Math.max(s.joints.length - 1, 1);
  state.parts.forEach((p, i) => {
    const el = document.createElement('button');
    el.className = 'part';
    const f0 = Math.round(p.start * s.fps), f1 = Math.min(Math.round(p.end * s.fps), n);
    el.style.left = `${(100 * f0) / n}%`;
    el.style.width = `${(100 * (f1 - f0)) / n}%`;
    el.textContent = `${i + 1}. ${p.text}`;
    el.title = `${p.text} (${p.start.toFixed(2)}-${p.end.toFixed(2)} s, seed ${p.seed})`;
    el.onclick = () => selectPart(i);
    bar.appendChild(el);
  });
}

function selectPartBox(i) {
  document.querySelectorAll('#parts .part').forEach((el, k) => el.classList.toggle('active', k === i));
}

function selectPart(i) {
  const s = sample();
  const p = state.parts[i];
  const n = s.joints.length - 1;
  drawSpan(Math.round(p.start * s.fps), Math.min(Math.round(p.end * s.fps), n));
  state.span = { start: p.start, end: p.end };   // exactly the part's span
  state.selectedPart = i;
  selectPartBox(i);
  $('prompt').value = p.text;
  $('span-out').textContent = `part ${i + 1}: ${p.start.toFixed(2)}-${p.end.toFixed(2)} s`;
  setPlaying(false);
  showFrame(Math.round(p.start * s.fps));
}

// ---------------------------------------------------------------------------- downloads
function slug() {
  const s = sample();
  const words = (state.text || 'motion').toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_|_$/g, '');
  return `${words.slice(0, 40) || 'motion'}_seed${s.seed}`;
}

function download(data, name, type) {
  const url = URL.createObjectURL(new Blob([data], { type }));
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// A .npy file (format 1.0) of float32 joints (T, J, 3), little endian, C order.
function npyBytes(joints) {
  const T = joints.length, J = joints[0].length;
  const dict = `{'descr': '<f4', 'fortran_order': False, 'shape': (${T}, ${J}, 3), }`;
  const pad = 64 - ((10 + dict.length + 1) % 64);   // header block is a multiple of 64 bytes
  const header = dict + ' '.repeat(pad % 64) + '\n';
  const offset = 10 + header.length;
  const buf = new ArrayBuffer(offset + T * J * 3 * 4);
  const bytes = new Uint8Array(buf);
  bytes.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);   // \x93NUMPY, version 1.0
  const view = new DataView(buf);
  view.setUint16(8, header.length, true);
  for (let i = 0; i < header.length; i++) bytes[10 + i] = header.charCodeAt(i);
  let o = offset;
  for (const frame of joints) {
    for (const p of frame) {
      for (const v of p) { view.setFloat32(o, v, true); o += 4; }
    }
  }
  return buf;
}

$('download-bvh').onclick = () => download(sample().bvh, slug() + '.bvh', 'text/plain');
$('download-npy').onclick = () =>
  download(npyBytes(sample().joints), slug() + '.npy', 'application/octet-stream');

// ------------------------------------------------------------------------------- set-up
$('seconds').oninput = (e) => { $('seconds-out').value = `${(+e.target.value).toFixed(1)} s`; };
$('auto-length').onchange = (e) => { $('seconds').disabled = e.target.checked; };

async function init() {
  try {
    const [health, ex] = await Promise.all([
      fetch('/api/health').then((r) => r.json()),
      fetch('/api/examples').then((r) => r.json()),
    ]);
    state.info = health;
    state.skeleton = health.skeleton;
    state.faceJoints = ['left_hip', 'right_hip', 'left_shoulder', 'right_shoulder']
      .map((name) => health.skeleton.names.indexOf(name));
    buildSkeleton(health.skeleton);
    const m = health.model;
    const slider = $('seconds');
    slider.min = m.min_seconds;
    slider.max = m.max_seconds;
    slider.value = Math.min(Math.max(4, m.min_seconds), m.max_seconds);
    slider.oninput({ target: slider });
    $('auto-length').disabled = !m.length_estimator;
    $('seq-add').disabled = !m.sequence;
    $('model-info').textContent = `${m.device} | ${m.num_scales} scales | ` +
      `${m.min_seconds}-${m.max_seconds} s${m.edit ? '' : ' | editing unavailable'}`;
    const box = $('examples');
    for (const text of ex.examples) {
      const c = document.createElement('button');
      c.className = 'chip';
      c.textContent = text;
      c.onclick = () => { $('prompt').value = text; };
      box.appendChild(c);
    }
    if (!$('prompt').value) $('prompt').value = ex.examples[0] || '';
    state.ready = true;
  } catch (err) {
    setStatus('cannot reach the server: ' + err.message, true);
  }
}
init();
