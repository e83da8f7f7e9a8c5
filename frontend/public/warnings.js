// Warnings for choices that are legal but known to go badly. They never block Start: the server accepts these
// runs, and watching one go wrong is part of the lesson.

import { fmtInt } from './util.js';

/** `trainSize`: the images a run trains on when train_subset is empty (the data set's size). */
export function warningsFor(c, trainSize) {
  const w = [];
  const acts = c.layers.filter((l) => l.activation).map((l) => l.activation);
  const lr = c.learning_rate;
  const n = Number.isInteger(c.train_subset) ? c.train_subset : trainSize;
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
  if (Number.isInteger(c.batch_size) && c.batch_size > 0 && Number.isInteger(n)) {
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
