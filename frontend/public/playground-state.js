// The 2-D playground's state, declared once like state.js's PROPS (after tensorflow/playground's state.ts):
// each property's key (the URL parameter and the #p-<key> control), type, default and choices. The whole setup
// lives in the URL hash: #mode=2d&dataset=spiral&...&layers=8,8&features=x1,x2

export const LEARNING_RATES = [0.00001, 0.0001, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10];
export const REG_RATES = [0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10];
export const FEATURES = ['x1', 'x2', 'x1_sq', 'x2_sq', 'x1x2', 'sin_x1', 'sin_x2'];
export const FEATURE_LABELS = {
  x1: 'X₁',
  x2: 'X₂',
  x1_sq: 'X₁²',
  x2_sq: 'X₂²',
  x1x2: 'X₁X₂',
  sin_x1: 'sin(X₁)',
  sin_x2: 'sin(X₂)',
};
export const MAX_LAYERS = 8;
export const MAX_NEURONS = 16;

export const PLAY_PROPS = [
  { key: 'problem', type: 'enum', options: ['classification', 'regression'], def: 'classification' },
  { key: 'dataset', type: 'enum', options: [], def: 'circle' }, // filled from GET /api/datasets
  { key: 'noise', type: 'number', def: 0, min: 0, max: 0.5 },
  { key: 'points', type: 'int', def: 500, min: 50, max: 5000 },
  { key: 'test_fraction', type: 'number', def: 0.5, min: 0.1, max: 0.9 },
  { key: 'data_seed', type: 'int', def: 0, min: 0, max: 2 ** 32 - 1 },
  { key: 'features', type: 'list', options: FEATURES, def: ['x1', 'x2'] },
  { key: 'layers', type: 'ints', def: [4, 2], min: 1, max: MAX_NEURONS },
  { key: 'activation', type: 'enum', options: ['tanh', 'relu', 'sigmoid', 'linear', 'leaky_relu'], def: 'tanh' },
  { key: 'output', type: 'enum', options: ['softmax', 'sigmoid'], def: 'softmax' },
  { key: 'optimizer', type: 'enum', options: ['sgd', 'momentum', 'adam'], def: 'sgd' },
  { key: 'learning_rate', type: 'enum-number', options: LEARNING_RATES, def: 0.03 },
  { key: 'regularization', type: 'enum', options: ['none', 'l1', 'l2'], def: 'none' },
  { key: 'reg_rate', type: 'enum-number', options: REG_RATES, def: 0 },
  { key: 'batch_size', type: 'int', def: 10, min: 1, max: 30 },
  { key: 'seed', type: 'int', def: 0, min: 0, max: 2 ** 32 - 1 },
  { key: 'show_test', type: 'bool', def: false },
  { key: 'discretize', type: 'bool', def: false },
];

/** Keys whose change needs a new network (a reset); the others change live or only the picture. */
export const LIVE_KEYS = ['learning_rate', 'regularization', 'reg_rate', 'show_test', 'discretize'];

function read(prop, text) {
  const clampNum = (n) => Math.min(prop.max ?? Infinity, Math.max(prop.min ?? -Infinity, n));
  switch (prop.type) {
    case 'int': {
      const n = Number.parseInt(text, 10);
      return Number.isFinite(n) ? clampNum(n) : prop.def;
    }
    case 'number': {
      const n = Number(text);
      return text !== '' && Number.isFinite(n) ? clampNum(n) : prop.def;
    }
    case 'enum-number': {
      const n = Number(text);
      return prop.options.includes(n) ? n : prop.def;
    }
    case 'enum':
      return !prop.options.length || prop.options.includes(text) ? text : prop.def;
    case 'bool':
      return text === 'true' || text === '1';
    case 'list': {
      const list = text.split(',').filter((f) => prop.options.includes(f));
      return list.length ? [...new Set(list)] : [...prop.def];
    }
    case 'ints': {
      const list = text
        .split(',')
        .filter(Boolean)
        .map((t) => Number.parseInt(t, 10))
        .filter(Number.isFinite)
        .map(clampNum);
      return list.slice(0, MAX_LAYERS);
    }
    default:
      return prop.def;
  }
}

export class PlayState {
  constructor() {
    this.values = {};
    for (const p of PLAY_PROPS) this.values[p.key] = Array.isArray(p.def) ? [...p.def] : p.def;
  }

  get(key) {
    return this.values[key];
  }

  set(key, value) {
    this.values[key] = value;
  }

  toHash() {
    const parts = ['mode=2d'];
    for (const p of PLAY_PROPS) {
      const v = this.values[p.key];
      parts.push(`${p.key}=${encodeURIComponent(Array.isArray(v) ? v.join(',') : String(v)).replace(/%2C/g, ',')}`);
    }
    return parts.join('&');
  }

  /** From URL parameters; properties missing from the link keep their defaults. */
  fromHash(params) {
    for (const p of PLAY_PROPS) if (params.has(p.key)) this.values[p.key] = read(p, params.get(p.key));
  }

  /** The RunConfig this state trains (paused at first: the page's play button resumes it). */
  toConfig(epochs) {
    const v = this.values;
    const regression = v.problem === 'regression';
    return {
      name: `2-D ${v.dataset}`,
      dataset: v.dataset,
      data: {
        noise: v.noise,
        points: v.points,
        test_fraction: v.test_fraction,
        features: v.features,
        seed: v.data_seed,
      },
      layers: v.layers.map((units) => ({ type: 'dense', units, activation: v.activation })),
      output_activation: regression ? 'linear' : v.output,
      loss: regression ? 'mse' : 'cross_entropy',
      init: v.activation === 'relu' || v.activation === 'leaky_relu' ? 'he' : 'xavier',
      optimizer: { name: v.optimizer },
      learning_rate: v.learning_rate,
      l1: v.regularization === 'l1' ? v.reg_rate : 0,
      l2: v.regularization === 'l2' ? v.reg_rate : 0,
      batch_size: v.batch_size,
      epochs,
      seed: v.seed,
      start_paused: true,
    };
  }
}
