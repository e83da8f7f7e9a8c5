// What differs between run configs, in words: for the comparison ("Differs: learning rate, optimizer") and
// for naming a run started from an edited preset ("quick · lr 0.01") instead of giving it the preset's name.

/** The settings of a config as {key: text}: one entry per setting a user can change, the layers as one. */
export function settingsOf(config) {
  const c = config || {};
  const out = {
    dataset: c.dataset,
    layers: (c.layers || []).map(layerToken).join('-') || 'none',
    output_activation: c.output_activation,
    loss: c.loss,
    init: c.init,
    optimizer: c.optimizer?.name,
    learning_rate: c.learning_rate,
    schedule: c.schedule?.name,
    batch_size: c.batch_size,
    epochs: c.epochs,
    l2: c.l2,
    seed: c.seed,
    train_subset: c.train_subset ?? 'all',
  };
  if (['momentum', 'nesterov'].includes(c.optimizer?.name)) out.momentum = c.optimizer?.momentum;
  if (c.optimizer?.name === 'adam') [out.beta1, out.beta2] = [c.optimizer?.beta1, c.optimizer?.beta2];
  if (c.schedule?.name === 'step') [out.step_size, out.gamma] = [c.schedule?.step_size, c.schedule?.gamma];
  for (const [k, v] of Object.entries(out)) out[k] = v === undefined || v === null ? '–' : String(v);
  return out;
}

function layerToken(l) {
  switch (l.type ?? 'dense') {
    case 'dense':
      return `${l.units}${l.activation && l.activation !== 'relu' ? ` ${l.activation}` : ''}${l.dropout > 0 ? ` drop ${l.dropout}` : ''}`;
    case 'conv2d':
      return `conv${l.filters}@${l.kernel}`;
    case 'maxpool2d':
      return `max${l.size}`;
    case 'avgpool2d':
      return `avg${l.size}`;
    default:
      return l.type === 'batchnorm' ? 'bn' : l.type;
  }
}

export const SETTING_LABELS = {
  dataset: 'data set',
  layers: 'hidden layers',
  output_activation: 'output',
  loss: 'loss',
  init: 'initialisation',
  optimizer: 'optimizer',
  learning_rate: 'learning rate',
  schedule: 'schedule',
  batch_size: 'batch size',
  epochs: 'epochs',
  l2: 'L2',
  seed: 'seed',
  train_subset: 'training images',
  momentum: 'momentum',
  beta1: 'β1',
  beta2: 'β2',
  step_size: 'step every',
  gamma: 'γ',
};

/**
 * Keys whose value is not the same in every config. A setting that only some configs have (momentum, when one
 * run used Adam) is left out: the optimizer or schedule that differs already says so.
 */
export function differingKeys(configs) {
  const all = configs.map(settingsOf);
  const keys = [...new Set(all.flatMap((s) => Object.keys(s)))];
  return keys.filter((k) => all.every((s) => k in s) && new Set(all.map((s) => s[k])).size > 1);
}

/** "learning rate: 0.002 / 0.01 · optimizer: adam / momentum", the values in the order of `configs`. */
export function describeDifferences(configs) {
  const all = configs.map(settingsOf);
  return differingKeys(configs).map((k) => `${SETTING_LABELS[k] || k}: ${all.map((s) => s[k] ?? '–').join(' / ')}`);
}

/** A short token for one changed setting in a run name: "lr 0.01", "adam", "batch 32", "5 epochs". */
function nameToken(key, value) {
  switch (key) {
    case 'learning_rate':
      return `lr ${value}`;
    case 'optimizer':
    case 'loss':
    case 'schedule':
      return value;
    case 'batch_size':
      return `batch ${value}`;
    case 'epochs':
      return `${value} epochs`;
    case 'train_subset':
      return value === 'all' ? 'all images' : `${value} images`;
    case 'layers':
      return `layers ${value}`;
    case 'init':
      return `${value} init`;
    default:
      return `${SETTING_LABELS[key] || key} ${value}`;
  }
}

/**
 * The name for a run about to start. A name the user typed is kept. A run that still carries a preset's name
 * (or none) is named by what differs from that preset ("quick · lr 0.01"), and numbered when that name is
 * taken already ("quick #2"), so the run list does not fill up with identical "quick" rows.
 * `presets`: [{name, config}] with configs normalised like `config`; `taken`: names already in the list.
 */
export function runName(config, presets, taken) {
  const preset = presets.find((p) => p.name === config.name);
  if (config.name && !preset) return config.name;
  if (!preset) return config.name || '';
  const mine = settingsOf(config);
  const theirs = settingsOf(preset.config);
  const changed = Object.keys(mine).filter((k) => mine[k] !== (theirs[k] ?? '–'));
  let base = preset.name;
  if (changed.length > 3) base += ' · edited';
  else if (changed.length) base += ` · ${changed.map((k) => nameToken(k, mine[k])).join(', ')}`;
  const used = new Set(taken);
  if (!used.has(base)) return base;
  let n = 2;
  while (used.has(`${base} #${n}`)) n++;
  return `${base} #${n}`;
}
