// The Build form: renders the State (state.js) into the inputs and writes every edit back into it, paints
// the rules' messages next to the fields, asks the server what the network's sizes are (architecture.js) and
// keeps Start enabled only for a config that can run. The layer rows are layers.js's.

import { ArchitectureCheck } from './architecture.js';
import { fmtShape, optionLabel } from './labels.js';
import { LayerRows } from './layers.js';
import { inputAttributes } from './options.js';
import { ARCHITECTURE_KEYS, PROPS, State } from './state.js';
import { $, el, fmtCompact, fmtInt, readNumber, showValue } from './util.js';
import { warningsFor } from './warnings.js';

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

export class BuildForm {
  /** `rules`: options.buildRules(...); `presets`: GET /api/presets. */
  constructor({ rules, presets, onChange, onSubmit }) {
    this.form = $('build-form');
    this.rules = rules;
    this.state = new State(rules);
    this.onChange = onChange || (() => {});
    this.canStart = true; // false while the server cannot train (MNIST missing)
    this.busy = false; // a POST is in flight
    this.valid = false;
    this.errors = new Map();
    this.archRefused = false; // the server's latest settled answer: this network cannot work
    this.answer = null; // the latest settled architecture answer, shown while a newer question is pending
    this.serverErrors = null;
    this.inputs = new Map(); // prop key -> its input
    for (const p of PROPS) {
      const input = $(`f-${p.key}`);
      if (input) this.setUpInput(input, p, rules.props[p.key]);
    }
    this.describeDataset(rules.dataset);

    // a preset is compared with the form through the same State, so defaults and key order cannot differ
    const scratch = new State(rules);
    this.presets = presets.map((p) => {
      scratch.fromConfig(p.config);
      return { ...p, key: canonical({ ...scratch.toConfig(), name: '' }) };
    });
    const presetSelect = $('f-preset');
    for (const p of presets) presetSelect.append(el('option', { value: p.name }, p.name));
    presetSelect.append(el('option', { value: 'custom', disabled: true }, 'custom (edited)'));
    presetSelect.addEventListener('change', () => {
      const preset = presets.find((p) => p.name === presetSelect.value);
      if (preset) this.setConfig(preset.config);
    });

    this.layerRows = new LayerRows({ state: this.state, onChange: () => this.changed() });
    this.check = new ArchitectureCheck((result) => this.showArchitecture(result));
    const edited = (event) => {
      const key = event.target.id?.replace(/^f-/, '');
      if (!this.inputs.has(key) || this.inputs.get(key) !== event.target) return;
      const prop = PROPS.find((p) => p.key === key);
      this.state.set(key, prop.type === 'int' || prop.type === 'number' ? readNumber(event.target) : event.target.value);
      this.changed();
    };
    this.form.addEventListener('input', edited);
    this.form.addEventListener('change', (event) => event.target.tagName === 'SELECT' && edited(event));
    // Enter in a field must not start a run (a browser submits a form on Enter in any of its inputs): Start
    // is a deliberate click or key press on the button itself
    this.form.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && event.target.tagName === 'INPUT' && !['submit', 'button'].includes(event.target.type)) {
        event.preventDefault();
      }
    });
    this.form.addEventListener('submit', (event) => {
      event.preventDefault();
      onSubmit?.();
    });
  }

  /** Options, bounds and hints of one static input, from its rule. */
  setUpInput(input, prop, rule) {
    this.inputs.set(prop.key, input);
    if (input.tagName === 'SELECT') {
      input.replaceChildren(...(rule.choices || []).map((v) => el('option', { value: v }, optionLabel(v))));
    } else if (prop.type === 'int' || prop.type === 'number') {
      for (const [name, value] of Object.entries(inputAttributes(rule))) input.setAttribute(name, value);
    } else if (rule.maxLength !== undefined) {
      input.maxLength = rule.maxLength;
    }
    if (rule.description) input.title = rule.description;
  }

  /** The texts that depend on the data set: its input and output, how many images "all" is. */
  describeDataset(d) {
    if (!d) return;
    $('network-help').textContent = `Input ${fmtShape(d.input_shape)} → your layers → ${d.classes} outputs.`;
    if (Number.isInteger(d.train_size)) {
      $('train-all').textContent = `(empty = all ${fmtInt(d.train_size)})`;
      $('f-train_subset').placeholder = `all ${fmtInt(d.train_size)}`;
    }
  }

  enable(on) {
    $('form-fields').disabled = !on;
  }

  /** The config to POST, from the state. */
  config() {
    return this.state.toConfig();
  }

  /** Fill from a (possibly partial or hand-edited) config; unknown keys are ignored. */
  setConfig(config) {
    this.state.fromConfig(config);
    this.rendered();
  }

  /** Fill from the URL's parameters; false when they carry no settings. Throws on an unreadable link. */
  setFromHash(params) {
    if (!this.state.fromHash(params)) return false;
    this.rendered();
    return true;
  }

  /** The whole form from the state: after a preset, a link or a run's config replaced it. */
  rendered() {
    for (const [key, input] of this.inputs) input.value = showValue(this.state.get(key));
    this.layerRows.render();
    this.clearServerError();
    this.update();
  }

  /** After a user edit: server errors are stale now. */
  changed() {
    this.clearServerError();
    this.update();
  }

  /** Check the state, paint the messages, ask for the sizes; returns {config, valid}. */
  update() {
    this.showConditional();
    const errors = this.state.validate();
    this.errors = errors;
    for (const [key, input] of this.inputs) {
      const message = errors.get(key) || '';
      const box = $(`e-${key}`);
      if (box && !this.serverErrors?.has(box.id)) box.textContent = message;
      if (message) input.setAttribute('aria-invalid', 'true');
      else if (!this.serverErrors?.has(`e-${key}`)) input.removeAttribute('aria-invalid');
    }
    $('e-layers').textContent = errors.get('layers') || '';
    this.valid = errors.size === 0;
    const askable = ![...errors.keys()].some((k) => k.startsWith('layers') || ARCHITECTURE_KEYS.includes(k));
    if (askable) this.check.request(this.state.architecture());
    else this.check.cancel();

    const config = this.state.toConfig();
    const warnings = this.valid ? warningsFor(config, this.rules.dataset?.train_size) : [];
    // only touch the aria-live box when the warnings change, or screen readers repeat them at every keystroke
    if (warnings.join('\n') !== this.shownWarnings) {
      this.shownWarnings = warnings.join('\n');
      $('warnings').replaceChildren(
        ...warnings.map((w) => el('p', { class: 'warning' }, el('strong', {}, 'Heads up: '), w)),
      );
    }
    this.syncPreset(config);
    this.refreshStart();
    this.onChange(this.state);
    return { config, valid: this.valid };
  }

  /** The server's answer about the network: sizes per row and in total, or why it cannot work. */
  showArchitecture(result) {
    if (result && !result.pending) {
      this.answer = result;
      this.archRefused = !result.ok && !result.unreachable;
    }
    if (!result) [this.answer, this.archRefused] = [null, false];
    const shown = result?.pending ? this.answer : result;
    this.layerRows.paint(this.errors, shown && { ...shown, pending: Boolean(result?.pending) });
    const data = shown?.ok ? shown.data : null;
    $('param-count').textContent = data ? fmtInt(data.parameters) : '–';
    $('mac-count').textContent = data ? fmtCompact(data.macs) : '–';
    $('arch').textContent = data ? `(${[data.input_shape, ...data.layers.map((r) => r.output_shape)].map(fmtShape).join(' → ')})` : '';
    $('network-totals').classList.toggle('pending', Boolean(result?.pending));
    const general = shown && !shown.ok ? shown.problems.filter((p) => p.layer === null || p.layer > this.state.layers.length) : [];
    $('e-params').textContent = general.map((p) => p.message).join('; ');
    this.refreshStart();
  }

  refreshStart() {
    $('btn-start').disabled = !this.valid || this.archRefused || !this.canStart || this.busy;
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

  /** A property that does not matter for the current choices (momentum for Adam) is hidden. */
  showConditional() {
    for (const p of PROPS) {
      const field = this.inputs.get(p.key)?.closest('.field');
      if (field && p.when) field.hidden = !this.state.relevant(p);
    }
  }

  syncPreset(config) {
    const mine = canonical({ ...config, name: '' });
    const match = this.presets.find((p) => p.key === mine);
    $('f-preset').value = match ? match.name : 'custom';
    $('preset-desc').textContent = match ? match.description : 'Your own settings.';
  }

  /** Show a 4xx from POST /api/runs: the whole detail at the bottom, and inline where a field is named. */
  showServerError(error) {
    this.serverErrors = new Set();
    $('form-error').textContent = `The server refused this run: ${error.message}`;
    for (const d of Array.isArray(error.detail) ? error.detail : []) {
      const loc = (d.loc || []).filter((p) => p !== 'body');
      let input = null;
      let box = null;
      if (loc[0] === 'layers' && Number.isInteger(loc[1])) {
        const row = $('layers').querySelectorAll('li.layer')[loc[1]];
        const field = loc.slice(2).filter((p) => typeof p === 'string').pop();
        input = row?.querySelector(`[data-k="${field}"]`) || row?.querySelector('[data-k]') || null;
        box = row?.querySelector('.err') || null;
      } else {
        const prop = PROPS.find((p) => p.path.join('.') === loc.join('.')) || PROPS.find((p) => p.key === loc.at(-1));
        input = prop ? this.inputs.get(prop.key) || null : null;
        box = prop ? $(`e-${prop.key}`) : null;
      }
      if (input && box) {
        box.textContent = d.msg;
        input.setAttribute('aria-invalid', 'true');
        this.serverErrors.add(box.id);
      }
    }
  }

  clearServerError() {
    this.serverErrors = null;
    if (this.canStart) $('form-error').textContent = '';
  }

  focusFirstError() {
    this.form.querySelector('[aria-invalid="true"]')?.focus();
  }
}
