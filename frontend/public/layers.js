// The layer builder: one row per layer of the state (its type's fields, up / down / remove), the output
// layer's row, and the "add layer" control with a type picker. Rows are rebuilt from the state when the list
// changes shape; a typed value goes into the state without re-rendering its row, so the caret stays put.
// Each row shows its output shape, parameters and multiply-adds as POST /api/architecture answered them.

import { fieldLabel, fmtShape, layerLabel, optionLabel } from './labels.js';
import { inputAttributes } from './options.js';
import { $, el, fmtCompact, fmtInt, readNumber, showValue } from './util.js';

const product = (shape) => (shape || []).reduce((a, b) => a * b, 1);

export class LayerRows {
  /** `onChange()` after every edit; the state is already updated when it is called. */
  constructor({ state, onChange }) {
    this.state = state;
    this.rules = state.rules;
    this.onChange = onChange;
    this.list = $('layers');
    const picker = $('add-layer-type');
    picker.replaceChildren(...this.rules.layerTypes.map((t) => el('option', { value: t }, layerLabel(t))));
    picker.value = this.rules.layerTypes.includes('dense') ? 'dense' : this.rules.layerTypes[0];
    $('add-layer').addEventListener('click', () => {
      this.state.addLayer(picker.value);
      this.structureChanged(() => this.list.querySelector('li.layer:last-of-type input, li.layer:last-of-type select'));
    });
    this.list.addEventListener('click', (event) => this.onButton(event));
    this.list.addEventListener('input', (event) => this.onInput(event));
    this.list.addEventListener('change', (event) => this.onInput(event));
  }

  onInput(event) {
    const input = event.target.closest('[data-k]');
    const row = input?.closest('li.layer');
    if (!row) return;
    const index = Number(row.dataset.index);
    const field = this.state.fieldsOf(this.state.layers[index].type).find((f) => f.key === input.dataset.k);
    if (!field) return;
    const value = field.type === 'int' || field.type === 'number' ? readNumber(input) : input.value;
    this.state.setLayerField(index, field.key, value);
    this.onChange();
  }

  onButton(event) {
    const button = event.target.closest('button');
    const row = button?.closest('li.layer');
    if (!row) return;
    const index = Number(row.dataset.index);
    if (button.dataset.remove) {
      this.state.removeLayer(index);
      // keep keyboard focus somewhere sensible after the focused button vanished
      this.structureChanged(() => {
        const rows = this.list.querySelectorAll('li.layer');
        return rows[Math.min(index, rows.length - 1)]?.querySelector('button[data-remove]') || $('add-layer');
      });
    } else if (button.dataset.move) {
      const by = Number(button.dataset.move);
      this.state.moveLayer(index, by);
      this.structureChanged(() => {
        const moved = this.list.querySelectorAll('li.layer')[index + by];
        const same = moved?.querySelector(`button[data-move="${by}"]`);
        return same && !same.disabled ? same : moved?.querySelector('button[data-move]:not(:disabled)');
      });
    }
  }

  structureChanged(focusTarget) {
    this.render();
    this.onChange();
    focusTarget()?.focus();
  }

  /** Rebuild every row from the state. */
  render() {
    const layers = this.state.layers;
    this.list.replaceChildren(...layers.map((layer, i) => this.row(layer, i, layers.length)));
    if (!layers.length) {
      const d = this.rules.dataset;
      const plain = d ? ` (${fmtInt(product(d.input_shape))} → ${d.classes})` : '';
      this.list.append(el('li', { class: 'muted no-layers' }, `No hidden layer: a plain linear classifier${plain}.`));
    }
    const full = layers.length >= this.rules.maxLayers;
    $('add-layer').disabled = full;
    $('add-layer').title = full ? `at most ${this.rules.maxLayers} layers` : '';
  }

  row(layer, index, count) {
    const n = index + 1;
    const id = `layer-${index}`;
    const fields = this.state.fieldsOf(layer.type).map((f) => this.field(layer, f, n, id));
    const button = (attrs, text) => el('button', { type: 'button', class: 'icon', ...attrs }, text);
    return el(
      'li',
      { class: `layer layer-${layer.type}`, dataset: { index: String(index) } },
      el(
        'div',
        { class: 'layer-head' },
        el(
          'span',
          { class: 'layer-title' },
          el('span', { class: 'layer-name' }, `${n} · ${layerLabel(layer.type)}`),
          el('span', { class: 'layer-info', id: `${id}-info` }),
        ),
        el(
          'span',
          { class: 'layer-buttons' },
          button({ dataset: { move: '-1' }, disabled: index === 0, 'aria-label': `Move layer ${n} up` }, '↑'),
          button({ dataset: { move: '1' }, disabled: index === count - 1, 'aria-label': `Move layer ${n} down` }, '↓'),
          button({ class: 'icon remove', dataset: { remove: '1' }, 'aria-label': `Remove layer ${n}` }, '✕'),
        ),
      ),
      fields.length ? el('div', { class: 'layer-fields' }, ...fields) : null,
      el('p', { class: 'err', id: `${id}-err` }),
    );
  }

  field(layer, f, n, rowId) {
    const rule = this.rules.layers[layer.type]?.[f.key] || { type: f.type };
    const id = `${rowId}-${f.key}`;
    const common = { id, dataset: { k: f.key }, 'aria-describedby': `${rowId}-err`, title: rule.description || null };
    let input;
    if (f.type === 'enum') {
      input = el('select', common, ...(rule.choices || []).map((c) => el('option', { value: c }, optionLabel(c))));
      input.value = layer[f.key];
    } else {
      input = el('input', { ...common, type: 'number', ...inputAttributes(rule), value: showValue(layer[f.key]) });
    }
    // the label says which layer, for screen readers and for anyone reading a list of form fields
    const label = el('label', { for: id }, el('span', { class: 'sr-only' }, `Layer ${n} `), fieldLabel(f.key));
    return el('span', { class: `lf lf-${f.key} lf-${f.type}` }, label, input);
  }

  /**
   * Show each row's problems and sizes. `errors`: the state's Map ('layers.<i>.<field>' -> message);
   * `arch`: the latest ArchitectureCheck result, or null.
   */
  paint(errors, arch) {
    const rows = [...this.list.querySelectorAll('li.layer')];
    const serverSays = new Map(); // row index -> messages
    const outputIndex = rows.length;
    for (const p of arch && !arch.ok && !arch.pending ? arch.problems : []) {
      if (p.layer === null || p.layer > outputIndex) continue;
      serverSays.set(p.layer, [...(serverSays.get(p.layer) || []), p.message]);
    }
    const current = arch && arch.ok && arch.data.layers.length === rows.length + 1 ? arch.data : null;
    rows.forEach((row, i) => {
      const mine = [];
      for (const input of row.querySelectorAll('[data-k]')) {
        const message = errors.get(`layers.${i}.${input.dataset.k}`);
        if (message) mine.push(`${fieldLabel(input.dataset.k).toLowerCase()} ${message}`);
        if (message) input.setAttribute('aria-invalid', 'true');
        else input.removeAttribute('aria-invalid');
      }
      if (errors.has(`layers.${i}.type`)) mine.push(errors.get(`layers.${i}.type`));
      const said = serverSays.get(i) || [];
      row.querySelector('.err').textContent = [...mine, ...said].join('; ');
      row.classList.toggle('refused', said.length > 0);
      row.classList.toggle('pending', Boolean(arch?.pending));
      row.querySelector('.layer-info').textContent = current ? sizeLine(current.layers[i]) : '';
    });
    this.paintOutput(current, serverSays.get(outputIndex) || []);
  }

  paintOutput(current, said) {
    const d = this.rules.dataset;
    const act = optionLabel(this.state.get('output_activation'));
    $('output-name').textContent = `Output · ${d ? `${d.classes} ${d.task === 'classification' ? 'classes' : 'outputs'}` : ''} · ${act}`;
    $('output-info').textContent = current ? sizeLine(current.layers[current.layers.length - 1]) : '';
    $('e-output').textContent = said.join('; ');
  }
}

/** "14×14×8 · 1,168 params · 226k MACs" for one row of POST /api/architecture's answer. */
function sizeLine(row) {
  if (!row) return '';
  return `${fmtShape(row.output_shape)} · ${fmtInt(row.parameters)} params · ${fmtCompact(row.macs)} MACs`;
}
