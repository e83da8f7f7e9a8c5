// The Build form: renders a RunConfig into inputs, reads it back with the same rules the server applies
// (limits from /api/options), shows inline errors and warnings, and keeps the live parameter count.
// The DOM is the single source of truth: read() is cheap, so every input event just re-reads everything.

import { $, el, fmtInt, layerSizes, parameterCount, fromBase64Url, toBase64Url } from './util.js';

export const DEFAULT_CONFIG = {
  name: '',
  dataset: 'mnist',
  layers: [{ units: 128, activation: 'relu', dropout: 0 }],
  output_activation: 'softmax',
  loss: 'cross_entropy',
  init: 'he',
  optimizer: { name: 'adam', momentum: 0.9, beta1: 0.9, beta2: 0.999 },
  learning_rate: 0.001,
  schedule: { name: 'constant', step_size: 5, gamma: 0.5 },
  batch_size: 128,
  epochs: 10,
  l2: 0,
  seed: 0,
  train_subset: null,
};

// Friendlier option texts; the option value stays the API's name.
const LABELS = {
  relu: 'ReLU',
  leaky_relu: 'leaky ReLU',
  sigmoid: 'sigmoid',
  tanh: 'tanh',
  linear: 'linear (none)',
  softmax: 'softmax',
  cross_entropy: 'cross-entropy',
  mse: 'MSE',
  he: 'He',
  xavier: 'Xavier',
  naive: 'naive',
  sgd: 'SGD',
  momentum: 'SGD + momentum',
  nesterov: 'Nesterov momentum',
  adam: 'Adam',
  constant: 'constant',
  step: 'step decay',
  cosine: 'cosine',
};

const MAX_SEED = 2 ** 32 - 1;

/** Parse one number input against a rule; returns {value} or {error}. */
function parseNumber(input, rule) {
  const raw = input.value.trim();
  if (input.validity && input.validity.badInput) return { error: 'not a number' };
  if (raw === '') return rule.optional ? { value: null } : { error: 'required' };
  const v = Number(raw);
  if (!Number.isFinite(v)) return { error: 'not a number' };
  if (rule.int && !Number.isInteger(v)) return { error: 'must be a whole number' };
  if (rule.minOpen ? v <= rule.min : v < rule.min) {
    return { error: rule.minOpen ? `must be more than ${rule.min}` : `must be at least ${rule.min}` };
  }
  if (rule.maxOpen ? v >= rule.max : v > rule.max) {
    return { error: rule.maxOpen ? `must be less than ${rule.max}` : `at most ${fmtInt(rule.max)}` };
  }
  return { value: v };
}

/** JSON with sorted keys, to compare configs whatever order their keys came in. */
function canonical(value) {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

/** Warnings for choices that are legal but known to go badly. They never block Start. */
export function warningsFor(c) {
  const w = [];
  const acts = c.layers.map((l) => l.activation);
  const lr = c.learning_rate;
  const n = Number.isInteger(c.train_subset) ? c.train_subset : 60000;
  if (acts.includes('sigmoid') && c.loss === 'mse' && c.init === 'naive') {
    w.push(
      'Sigmoid + mean squared error + naive init: the gradients are tiny, so learning crawls and with larger ' +
        'batches stalls near 11%. Cross-entropy with a softmax output, or He/Xavier init, learns far faster.',
    );
  }
  if (Number.isFinite(lr)) {
    if (c.optimizer.name === 'adam' && lr > 0.05) {
      w.push(`Adam at learning rate ${lr} is far above its usual 0.001–0.005: expect the loss to jump or diverge.`);
    } else if (lr > 1) {
      w.push(`A learning rate above 1 (${lr}) usually makes the loss blow up (diverge).`);
    } else if (lr < 1e-5) {
      w.push(`Learning rate ${lr} is so small that the weights will barely move.`);
    }
  }
  if (Number.isInteger(c.batch_size) && c.batch_size > 0) {
    const steps = Math.ceil(n / c.batch_size);
    if (steps > 5000) {
      w.push(
        `Batch size ${c.batch_size} on ${fmtInt(n)} images is ${fmtInt(steps)} steps per epoch: slow ` +
          '(minutes per epoch). A batch of 32–128 is much faster per epoch.',
      );
    }
  }
  const saturating = acts.filter((a) => a === 'sigmoid' || a === 'tanh').length;
  if (saturating >= 4) {
    w.push(
      `${saturating} sigmoid/tanh layers: gradients shrink layer after layer (vanishing gradients), so the first ` +
        'layers hardly learn. Watch the gradient histograms; ReLU trains deep nets faster.',
    );
  }
  if (acts.length > 0 && acts.every((a) => a === 'linear')) {
    w.push('Only linear hidden layers: the whole network is one linear map, no better than no hidden layer.');
  }
  if (c.init === 'naive' && acts.filter((a) => a === 'relu' || a === 'leaky_relu').length >= 3) {
    w.push('Naive init (tiny weights) with several ReLU layers: the signal fades layer by layer. He init suits ReLU.');
  }
  if (c.layers.some((l) => l.dropout >= 0.7)) {
    w.push('Dropout of 70% or more drops most of a layer at every step: learning will be slow and noisy.');
  }
  if (c.loss === 'mse' && c.output_activation === 'softmax') {
    w.push('Softmax with mean squared error learns slowly; softmax is made for cross-entropy.');
  }
  return w;
}

export function encodeConfig(config) {
  return toBase64Url(JSON.stringify(config));
}

export function decodeConfig(text) {
  const value = JSON.parse(fromBase64Url(text));
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new Error('not a config object');
  return value;
}

export class BuildForm {
  constructor({ options, presets, onChange, onSubmit }) {
    this.form = $('build-form');
    this.options = options;
    this.limits = options.limits;
    this.presets = presets;
    this.onChange = onChange || (() => {});
    this.canStart = true; // false while the server cannot train (MNIST missing)
    this.busy = false; // a POST is in flight
    this.layerSeq = 0;
    this.lastValid = false;

    this.fillSelect($('f-output_activation'), options.output_activations);
    this.fillSelect($('f-loss'), options.losses);
    this.fillSelect($('f-init'), options.inits);
    this.fillSelect($('f-optimizer'), options.optimizers);
    this.fillSelect($('f-schedule'), options.schedules);
    const presetSelect = $('f-preset');
    for (const p of presets) presetSelect.append(el('option', { value: p.name }, p.name));
    presetSelect.append(el('option', { value: 'custom', disabled: true }, 'custom (edited)'));
    $('f-batch_size').max = String(this.limits.max_batch_size);
    $('f-epochs').max = String(this.limits.max_epochs);

    presetSelect.addEventListener('change', () => {
      const preset = presets.find((p) => p.name === presetSelect.value);
      if (preset) this.setConfig(preset.config);
    });
    $('add-layer').addEventListener('click', () => {
      const layers = this.readLayersLoose();
      const last = layers[layers.length - 1];
      layers.push({ units: last?.units || 64, activation: last?.activation || 'relu', dropout: 0 });
      this.renderLayers(layers);
      this.changed();
      $('layers').querySelector('li:last-child input')?.focus();
    });
    $('layers').addEventListener('click', (event) => {
      const button = event.target.closest('button[data-remove]');
      if (!button) return;
      const row = button.closest('li');
      const rows = [...$('layers').children];
      const index = rows.indexOf(row);
      const layers = this.readLayersLoose();
      layers.splice(index, 1);
      this.renderLayers(layers);
      this.changed();
      // keep keyboard focus somewhere sensible after the focused button vanished
      const next = $('layers').children[Math.min(index, layers.length - 1)];
      (next?.querySelector('button[data-remove]') || $('add-layer')).focus();
    });
    this.form.addEventListener('input', (event) => {
      if (event.target !== presetSelect) this.changed();
    });
    this.form.addEventListener('change', (event) => {
      if (event.target.tagName === 'SELECT' && event.target !== presetSelect) this.changed();
    });
    this.form.addEventListener('submit', (event) => {
      event.preventDefault();
      onSubmit?.();
    });
  }

  fillSelect(select, values, labels = LABELS) {
    select.replaceChildren(...values.map((v) => el('option', { value: v }, labels[v] || v)));
  }

  enable(on) {
    $('form-fields').disabled = !on;
  }

  /** Fill the form from a (possibly partial or hand-edited) config; unknown keys are ignored. */
  setConfig(cfg) {
    const c = {
      ...DEFAULT_CONFIG,
      ...cfg,
      optimizer: { ...DEFAULT_CONFIG.optimizer, ...(cfg.optimizer || {}) },
      schedule: { ...DEFAULT_CONFIG.schedule, ...(cfg.schedule || {}) },
    };
    const set = (id, v) => {
      $(id).value = v === null || v === undefined ? '' : String(v);
    };
    set('f-name', c.name);
    this.renderLayers(Array.isArray(c.layers) ? c.layers : []);
    set('f-output_activation', c.output_activation);
    set('f-loss', c.loss);
    set('f-init', c.init);
    set('f-optimizer', c.optimizer.name);
    set('f-momentum', c.optimizer.momentum);
    set('f-beta1', c.optimizer.beta1);
    set('f-beta2', c.optimizer.beta2);
    set('f-learning_rate', c.learning_rate);
    set('f-schedule', c.schedule.name);
    set('f-step_size', c.schedule.step_size);
    set('f-gamma', c.schedule.gamma);
    set('f-batch_size', c.batch_size);
    set('f-epochs', c.epochs);
    set('f-l2', c.l2);
    set('f-seed', c.seed);
    set('f-train_subset', c.train_subset);
    this.clearServerError();
    this.update();
    this.syncPreset();
  }

  renderLayers(layers) {
    const list = $('layers');
    list.replaceChildren(...layers.map((layer, i) => this.layerRow(layer, i)));
    $('add-layer').disabled = layers.length >= this.limits.max_layers;
    $('add-layer').title = layers.length >= this.limits.max_layers ? `at most ${this.limits.max_layers} layers` : '';
    if (!layers.length) {
      list.append(el('li', { class: 'muted no-layers' }, 'No hidden layer: a plain linear classifier (784 → 10).'));
    }
  }

  layerRow(layer, index) {
    const id = `layer-${++this.layerSeq}`;
    const acts = this.options.activations;
    const activation = el('select', { id: `${id}-act`, dataset: { k: 'activation' } });
    this.fillSelect(activation, acts);
    activation.value = layer.activation ?? 'relu';
    const num = (k, value, attrs) =>
      el('input', {
        id: `${id}-${k}`,
        type: 'number',
        dataset: { k },
        value: value === null || value === undefined ? '' : String(value),
        'aria-describedby': `${id}-err`,
        ...attrs,
      });
    return el(
      'li',
      { class: 'layer' },
      el('span', { class: 'layer-name' }, `Hidden ${index + 1}`),
      el(
        'span',
        { class: 'lf' },
        el('label', { for: `${id}-units` }, 'Units'),
        num('units', layer.units, { min: 1, max: this.limits.max_units, step: 1, inputmode: 'numeric' }),
      ),
      el('span', { class: 'lf' }, el('label', { for: `${id}-act` }, 'Activation'), activation),
      el(
        'span',
        { class: 'lf' },
        el('label', { for: `${id}-dropout` }, 'Dropout'),
        num('dropout', layer.dropout ?? 0, { min: 0, max: 0.9, step: 0.05, inputmode: 'decimal' }),
      ),
      el('button', { type: 'button', class: 'icon', dataset: { remove: '1' }, 'aria-label': `Remove hidden layer ${index + 1}` }, '✕'),
      el('p', { class: 'err', id: `${id}-err` }),
    );
  }

  /** Layers as typed, for re-rendering after add/remove (no validation). */
  readLayersLoose() {
    return [...$('layers').querySelectorAll('li.layer')].map((row) => ({
      units: row.querySelector('[data-k=units]').value,
      activation: row.querySelector('[data-k=activation]').value,
      dropout: row.querySelector('[data-k=dropout]').value,
    }));
  }

  /** Read and validate everything. Sets inline messages; returns {config, valid}. */
  read() {
    const L = this.limits;
    const errors = new Map(); // error element id -> message
    const invalid = new Set();
    const fail = (input, errId, msg) => {
      invalid.add(input);
      errors.set(errId, errors.has(errId) ? `${errors.get(errId)}; ${msg}` : msg);
    };
    const number = (name, rule, fallback) => {
      const input = $(`f-${name}`);
      const hidden = input.closest('[data-show]')?.hidden;
      const r = parseNumber(input, rule);
      if (r.error) {
        if (hidden) return fallback; // a setting the chosen optimizer/schedule ignores: keep the default
        fail(input, `e-${name}`, r.error);
        return NaN;
      }
      return r.value;
    };
    const choice = (name, allowed) => {
      const input = $(`f-${name}`);
      if (!allowed.includes(input.value)) fail(input, `e-${name}`, 'choose one');
      return input.value;
    };

    const layers = [...$('layers').querySelectorAll('li.layer')].map((row) => {
      const errId = row.querySelector('.err').id;
      const unitsIn = row.querySelector('[data-k=units]');
      const dropIn = row.querySelector('[data-k=dropout]');
      const actIn = row.querySelector('[data-k=activation]');
      const u = parseNumber(unitsIn, { int: true, min: 1, max: L.max_units });
      if (u.error) fail(unitsIn, errId, `units ${u.error}`);
      const d = parseNumber(dropIn, { min: 0, max: 0.9 });
      if (d.error) fail(dropIn, errId, `dropout ${d.error}`);
      if (!this.options.activations.includes(actIn.value)) fail(actIn, errId, 'choose an activation');
      return { units: u.error ? NaN : u.value, activation: actIn.value, dropout: d.error ? NaN : d.value };
    });
    if (layers.length > L.max_layers) errors.set('e-layers', `at most ${L.max_layers} hidden layers`);

    const name = $('f-name').value;
    if (name.length > 80) fail($('f-name'), 'e-name', 'at most 80 characters');
    const subset = number('train_subset', { int: true, min: 1, max: L.train_size, optional: true }, null);
    const trainSize = Number.isInteger(subset) ? subset : L.train_size;
    const config = {
      name,
      dataset: 'mnist',
      layers,
      output_activation: choice('output_activation', this.options.output_activations),
      loss: choice('loss', this.options.losses),
      init: choice('init', this.options.inits),
      optimizer: {
        name: choice('optimizer', this.options.optimizers),
        momentum: number('momentum', { min: 0, max: 1, maxOpen: true }, 0.9),
        beta1: number('beta1', { min: 0, max: 1, maxOpen: true }, 0.9),
        beta2: number('beta2', { min: 0, max: 1, maxOpen: true }, 0.999),
      },
      learning_rate: number('learning_rate', { min: 0, minOpen: true, max: 1000 }),
      schedule: {
        name: choice('schedule', this.options.schedules),
        step_size: number('step_size', { int: true, min: 1, max: 1000 }, 5),
        gamma: number('gamma', { min: 0, minOpen: true, max: 1 }, 0.5),
      },
      batch_size: number('batch_size', { int: true, min: 1, max: L.max_batch_size }),
      epochs: number('epochs', { int: true, min: 1, max: L.max_epochs }),
      l2: number('l2', { min: 0, max: 10 }),
      seed: number('seed', { int: true, min: 0, max: MAX_SEED }),
      train_subset: subset,
    };
    // the rules that tie two fields together, as the server's model validator has them
    if (config.loss === 'cross_entropy' && config.output_activation === 'linear') {
      fail($('f-loss'), 'e-loss', 'cross-entropy needs a softmax or sigmoid output');
    }
    if (Number.isInteger(config.batch_size) && config.batch_size > trainSize) {
      fail($('f-batch_size'), 'e-batch_size', `larger than the training set (${fmtInt(trainSize)} images)`);
    }
    const params = layers.every((l) => Number.isInteger(l.units)) ? parameterCount(layerSizes(config)) : NaN;
    if (params > L.max_parameters) {
      errors.set('e-params', `${fmtInt(params)} parameters is over the server's limit of ${fmtInt(L.max_parameters)}`);
    }

    // paint: every error element gets its message or is emptied; inputs get aria-invalid
    for (const p of this.form.querySelectorAll('.err')) {
      if (!this.serverErrors?.has(p.id)) p.textContent = errors.get(p.id) || '';
    }
    for (const input of this.form.querySelectorAll('input, select')) {
      if (invalid.has(input) || this.serverInvalid?.has(input)) input.setAttribute('aria-invalid', 'true');
      else input.removeAttribute('aria-invalid');
    }
    return { config, valid: errors.size === 0, params };
  }

  /** Re-read after a user edit: server errors are stale now, and the preset no longer applies. */
  changed() {
    this.clearServerError();
    this.update();
    this.syncPreset();
  }

  update() {
    this.showConditional();
    const { config, valid, params } = this.read();
    $('param-count').textContent = fmtInt(params);
    $('arch').textContent = config.layers.every((l) => Number.isInteger(l.units))
      ? `(${layerSizes(config).join(' → ')})`
      : '';
    const warnings = valid ? warningsFor(config) : [];
    // only touch the aria-live box when the warnings change, or screen readers repeat them at every keystroke
    if (warnings.join('\n') !== this.shownWarnings) {
      this.shownWarnings = warnings.join('\n');
      $('warnings').replaceChildren(
        ...warnings.map((w) => el('p', { class: 'warning' }, el('strong', {}, 'Heads up: '), w)),
      );
    }
    this.lastValid = valid;
    this.refreshStart();
    this.onChange(config, valid);
    return { config, valid };
  }

  refreshStart() {
    $('btn-start').disabled = !this.lastValid || !this.canStart || this.busy;
  }

  setCanStart(on, reason) {
    const box = $('form-error');
    if (!on && reason) box.textContent = reason;
    else if (on && !this.canStart && box.textContent === this.cannotStartReason) box.textContent = '';
    this.cannotStartReason = on ? '' : reason;
    this.canStart = on;
    this.refreshStart();
  }

  setBusy(on) {
    this.busy = on;
    $('btn-start').textContent = on ? 'Starting…' : 'Start training';
    this.refreshStart();
  }

  /** Momentum only for momentum/nesterov, betas only for Adam, step settings only for the step schedule. */
  showConditional() {
    const opt = $('f-optimizer').value;
    const sched = $('f-schedule').value;
    for (const field of this.form.querySelectorAll('[data-show]')) {
      const what = field.dataset.show;
      field.hidden = !(
        (what === 'momentum' && (opt === 'momentum' || opt === 'nesterov')) ||
        (what === 'adam' && opt === 'adam') ||
        (what === 'step' && sched === 'step')
      );
    }
  }

  syncPreset() {
    const select = $('f-preset');
    const { config } = this.read();
    const mine = canonical({ ...config, name: '' });
    const match = this.presets.find((p) => canonical({ ...p.config, name: '' }) === mine);
    select.value = match ? match.name : 'custom';
    $('preset-desc').textContent = match ? match.description : 'Your own settings.';
  }

  /** Show a 4xx from POST /api/runs: the whole detail at the bottom, and inline where a field is named. */
  showServerError(error) {
    this.serverErrors = new Set();
    this.serverInvalid = new Set();
    $('form-error').textContent = `The server refused this run: ${error.message}`;
    if (Array.isArray(error.detail)) {
      for (const d of error.detail) {
        const loc = (d.loc || []).filter((p) => p !== 'body');
        let input = null;
        let errEl = null;
        if (loc[0] === 'layers' && Number.isInteger(loc[1])) {
          const row = $('layers').querySelectorAll('li.layer')[loc[1]];
          input = row?.querySelector(`[data-k=${loc[2] || 'units'}]`) || null;
          errEl = row?.querySelector('.err') || null;
        } else {
          const key = loc[loc.length - 1];
          input = typeof key === 'string' ? $(`f-${key}`) : null;
          errEl = typeof key === 'string' ? $(`e-${key}`) : null;
        }
        if (input && errEl) {
          errEl.textContent = d.msg;
          input.setAttribute('aria-invalid', 'true');
          this.serverErrors.add(errEl.id);
          this.serverInvalid.add(input);
        }
      }
    }
  }

  clearServerError() {
    this.serverErrors = null;
    this.serverInvalid = null;
    if (this.canStart) $('form-error').textContent = '';
  }

  focusFirstError() {
    this.form.querySelector('[aria-invalid="true"]')?.focus();
  }
}
