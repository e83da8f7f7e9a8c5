// The drawing pad and live prediction. Pointer Events cover mouse, touch and pen alike (touch-action: none
// in the CSS stops the page from scrolling under a finger). Predictions are debounced (150 ms) and never pile
// up: while one request is in flight, later changes only mark the drawing dirty, and one more request with
// the newest drawing follows when the answer arrives.

import { api } from './api.js';
import { $, el, fmtPct } from './util.js';
import { doubtText } from './doubt.js';
import { describeOverlay, drawOverlay, renderFeatureMaps, renderTop3, selectedOverlay } from './explain.js';

const DEBOUNCE_MS = 150;
const NEAR_CHANCE = 0.2; // test accuracy below this: barely better than guessing one of ten digits (10%)
const nearChance = (m) => typeof m?.test_accuracy === 'number' && m.test_accuracy < NEAR_CHANCE;
const STROKE = 20; // in canvas pixels (280 wide): about 2 MNIST pixels, like the training digits

const round1 = (v) => Math.round(v * 10) / 10; // tenths of a canvas pixel: plenty, and a smaller request

export class DrawPad {
  /** `testSize`: images in the data set's test split, for "try a random test digit". */
  constructor({ testSize = 10000 } = {}) {
    this.testSize = testSize;
    this.sample = null; // the MNIST test digit on the pad, until the user draws over it
    this.canvas = $('pad');
    this.ctx = this.canvas.getContext('2d');
    this.picker = $('model-picker');
    this.hasInk = false;
    this.strokes = []; // [[[x, y], ...], ...] in canvas pixels, one list per pen stroke
    this.drawing = null; // pointerId of the stroke being drawn
    this.timer = 0;
    this.inFlight = false;
    this.dirty = false;
    this.userPicked = false; // once the user picks a model we stop switching it for them
    this.health = null;
    this.models = [];
    this.buildBars();
    this.bindPointer();
    $('btn-clear').addEventListener('click', () => this.clear());
    $('btn-sample').addEventListener('click', () => this.trySample());
    this.canvas.addEventListener('keydown', (e) => {
      if (e.key === 'Delete' || e.key === 'Backspace' || e.key === 'Escape') {
        e.preventDefault();
        this.clear();
      }
    });
    for (const radio of document.querySelectorAll('input[name="overlay"]')) {
      radio.addEventListener('change', () => {
        describeOverlay();
        if (this.last) drawOverlay($('pred-input'), this.last.input, this.last.explanation, selectedOverlay());
      });
    }
    describeOverlay();
    $('model-upload').addEventListener('change', (e) => this.upload(e.target));
    this.picker.addEventListener('change', () => {
      this.userPicked = true;
      this.noteModel();
      if (this.hasInk) this.predictSoon(0);
    });
  }

  buildBars() {
    this.bars = [];
    const list = $('pred-bars');
    for (let d = 0; d < 10; d++) {
      const fill = el('span', { class: 'bar-fill' });
      const value = el('span', { class: 'bar-value' }, '–');
      const li = el('li', { class: 'bar-row' }, el('span', { class: 'bar-digit' }, String(d)), el('span', { class: 'bar-track' }, fill), value);
      this.bars.push({ li, fill, value });
      list.append(li);
    }
  }

  bindPointer() {
    const c = this.canvas;
    const point = (e) => {
      const r = c.getBoundingClientRect();
      return [((e.clientX - r.left) * c.width) / r.width, ((e.clientY - r.top) * c.height) / r.height];
    };
    c.addEventListener('pointerdown', (e) => {
      if (e.button !== 0 && e.pointerType === 'mouse') return;
      e.preventDefault();
      c.setPointerCapture(e.pointerId);
      this.drawing = e.pointerId;
      if (this.sample) {
        this.sample = null; // now it is a drawing: predicted from the canvas like any other
        $('sample-note').textContent = '';
      }
      const [x, y] = point(e);
      const ctx = this.ctx;
      ctx.lineCap = 'round';
      ctx.lineJoin = 'round';
      ctx.lineWidth = STROKE;
      ctx.strokeStyle = '#111827';
      ctx.fillStyle = '#111827';
      ctx.beginPath();
      ctx.arc(x, y, STROKE / 2, 0, Math.PI * 2); // a tap leaves a dot
      ctx.fill();
      ctx.beginPath();
      ctx.moveTo(x, y);
      this.last = [x, y];
      this.strokes.push([[x, y]]); // the server redraws these at MNIST's proportions, whatever the size
      this.hasInk = true;
      this.predictSoon();
    });
    c.addEventListener('pointermove', (e) => {
      if (this.drawing !== e.pointerId) return;
      // coalesced events: every sample the pen/mouse reported since the last frame, for smooth curves
      const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
      for (const ev of events.length ? events : [e]) {
        const [x, y] = point(ev);
        this.ctx.lineTo(x, y);
        this.last = [x, y];
        this.strokes[this.strokes.length - 1].push([x, y]);
      }
      this.ctx.stroke();
      this.ctx.beginPath();
      this.ctx.moveTo(...this.last);
      this.predictSoon();
    });
    const end = (e) => {
      if (this.drawing !== e.pointerId) return;
      this.drawing = null;
      this.predictSoon();
    };
    c.addEventListener('pointerup', end);
    c.addEventListener('pointercancel', end);
  }

  clear() {
    this.ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    this.strokes = [];
    this.painted = false;
    this.hasInk = false;
    this.sample = null;
    $('sample-note').textContent = '';
    clearTimeout(this.timer);
    this.dirty = false;
    $('pred-text').textContent = 'Cleared. Draw a digit to see what the network thinks.';
    $('pred-doubt').textContent = '';
    $('pred-doubt').classList.remove('far');
    $('pred-digit').textContent = '?';
    for (const b of this.bars) {
      b.fill.style.width = '0%';
      b.value.textContent = '–';
      b.li.classList.remove('best');
    }
    const seen = $('pred-input');
    seen.getContext('2d').clearRect(0, 0, seen.width, seen.height);
    this.last = null;
    renderTop3($('top3'), null);
    renderFeatureMaps($('feature-maps'), null);
  }

  /** A real MNIST test digit on the pad, with its true label, predicted from its own pixels. */
  async trySample() {
    const index = Math.floor(Math.random() * this.testSize);
    let sample;
    try {
      sample = await api.sample('mnist', index);
    } catch (error) {
      $('sample-note').textContent = `No test digit: ${error.message}`;
      return;
    }
    this.clear();
    this.paint(sample.pixels);
    this.painted = true;
    this.sample = sample;
    this.hasInk = true;
    $('sample-note').textContent = `MNIST test digit #${sample.index}; its true label is ${sample.label}.`;
    this.predictSoon(0);
  }

  /** Pixels (0-1, ink high) scaled up onto the pad, square pixels as the network sees them. */
  paint(pixels) {
    const side = pixels.length;
    const small = document.createElement('canvas');
    small.width = side;
    small.height = side;
    const sctx = small.getContext('2d');
    const img = sctx.createImageData(side, side);
    pixels.flat().forEach((v, i) => img.data.set([17, 24, 39, Math.round(Math.max(0, Math.min(1, v)) * 255)], i * 4));
    sctx.putImageData(img, 0, 0);
    this.ctx.imageSmoothingEnabled = false;
    this.ctx.drawImage(small, 0, 0, this.canvas.width, this.canvas.height);
    this.ctx.imageSmoothingEnabled = true;
  }

  predictSoon(delay = DEBOUNCE_MS) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.predict(), delay);
  }

  async predict() {
    if (!this.hasInk) return;
    if (this.inFlight) {
      this.dirty = true; // picked up when the current request answers
      return;
    }
    const model = this.picker.value;
    if (!model) {
      $('pred-text').textContent = 'No model is ready yet: the default model is still training, or train a run above.';
      return;
    }
    this.inFlight = true;
    this.dirty = false;
    try {
      const sample = this.sample;
      let input = { strokes: this.strokes.map((st) => st.map(([x, y]) => [round1(x), round1(y)])) };
      if (sample) input = { pixels: sample.pixels };
      else if (this.painted) input = { image: this.canvas.toDataURL('image/png') }; // drawn over a test digit
      const result = await api.predict(input, model, true);
      if (this.hasInk) this.show(result);
      if (sample && sample === this.sample) {
        const right = result.digit === sample.label;
        $('pred-text').textContent += right ? ` · right: the true label is ${sample.label}` : ` · wrong: the true label is ${sample.label}`;
      }
    } catch (error) {
      $('pred-text').textContent = `No prediction: ${error.message}`;
      if (error.status === 404) this.refreshModels();
    } finally {
      this.inFlight = false;
      if (this.dirty && this.hasInk) this.predict();
    }
  }

  show(result) {
    const p = result.probabilities;
    const best = result.digit;
    $('pred-digit').textContent = String(best);
    $('pred-text').textContent = `Prediction: ${best} (${fmtPct(p[best], 0)} confidence)`;
    const doubt = doubtText(result);
    $('pred-doubt').textContent = doubt.text;
    $('pred-doubt').classList.toggle('far', doubt.far);
    p.forEach((v, d) => {
      const bar = this.bars[d];
      bar.fill.style.width = `${Math.max(0, Math.min(1, v)) * 100}%`;
      bar.value.textContent = fmtPct(v, 0);
      bar.li.classList.toggle('best', d === best);
    });
    this.last = result;
    drawOverlay($('pred-input'), result.input, result.explanation, selectedOverlay());
    renderTop3($('top3'), result.explanation);
    renderFeatureMaps($('feature-maps'), result.feature_maps);
  }

  /** Called with each /api/health answer: when the default model becomes ready, switch to it. */
  setHealth(health) {
    const was = this.health?.default_model;
    this.health = health;
    if (health.default_model !== was) this.refreshModels();
    else this.noteModel();
  }

  async refreshModels() {
    try {
      this.models = await api.models();
    } catch (error) {
      $('model-note').textContent = `Models unavailable: ${error.message}`;
      return;
    }
    const current = this.picker.value;
    const options = this.models.map((m) => {
      const acc = m.test_accuracy === null || m.test_accuracy === undefined ? '' : ` · ${fmtPct(m.test_accuracy)}`;
      const where = m.source === 'default' ? '' : m.source === 'run' ? ' (run)' : ' (uploaded)';
      const warn = nearChance(m) ? ' ⚠ near chance' : '';
      return el('option', { value: m.id }, `${m.name}${where}${acc}${warn}`);
    });
    this.picker.replaceChildren(...options);
    this.picker.disabled = !options.length;
    const ids = this.models.map((m) => m.id);
    let pick = '';
    if (this.userPicked && ids.includes(current)) pick = current;
    else if (ids.includes('default')) pick = 'default';
    else pick = this.models.find((m) => m.source === 'run')?.id || ids[0] || ''; // newest run first
    this.picker.value = pick;
    this.noteModel();
    if (pick && pick !== current && this.hasInk) this.predictSoon(0);
  }

  /** POST the chosen .npz to /api/models, then pick it. */
  async upload(input) {
    const file = input.files?.[0];
    if (!file) return;
    const note = $('model-note');
    note.textContent = `Uploading ${file.name}…`;
    try {
      const model = await api.uploadModel(file, file.name.replace(/\.npz$/i, '').slice(0, 80) || 'uploaded model');
      this.userPicked = true;
      await this.refreshModels();
      this.picker.value = model.id;
      this.noteModel();
      note.textContent = `Uploaded “${model.name}”: it is picked for your drawings. ${note.textContent}`.trim();
      if (this.hasInk) this.predictSoon(0);
    } catch (error) {
      note.textContent = `Could not use ${file.name}: ${error.message}`;
    } finally {
      input.value = '';
    }
  }

  noteModel() {
    const note = $('model-note');
    const picked = this.models.find((m) => m.id === this.picker.value);
    if (nearChance(picked)) {
      note.textContent =
        `Careful: this model gets only ${fmtPct(picked.test_accuracy)} of the test digits right, about what ` +
        'guessing gets (10%), so its answers mean little. Pick another model or train a better one.';
      return;
    }
    const state = this.health?.default_model;
    const usingDefault = this.picker.value === 'default';
    if (!this.models.length) {
      note.textContent =
        state === 'training'
          ? 'The default model is still training (minutes on a small server: its run is in the Train panel); then you can draw.'
          : 'No model is ready yet: train a run above, then draw.';
    } else if (state !== 'ready' && !usingDefault) {
      note.textContent =
        state === 'training'
          ? 'The default model is still training; meanwhile your newest run model is used.'
          : 'The default model is not available; using a model from your runs.';
    } else {
      note.textContent = '';
    }
  }
}
