// The 2-D playground (after tensorflow/playground): a paused run is made on the server for the current setup
// (POST /api/runs with start_paused); play / pause / step / set go over its WebSocket; `frame` messages
// (server/frames.py) draw every neuron's picture, the links by weight, the output with the data points and the
// loss curves. Any change to data or network makes a new run (the old one is deleted); learning rate and
// regularisation change live and are marked on the loss curve. This module is the controller (controls, the run
// and its WebSocket, frames); the network diagram is playground-diagram.js, the colour ramp, the pictures, the
// output plot and the loss curves are playground-raster.js.

import { api } from './api.js';
import * as diagram from './playground-diagram.js';
import * as raster from './playground-raster.js';
import { LEARNING_RATES, LIVE_KEYS, MAX_LAYERS, PLAY_PROPS, PlayState, REG_RATES } from './playground-state.js';
import { $, el } from './util.js';

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
    window.addEventListener('resize', () => diagram.layoutLinks(this));
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
        if (canvas) canvas.getContext('2d').putImageData(raster.toImage(raster.decode(b64), m.grid), 0, 0);
      }),
    );
    const out = this.outputCanvas;
    if (out) out.getContext('2d').putImageData(raster.toImage(raster.decode(m.output), m.grid), 0, 0);
    diagram.updateLinks(this);
    if (this.hovered) diagram.showZoom(this, this.hovered);
    this.drawPlot();
    this.drawCurve();
  }

  // ---------------------------------------------------------------------------------------- the diagram and plots

  buildDiagram() {
    diagram.buildDiagram(this);
  }

  drawPlot() {
    const [discretize, showTest] = [this.state.get('discretize'), this.state.get('show_test')];
    raster.drawPlot($('p-plot'), { frame: this.frame, points: this.points, discretize, showTest });
  }

  drawCurve() {
    raster.drawCurve($('p-curve'), this.history, this.marks);
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
