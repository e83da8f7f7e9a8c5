// One-line descriptions of a run's config for the run list and the run title. The input size, number of
// classes and training-set size are the data set's, from GET /api/datasets.

import { fmtShape } from './labels.js';

/** The data set a config trains on, from GET /api/datasets' list. */
export const datasetOf = (config, datasets) => datasets.find((d) => d.name === config.dataset) || datasets[0];

const product = (shape) => (shape || []).reduce((a, b) => a * b, 1);

/** A short token per layer: 32 for a dense layer, conv8@5x5, max2, avg2, bn. */
function layerToken(l) {
  switch (l.type ?? 'dense') {
    case 'dense':
      return String(l.units);
    case 'conv2d':
      return `conv${l.filters ?? '?'}@${l.kernel ?? '?'}x${l.kernel ?? '?'}${l.stride > 1 ? `/${l.stride}` : ''}`;
    case 'maxpool2d':
      return `max${l.size ?? ''}`;
    case 'avgpool2d':
      return `avg${l.size ?? ''}`;
    case 'batchnorm':
      return 'bn';
    default:
      return l.type;
  }
}

/** "784-256-128-10 relu adam lr 0.002"; a network with image layers starts from the image: "28×28×1-conv8@5x5-…". */
export function configSummary(config, dataset) {
  const layers = config.layers || [];
  const imageLayers = layers.some((l) => (l.type ?? 'dense') !== 'dense');
  const input = dataset ? (imageLayers ? fmtShape(dataset.input_shape) : String(product(dataset.input_shape))) : 'in';
  const sizes = [input, ...layers.map(layerToken), dataset ? String(dataset.classes) : 'out'];
  const acts = [...new Set(layers.filter((l) => l.activation).map((l) => l.activation))];
  const parts = [sizes.join('-'), acts.length ? acts.join('/') : config.output_activation];
  parts.push(config.optimizer?.name ?? '?', `lr ${config.learning_rate}`);
  if (layers.some((l) => l.dropout > 0)) parts.push('dropout');
  return parts.join(' ');
}

function shortCount(n) {
  return n >= 1000 ? `${+(n / 1000).toFixed(1)}k` : String(n);
}

export function trainingSummary(config, dataset) {
  const all = dataset?.train_size;
  const n = config.train_subset ?? all;
  const parts = [`batch ${config.batch_size}`, `${config.epochs} epoch${config.epochs === 1 ? '' : 's'}`];
  if (n === undefined || n === null) parts.push('all images');
  else parts.push(all !== undefined && n >= all ? `all ${shortCount(n)} images` : `${shortCount(n)} images`);
  if (config.schedule && config.schedule.name !== 'constant') parts.push(`${config.schedule.name} schedule`);
  if (config.loss === 'mse') parts.push('MSE');
  return parts.join(' · ');
}
