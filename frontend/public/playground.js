// The 2-D playground (after tensorflow/playground): a paused run is made on the server for the current setup
// (POST /api/runs with start_paused); play / pause / step / set go over its WebSocket; `frame` messages
// (server/frames.py) draw every neuron's picture, the links by weight, the output with the data points and the
// loss curves. Any change to data or network makes a new run (the old one is deleted); learning rate and
// regularisation change live and are marked on the loss curve.

import { api } from './api.js';
import { FEATURE_LABELS, LEARNING_RATES, LIVE_KEYS, MAX_LAYERS, MAX_NEURONS, PLAY_PROPS, PlayState, REG_RATES } from './playground-state.js';
import { $, el } from './util.js';

const SVG = 'http://www.w3.org/2000/svg';
const ORANGE = [245, 147, 34];
const WHITE = [232, 234, 235];
const BLUE = [8, 119, 189];
const EXTENT = 6;

/** 0..255 -> orange .. white .. blue, as the playground colours -1 .. 0 .. +1. */
const RAMP = (() => {
  const table = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) {
    const t = i / 255;
    const [a, b, u] = t < 0.5 ? [ORANGE, WHITE, t * 2] : [WHITE, BLUE, (t - 0.5) * 2];
    for (let c = 0; c < 3; c++) table[i * 3 + c] = Math.round(a[c] + (b[c] - a[c]) * u);
  }
  return table;
})();

const colourOf = (v01) => {
  const i = Math.max(0, Math.min(255, Math.round(v01 * 255))) * 3;
  return `rgb(${RAMP[i]},${RAMP[i + 1]},${RAMP[i + 2]})`;
};

function decode(b64) {
  const text = atob(b64);
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}

/** A grid x grid byte image into an ImageData through the colour ramp (optionally thresholded). */
function toImage(bytes, grid, discretize = false) {
  const img = new ImageData(grid, grid);
  for (let i = 0; i < bytes.length; i++) {
    const v = discretize ? (bytes[i] >= 128 ? 255 : 0) : bytes[i];
    img.data[i * 4] = RAMP[v * 3];
    img.data[i * 4 + 1] = RAMP[v * 3 + 1];
    img.data[i * 4 + 2] = RAMP[v * 3 + 2];
    img.data[i * 4 + 3] = 255;
  }
  return img;
}

/** An input feature's picture, computed here: its value over the square, scaled to its own range. */
function featureImage(name, grid = 32) {
  const f = {
    x1: (a) => a,
    x2: (a, b) => b,
    x1_sq: (a) => a * a,
    x2_sq: (a, b) => b * b,
    x1x2: (a, b) => a * b,
    sin_x1: (a) => Math.sin(a),
    sin_x2: (a, b) => Math.sin(b),
  }[name];
  const values = new Float32Array(grid * grid);
  let top = 1e-9;
  for (let r = 0; r < grid; r++) {
    for (let c = 0; c < grid; c++) {
      const x1 = -EXTENT + ((c + 0.5) * 2 * EXTENT) / grid;
      const x2 = EXTENT - ((r + 0.5) * 2 * EXTENT) / grid;
      const v = f(x1, x2);
      values[r * grid + c] = v;
      top = Math.max(top, Math.abs(v));
    }
  }
  const bytes = new Uint8Array(grid * grid);
  for (let i = 0; i < values.length; i++) bytes[i] = Math.round((values[i] / top + 1) * 127.5);
  return toImage(bytes, grid);
}

function fillSelect(select, values, label = (v) => String(v)) {
  select.replaceChildren(...values.map((v) => el('option', { value: String(v), text: label(v) })));
}

export class Playground {
  constructor({ datasets, limits, onHash }) {
    this.datasets = datasets.filter((d) => d.options?.length); // the generated 2-D sets
    this.epochs = limits.max_toy_epochs || limits.max_epochs || 200;
    this.onHash = onHash;
    this.state = new PlayState();
    this.runId = null;
    this.ws = null;
    this.frame = null;
    this.points = null;
    this.history = []; // [step, train, test]
    this.marks = []; // [step, text]
    this.playing = false;
    this.generation = 0; // bumped by every reset: stale answers are ignored
    this.links = []; // {path, layer, i, j}
    this.neuronCanvases = []; // per hidden layer, per neuron
    this.hovered = null;
    this.buildControls();
  }

  // ---------------------------------------------------------------------------------------- controls

  buildControls() {
    const s = this.state;
    fillSelect($('p-learning_rate'), LEARNING_RATES);
    fillSelect($('p-reg_rate'), REG_RATES);
    fillSelect($('p-regularization'), ['none', 'l1', 'l2'], (v) => ({ none: 'None', l1: 'L1', l2: 'L2' })[v]);
    fillSelect($('p-activation'), PLAY_PROPS.find((p) => p.key === 'activation').options);
    fillSelect($('p-problem'), ['classification', 'regression'], (v) => v[0].toUpperCase() + v.slice(1));
    fillSelect($('p-optimizer'), ['sgd', 'momentum', 'adam'], (v) => ({ sgd: 'SGD', momentum: 'Momentum', adam: 'Adam' })[v]);
    fillSelect($('p-output'), ['softmax', 'sigmoid'], (v) => `${v} (2 units)`);
    PLAY_PROPS.find((p) => p.key === 'dataset').options = this.datasets.map((d) => d.name);
    const onChange = (key, read) => (event) => this.change(key, read(event.target));
    for (const key of ['learning_rate', 'reg_rate']) $(`p-${key}`).addEventListener('change', onChange(key, (t) => Number(t.value)));
    for (const key of ['regularization', 'activation', 'optimizer', 'output', 'dataset']) {
      $(`p-${key}`).addEventListener('change', onChange(key, (t) => t.value));
    }
    $('p-problem').addEventListener('change', (e) => {
      s.set('problem', e.target.value);
      const first = this.datasetsFor(e.target.value)[0];
      this.change('dataset', first.name);
    });
    for (const key of ['noise', 'test_fraction', 'batch_size']) {
      $(`p-${key}`).addEventListener('input', (e) => ($(`p-${key}-v`).textContent = e.target.value));
      $(`p-${key}`).addEventListener('change', onChange(key, (t) => Number(t.value)));
    }
    $('p-points').addEventListener('change', (e) => {
      const n = Math.round(Number(e.target.value));
      this.change('points', Number.isFinite(n) ? Math.min(5000, Math.max(50, n)) : 500);
    });
    for (const key of ['show_test', 'discretize']) $(`p-${key}`).addEventListener('change', onChange(key, (t) => t.checked));
    $('p-regen').addEventListener('click', () => this.change('data_seed', (s.get('data_seed') + 1) % 2 ** 32));
    $('p-reset').addEventListener('click', () => this.reset());
    $('p-play').addEventListener('click', () => this.togglePlay());
    $('p-step').addEventListener('click', () => this.step());
    $('p-add-layer').addEventListener('click', () => {
      const layers = s.get('layers');
      if (layers.length < MAX_LAYERS) this.change('layers', [...layers, layers[layers.length - 1] || 2]);
    });
    $('p-remove-layer').addEventListener('click', () => {
      const layers = s.get('layers');
      if (layers.length) this.change('layers', layers.slice(0, -1));
    });
    window.addEventListener('resize', () => this.layoutLinks());
    // a paused run holds one of the server's training slots: leaving the page gives it back
    window.addEventListener('pagehide', () => {
      if (this.runId) fetch(`/api/runs/${encodeURIComponent(this.runId)}`, { method: 'DELETE', keepalive: true });
    });
  }

  datasetsFor(problem) {
    return this.datasets.filter((d) => d.task === problem);
  }

  /** The controls show the state. */
  render() {
    const s = this.state;
    const problem = s.get('problem');
    fillSelect($('p-dataset'), this.datasetsFor(problem).map((d) => d.name));
    for (const key of ['dataset', 'learning_rate', 'reg_rate', 'regularization', 'activation', 'optimizer', 'output', 'problem']) {
      $(`p-${key}`).value = String(s.get(key));
    }
    $('p-output').disabled = problem === 'regression';
    for (const key of ['noise', 'test_fraction', 'batch_size']) {
      $(`p-${key}`).value = String(s.get(key));
      $(`p-${key}-v`).textContent = String(s.get(key));
    }
    $('p-points').value = String(s.get('points'));
    $('p-show_test').checked = s.get('show_test');
    $('p-discretize').checked = s.get('discretize');
    $('p-add-layer').disabled = s.get('layers').length >= MAX_LAYERS;
    $('p-remove-layer').disabled = !s.get('layers').length;
    this.buildDiagram();
  }

  change(key, value) {
    this.state.set(key, value);
    this.onHash();
    if (key === 'learning_rate' || key === 'regularization' || key === 'reg_rate') {
      const v = this.state.values;
      const l1 = v.regularization === 'l1' ? v.reg_rate : 0;
      const l2 = v.regularization === 'l2' ? v.reg_rate : 0;
      this.send({ action: 'set', learning_rate: v.learning_rate, l1, l2 });
      const what = key === 'learning_rate' ? `lr ${v.learning_rate}` : `${v.regularization} ${v.reg_rate}`;
      this.marks.push([this.frame?.step ?? 0, what]);
      this.drawCurve();
      return;
    }
    if (LIVE_KEYS.includes(key)) {
      this.drawPlot();
      return;
    }
    this.render();
    this.reset();
  }

  // ---------------------------------------------------------------------------------------- the run

  /** A fresh paused run for the current setup: same seed, same initial weights and points. */
  async reset() {
    const generation = ++this.generation;
    const wasPlaying = false;
    this.setPlaying(wasPlaying);
    this.closeRun();
    this.frame = null;
    this.history = [];
    this.marks = [];
    $('p-error').textContent = '';
    const config = this.state.toConfig(this.epochs);
    try {
      const [points, created] = await Promise.all([
        api.playgroundPoints({ dataset: config.dataset, data: config.data }),
        api.createRun(config),
      ]);
      if (generation !== this.generation) {
        api.deleteRun(created.id).catch(() => {});
        return;
      }
      this.points = points;
      this.runId = created.id;
      this.connect(created.id, generation);
    } catch (error) {
      if (generation === this.generation) $('p-error').textContent = error.message;
    }
    this.drawPlot();
    this.drawCurve();
  }

  closeRun() {
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close();
      this.ws = null;
    }
    if (this.runId) api.deleteRun(this.runId).catch(() => {});
    this.runId = null;
  }

  connect(runId, generation) {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${scheme}://${location.host}/ws/runs/${encodeURIComponent(runId)}`);
    this.ws = ws;
    ws.onmessage = (event) => {
      if (generation !== this.generation) return;
      const m = JSON.parse(event.data);
      if (m.type === 'frame') this.onFrame(m);
      else if (m.type === 'state') this.showState(m.state);
      else if (m.type === 'end') {
        this.showState(m.state);
        this.setPlaying(false);
      } else if (m.type === 'error') $('p-error').textContent = m.detail;
    };
    ws.onopen = () => {
      if (this.playing) this.send({ action: 'resume' });
    };
  }

  send(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  showState(state) {
    $('p-state').textContent = state;
  }

  setPlaying(playing) {
    this.playing = playing;
    $('p-play').textContent = playing ? '❚❚ Pause' : '▶ Play';
    $('p-play').setAttribute('aria-pressed', String(playing));
  }

  togglePlay() {
    this.setPlaying(!this.playing);
    this.send({ action: this.playing ? 'resume' : 'pause' });
  }

  step() {
    this.setPlaying(false);
    this.send({ action: 'step', steps: 1 });
  }

  // ---------------------------------------------------------------------------------------- frames

  onFrame(m) {
    this.frame = m;
    $('p-epoch').textContent = String(m.epoch);
    $('p-stepn').textContent = String(m.step);
    $('p-test-loss').textContent = m.test_loss === null ? '–' : m.test_loss.toFixed(3);
    $('p-train-loss').textContent = m.train_loss === null ? '–' : m.train_loss.toFixed(3);
    const last = this.history[this.history.length - 1];
    if (!last || last[0] !== m.step) this.history.push([m.step, m.train_loss, m.test_loss]);
    if (this.history.length > 4000) this.history = this.history.filter((_, i) => i % 2 === 0);
    if (this.neuronCanvases.length !== m.neurons.length) this.buildDiagram();
    m.neurons.forEach((layer, i) =>
      layer.forEach((b64, j) => {
        const canvas = this.neuronCanvases[i]?.[j];
        if (canvas) canvas.getContext('2d').putImageData(toImage(decode(b64), m.grid), 0, 0);
      }),
    );
    const out = this.outputCanvas;
    if (out) out.getContext('2d').putImageData(toImage(decode(m.output), m.grid), 0, 0);
    this.updateLinks();
    if (this.hovered) this.showZoom(this.hovered);
    this.drawPlot();
    this.drawCurve();
  }

  // ---------------------------------------------------------------------------------------- the diagram

  buildDiagram() {
    const s = this.state;
    const grid = this.frame?.grid || 64;
    const columns = [];
    const features = s.get('features');
    const inputs = el('div', { class: 'col inputs' }, el('p', { class: 'col-title', text: 'Features' }));
    for (const name of PLAY_PROPS.find((p) => p.key === 'features').options) {
      const on = features.includes(name);
      const canvas = el('canvas', { width: 32, height: 32, class: 'node-img' });
      canvas.getContext('2d').putImageData(featureImage(name), 0, 0);
      const node = el(
        'button',
        {
          type: 'button',
          class: `node feature${on ? ' on' : ''}`,
          'aria-pressed': String(on),
          'aria-label': `Feature ${FEATURE_LABELS[name]}: ${on ? 'used' : 'not used'}`,
          dataset: { feature: name },
          onclick: () => {
            const next = on ? features.filter((f) => f !== name) : [...features, name];
            if (next.length) this.change('features', next);
            else $('p-error').textContent = 'At least one feature is needed.';
          },
        },
        canvas,
        el('span', { class: 'node-label', text: FEATURE_LABELS[name] }),
      );
      inputs.append(node);
    }
    columns.push(inputs);
    this.neuronCanvases = [];
    s.get('layers').forEach((units, i) => {
      const col = el('div', { class: 'col hidden-layer' });
      const head = el(
        'div',
        { class: 'col-head' },
        el('button', {
          type: 'button',
          class: 'mini',
          text: '+',
          'aria-label': `Add a neuron to layer ${i + 1}`,
          disabled: units >= MAX_NEURONS,
          onclick: () => this.change('layers', s.get('layers').map((u, k) => (k === i ? Math.min(MAX_NEURONS, u + 1) : u))),
        }),
        el('button', {
          type: 'button',
          class: 'mini',
          text: '−',
          'aria-label': `Remove a neuron from layer ${i + 1}`,
          disabled: units <= 1,
          onclick: () => this.change('layers', s.get('layers').map((u, k) => (k === i ? Math.max(1, u - 1) : u))),
        }),
      );
      col.append(head, el('p', { class: 'col-title', text: `${units} neuron${units > 1 ? 's' : ''}` }));
      const canvases = [];
      for (let j = 0; j < units; j++) {
        const canvas = el('canvas', { width: grid, height: grid, class: 'node-img' });
        const node = el('div', {
          class: 'node neuron',
          tabindex: '0',
          role: 'img',
          'aria-label': `Layer ${i + 1}, neuron ${j + 1}`,
          dataset: { layer: String(i), neuron: String(j) },
        });
        node.append(canvas);
        const show = () => this.showZoom({ layer: i, neuron: j });
        node.addEventListener('mouseenter', show);
        node.addEventListener('focus', show);
        node.addEventListener('mouseleave', () => this.hideZoom());
        node.addEventListener('blur', () => this.hideZoom());
        col.append(node);
        canvases.push(canvas);
      }
      this.neuronCanvases.push(canvases);
      columns.push(col);
    });
    const outCanvas = el('canvas', { width: grid, height: grid, class: 'node-img' });
    const outNode = el('div', { class: 'node neuron output', tabindex: '0', role: 'img', 'aria-label': 'Output' }, outCanvas);
    outNode.addEventListener('mouseenter', () => this.showZoom({ output: true }));
    outNode.addEventListener('focus', () => this.showZoom({ output: true }));
    outNode.addEventListener('mouseleave', () => this.hideZoom());
    outNode.addEventListener('blur', () => this.hideZoom());
    this.outputCanvas = outCanvas;
    columns.push(el('div', { class: 'col out' }, el('p', { class: 'col-title', text: 'Output' }), outNode));
    $('p-columns').replaceChildren(...columns);
    const n = s.get('layers').length;
    $('p-net-info').textContent = `${n} hidden layer${n === 1 ? '' : 's'}, ${features.length} input${features.length === 1 ? '' : 's'}`;
    this.layoutLinks();
    if (this.frame && this.frame.neurons.length === n) this.onFrame(this.frame);
  }

  /** One SVG path per weight, from each neuron to each neuron of the next layer (inputs: the used features). */
  layoutLinks() {
    const svg = $('p-links');
    const box = $('p-diagram').getBoundingClientRect();
    const cols = [...$('p-columns').children];
    if (!cols.length) return;
    const nodesOf = (col, sel) => [...col.querySelectorAll(sel)];
    const layers = [nodesOf(cols[0], '.node.feature.on'), ...cols.slice(1).map((c) => nodesOf(c, '.node.neuron'))];
    const scroll = $('p-diagram');
    const centre = (node, side) => {
      const r = node.getBoundingClientRect();
      return [(side > 0 ? r.right : r.left) - box.left + scroll.scrollLeft, r.top + r.height / 2 - box.top + scroll.scrollTop];
    };
    svg.setAttribute('width', String(scroll.scrollWidth));
    svg.setAttribute('height', String(scroll.scrollHeight));
    const paths = [];
    this.links = [];
    for (let l = 0; l + 1 < layers.length; l++) {
      layers[l].forEach((from, i) => {
        layers[l + 1].forEach((to, j) => {
          const [x1, y1] = centre(from, 1);
          const [x2, y2] = centre(to, -1);
          const mid = (x1 + x2) / 2;
          const path = document.createElementNS(SVG, 'path');
          path.setAttribute('d', `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`);
          path.setAttribute('class', 'link');
          path.addEventListener('mouseenter', () => {
            const w = this.frame?.weights?.[l]?.[i]?.[j];
            $('p-hover').textContent = `Weight ${l === 0 ? 'input' : `layer ${l}`} #${i + 1} → ${l + 1 === layers.length - 1 ? 'output' : `layer ${l + 1}`} #${j + 1}: ${w === undefined ? '–' : w.toFixed(4)}`;
          });
          paths.push(path);
          this.links.push({ path, l, i, j });
        });
      });
    }
    svg.replaceChildren(...paths);
    this.updateLinks();
  }

  updateLinks() {
    const weights = this.frame?.weights;
    if (!weights) return;
    // the output layer's two units: draw the link to unit 1 (class 1) for classification, unit 0 for regression
    const outputs = weights.length - 1;
    for (const link of this.links) {
      const matrix = weights[link.l];
      if (!matrix) continue;
      const w = link.l === outputs ? matrix[link.i]?.[matrix[link.i].length - 1] : matrix[link.i]?.[link.j];
      if (w === undefined) continue;
      link.path.style.strokeWidth = String(Math.min(6, 0.5 + Math.abs(w) * 1.5));
      link.path.style.stroke = w >= 0 ? 'rgb(8,119,189)' : 'rgb(245,147,34)';
    }
  }

  showZoom(which) {
    this.hovered = which;
    const zoom = $('p-zoom');
    const m = this.frame;
    if (!m) return;
    const b64 = which.output ? m.output : m.neurons[which.layer]?.[which.neuron];
    if (!b64) return;
    zoom.width = m.grid;
    zoom.height = m.grid;
    zoom.getContext('2d').putImageData(toImage(decode(b64), m.grid), 0, 0);
    zoom.hidden = false;
    $('p-hover').textContent = which.output ? 'Output' : `Layer ${which.layer + 1}, neuron ${which.neuron + 1}`;
  }

  hideZoom() {
    this.hovered = null;
    $('p-zoom').hidden = true;
  }

  // ---------------------------------------------------------------------------------------- plots

  drawPlot() {
    const canvas = $('p-plot');
    const ctx = canvas.getContext('2d');
    const size = canvas.width;
    ctx.clearRect(0, 0, size, size);
    const m = this.frame;
    if (m) {
      const img = toImage(decode(m.output), m.grid, this.state.get('discretize'));
      const off = new OffscreenCanvas(m.grid, m.grid);
      off.getContext('2d').putImageData(img, 0, 0);
      ctx.imageSmoothingEnabled = !this.state.get('discretize');
      ctx.globalAlpha = 0.85;
      ctx.drawImage(off, 0, 0, size, size);
      ctx.globalAlpha = 1;
    }
    if (!this.points) return;
    const regression = this.points.task === 'regression';
    const draw = (set, test) => {
      for (let k = 0; k < set.x1.length; k++) {
        const x = ((set.x1[k] + EXTENT) / (2 * EXTENT)) * size;
        const y = ((EXTENT - set.x2[k]) / (2 * EXTENT)) * size;
        ctx.beginPath();
        ctx.arc(x, y, 3, 0, 2 * Math.PI);
        ctx.fillStyle = colourOf(regression ? (set.label[k] + 1) / 2 : set.label[k]);
        ctx.fill();
        ctx.lineWidth = 1;
        ctx.strokeStyle = test ? '#111' : '#fff';
        ctx.stroke();
      }
    };
    draw(this.points.train, false);
    if (this.state.get('show_test')) draw(this.points.test, true);
  }

  drawCurve() {
    const canvas = $('p-curve');
    const ctx = canvas.getContext('2d');
    const { width, height } = canvas;
    ctx.clearRect(0, 0, width, height);
    const h = this.history;
    if (!h.length) return;
    const maxStep = Math.max(1, h[h.length - 1][0]);
    const top = Math.max(1e-9, ...h.map((r) => Math.max(r[1] ?? 0, r[2] ?? 0)));
    const line = (k, colour) => {
      ctx.beginPath();
      h.forEach((r, i) => {
        const x = (r[0] / maxStep) * (width - 2) + 1;
        const y = height - 2 - ((r[k] ?? 0) / top) * (height - 4);
        if (i) ctx.lineTo(x, y);
        else ctx.moveTo(x, y);
      });
      ctx.strokeStyle = colour;
      ctx.lineWidth = 1.5;
      ctx.stroke();
    };
    for (const [step] of this.marks) {
      const x = (step / maxStep) * (width - 2) + 1;
      ctx.fillStyle = 'rgba(120,120,120,0.6)';
      ctx.fillRect(x, 0, 1, height);
    }
    line(2, '#111');
    line(1, '#999');
  }

  // ---------------------------------------------------------------------------------------- mode

  /** Entering the mode: the state from the URL (when it is a 2-D link), then a fresh paused run. */
  enter(params) {
    if (params) this.state.fromHash(params);
    const known = this.datasets.map((d) => d.name);
    if (!known.includes(this.state.get('dataset'))) this.state.set('dataset', known[0]);
    const task = this.datasets.find((d) => d.name === this.state.get('dataset')).task;
    this.state.set('problem', task);
    this.render();
    this.reset();
  }

  leave() {
    this.generation++;
    this.setPlaying(false);
    this.closeRun();
  }
}
