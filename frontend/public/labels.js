// Display texts for names the server defines: presentation only. The option lists themselves come from
// GET /api/options; a name without a text here shows as itself, so a new server option still appears.

const OPTION_LABELS = {
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
  same: 'same',
  valid: 'valid',
};

const LAYER_LABELS = {
  dense: 'Dense',
  conv2d: 'Convolution',
  maxpool2d: 'Max pool',
  avgpool2d: 'Average pool',
  batchnorm: 'Batch norm',
  flatten: 'Flatten',
};

const FIELD_LABELS = {
  units: 'Units',
  activation: 'Activation',
  dropout: 'Dropout',
  filters: 'Filters',
  kernel: 'Kernel',
  stride: 'Stride',
  padding: 'Padding',
  size: 'Pool size',
};

export const optionLabel = (value) => OPTION_LABELS[value] ?? value;
export const layerLabel = (type) => LAYER_LABELS[type] ?? type;
export const fieldLabel = (key) => FIELD_LABELS[key] ?? key.replace(/_/g, ' ');

/** "14×14×8" for an image, "128" for a vector. */
export const fmtShape = (shape) => (Array.isArray(shape) ? shape.join('×') : '–');
