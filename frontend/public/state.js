// The build form's state, after tensorflow/playground's src/state.ts: every property is declared once here
// (its name, where it sits in a RunConfig, its type); its default and bounds come from the server (options.js).
// The form renders from this object and writes edits into it; the URL hash, the copy-link button and "copy
// config to the form" all go through toHash / fromHash / fromConfig / toConfig.
//
// Hash format: #name=...&learning_rate=0.002&...&layers=conv2d:8:5:1:same:relu,maxpool2d:2,dense:64:relu:0
// (a layer is its type, then its fields in the order declared in LAYER_PROPS). Links from before typed layers,
// #config=<base64url of the RunConfig JSON>, still open.

import { checkValue } from './options.js';
import { fromBase64Url } from './util.js';

const trains = (names) => (v) => names.includes(v.optimizer);

/** The form's properties: `key` names the input (#f-<key>) and the URL parameter; `path` is the RunConfig field. */
export const PROPS = [
  { key: 'dataset', path: ['dataset'], type: 'enum', options: 'datasets' },
  { key: 'name', path: ['name'], type: 'string' },
  { key: 'output_activation', path: ['output_activation'], type: 'enum', options: 'output_activations' },
  { key: 'loss', path: ['loss'], type: 'enum', options: 'losses' },
  { key: 'init', path: ['init'], type: 'enum', options: 'inits' },
  { key: 'optimizer', path: ['optimizer', 'name'], type: 'enum', options: 'optimizers' },
  { key: 'learning_rate', path: ['learning_rate'], type: 'number' },
  // `when`: the property only matters for some choices; the form hides it otherwise
  { key: 'momentum', path: ['optimizer', 'momentum'], type: 'number', when: trains(['momentum', 'nesterov']) },
  { key: 'beta1', path: ['optimizer', 'beta1'], type: 'number', when: trains(['adam']) },
  { key: 'beta2', path: ['optimizer', 'beta2'], type: 'number', when: trains(['adam']) },
  { key: 'schedule', path: ['schedule', 'name'], type: 'enum', options: 'schedules' },
  { key: 'step_size', path: ['schedule', 'step_size'], type: 'int', when: (v) => v.schedule === 'step' },
  { key: 'gamma', path: ['schedule', 'gamma'], type: 'number', when: (v) => v.schedule === 'step' },
  { key: 'batch_size', path: ['batch_size'], type: 'int' },
  { key: 'epochs', path: ['epochs'], type: 'int' },
  { key: 'l2', path: ['l2'], type: 'number' },
  { key: 'seed', path: ['seed'], type: 'int' },
  { key: 'train_subset', path: ['train_subset'], type: 'int' },
];

/** Each layer type's fields, in URL order. `fallback`: the value offered when the schema gives no default. */
export const LAYER_PROPS = {
  dense: [
    { key: 'units', type: 'int', fallback: 64 },
    { key: 'activation', type: 'enum', options: 'activations' },
    { key: 'dropout', type: 'number' },
  ],
  conv2d: [
    { key: 'filters', type: 'int' },
    { key: 'kernel', type: 'int' },
    { key: 'stride', type: 'int' },
    { key: 'padding', type: 'enum', options: 'paddings' },
    { key: 'activation', type: 'enum', options: 'activations' },
  ],
  maxpool2d: [{ key: 'size', type: 'int' }],
  avgpool2d: [{ key: 'size', type: 'int' }],
  batchnorm: [],
  flatten: [],
};

/** The part of the state that decides the network's shapes: what POST /api/architecture takes. */
export const ARCHITECTURE_KEYS = ['dataset', 'output_activation', 'loss', 'init'];

/** A value from a URL or a hand-edited config, as the declared type wants it; NaN when it is not a number. */
function coerce(value, type) {
  if (type === 'int' || type === 'number') {
    if (value === null || value === '' || value === undefined) return null;
    const n = typeof value === 'number' ? value : Number(value);
    return Number.isFinite(n) ? n : NaN;
  }
  return value === null || value === undefined ? '' : String(value);
}

const getPath = (obj, path) => path.reduce((at, part) => (at && typeof at === 'object' ? at[part] : undefined), obj);

function setPath(obj, path, value) {
  let at = obj;
  for (const part of path.slice(0, -1)) at = at[part] ??= {};
  at[path[path.length - 1]] = value;
}

/** Hash text: encodeURIComponent, but the separators that are legal in a fragment stay readable. */
const encode = (text) => encodeURIComponent(text).replace(/%2C/g, ',').replace(/%3A/g, ':').replace(/%40/g, '@');

export class State {
  /** `rules` from options.buildRules: {props: {key: rule}, layers: {type: {field: rule}}, maxLayers}. */
  constructor(rules) {
    this.rules = rules;
    this.values = {};
    this.layers = [];
    this.reset();
  }

  reset() {
    for (const p of PROPS) this.values[p.key] = coerce(this.rules.props[p.key].default, p.type);
    this.layers = [];
  }

  get(key) {
    return this.values[key];
  }

  set(key, value) {
    this.values[key] = value;
  }

  /** Props that matter for the current choices (momentum only for momentum/nesterov, ...). */
  relevant(prop) {
    return !prop.when || prop.when(this.values);
  }

  // ------------------------------------------------------------------------------------------ layers

  fieldsOf(type) {
    return LAYER_PROPS[type] || Object.keys(this.rules.layers[type] || {}).map((key) => ({ key, type: 'string' }));
  }

  /** A new layer of a type with the server's defaults; fields without one copy the previous layer of its type. */
  newLayer(type, at = this.layers.length) {
    const layer = { type };
    const before = this.layers.slice(0, at).reverse().find((l) => l.type === type);
    for (const f of this.fieldsOf(type)) {
      const rule = this.rules.layers[type]?.[f.key] || {};
      const value = rule.default ?? before?.[f.key] ?? f.fallback;
      layer[f.key] = coerce(value, f.type);
    }
    return layer;
  }

  addLayer(type) {
    this.layers.push(this.newLayer(type));
  }

  removeLayer(index) {
    this.layers.splice(index, 1);
  }

  moveLayer(index, by) {
    const to = index + by;
    if (to < 0 || to >= this.layers.length) return;
    [this.layers[index], this.layers[to]] = [this.layers[to], this.layers[index]];
  }

  setLayerField(index, key, value) {
    this.layers[index][key] = value;
  }

  /** A layer from a config or a URL; a missing "type" means dense, as on the server. */
  layerFrom(raw) {
    const type = typeof raw?.type === 'string' ? raw.type : 'dense';
    const layer = this.newLayer(type, 0);
    for (const f of this.fieldsOf(type)) if (raw?.[f.key] !== undefined) layer[f.key] = coerce(raw[f.key], f.type);
    return layer;
  }

  // ------------------------------------------------------------------------------------------ configs

  /** Fill from a (possibly partial or hand-edited) RunConfig; missing fields get their defaults. */
  fromConfig(config) {
    this.reset();
    for (const p of PROPS) {
      const value = getPath(config, p.path);
      if (value !== undefined) this.values[p.key] = coerce(value, p.type);
    }
    this.layers = Array.isArray(config?.layers) ? config.layers.map((l) => this.layerFrom(l)) : [];
  }

  /** The RunConfig to POST. A property that does not matter now and is invalid is sent as its default. */
  toConfig() {
    const config = {};
    for (const p of PROPS) {
      let value = this.values[p.key];
      if (!this.relevant(p) && checkValue(value, this.rules.props[p.key])) value = this.rules.props[p.key].default;
      setPath(config, p.path, value);
    }
    config.layers = this.layers.map((l) => ({ ...l }));
    return config;
  }

  /** What POST /api/architecture takes: the layers and the choices that shape the network. */
  architecture() {
    const body = { layers: this.layers.map((l) => ({ ...l })) };
    for (const key of ARCHITECTURE_KEYS) body[key] = this.values[key];
    return body;
  }

  // ------------------------------------------------------------------------------------------ the URL

  toHash() {
    const parts = [];
    for (const p of PROPS) {
      const v = this.values[p.key];
      if (typeof v === 'number' && !Number.isFinite(v)) continue; // unreadable input: the link keeps the default
      parts.push(`${p.key}=${encode(v === null ? '' : String(v))}`);
    }
    const layers = this.layers.map((l) =>
      [l.type, ...this.fieldsOf(l.type).map((f) => (l[f.key] === null || Number.isNaN(l[f.key]) ? '' : l[f.key]))]
        .map((t) => encode(String(t)))
        .join(':'),
    );
    parts.push(`layers=${layers.join(',')}`);
    return parts.join('&');
  }

  /**
   * Fill from URL parameters (a URLSearchParams of the hash). Returns false when they hold no settings (a bare
   * #run=<id>); throws when a link's settings cannot be read.
   */
  fromHash(params) {
    if (params.has('config')) {
      // the format before typed layers: the whole RunConfig as base64url JSON
      const config = JSON.parse(fromBase64Url(params.get('config')));
      if (!config || typeof config !== 'object' || Array.isArray(config)) throw new Error('not a config object');
      this.fromConfig(config);
      return true;
    }
    const known = PROPS.filter((p) => params.has(p.key));
    if (!known.length && !params.has('layers')) return false;
    this.reset();
    for (const p of known) this.values[p.key] = coerce(params.get(p.key), p.type);
    const text = params.get('layers') || '';
    this.layers = text
      .split(',')
      .filter(Boolean)
      .map((token) => {
        const [type, ...values] = token.split(':');
        const raw = { type };
        this.fieldsOf(type).forEach((f, i) => {
          if (values[i] !== undefined && values[i] !== '') raw[f.key] = values[i];
        });
        return this.layerFrom(raw);
      });
    return true;
  }

  // ------------------------------------------------------------------------------------------ checks

  /**
   * Every property against its rule from the server, as a Map of 'key' or 'layers.<i>.<field>' to a message.
   * Rules that tie layers together (shapes, cross-entropy with a linear output, size limits) are the
   * server's: POST /api/architecture answers them (architecture.js).
   */
  validate() {
    const errors = new Map();
    for (const p of PROPS) {
      if (!this.relevant(p)) continue;
      const message = checkValue(this.values[p.key], this.rules.props[p.key]);
      if (message) errors.set(p.key, message);
    }
    this.layers.forEach((layer, i) => {
      const rules = this.rules.layers[layer.type];
      if (!rules) {
        errors.set(`layers.${i}.type`, `unknown layer type “${layer.type}”`);
        return;
      }
      for (const f of this.fieldsOf(layer.type)) {
        const message = rules[f.key] ? checkValue(layer[f.key], rules[f.key]) : '';
        if (message) errors.set(`layers.${i}.${f.key}`, message);
      }
    });
    if (this.layers.length > this.rules.maxLayers) errors.set('layers', `at most ${this.rules.maxLayers} layers`);
    // a batch cannot be larger than the images trained on (the data set's size comes from the server)
    const trainSize = this.values.train_subset ?? this.rules.dataset?.train_size;
    const batch = this.values.batch_size;
    if (!errors.has('batch_size') && !errors.has('train_subset') && Number.isInteger(trainSize) && batch > trainSize) {
      errors.set('batch_size', `larger than the training set (${trainSize.toLocaleString('en-US')} images)`);
    }
    return errors;
  }
}
