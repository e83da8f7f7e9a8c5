// While a conv network trains: for every conv layer, all its kernels (per input channel; red positive, blue
// negative, as the first-layer filters) and the feature maps of one fixed test digit, redrawn each epoch.

import { drawFilters } from './panels.js';
import { renderFeatureMaps } from './explain.js';
import { $, el } from './util.js';

export function renderConvViews(container, conv, sample) {
  if (!conv || !conv.length) {
    container.replaceChildren();
    container.hidden = true;
    return;
  }
  container.hidden = false;
  const blocks = conv.map((view) => {
    const kernels = el('canvas', {
      class: 'pixelated filters',
      role: 'img',
      'aria-label': `layer ${view.layer + 1}: ${view.filters.count} kernels of ${view.filters.size}x${view.filters.size}`,
    });
    drawFilters(kernels, view.filters);
    const maps = el('div', { class: 'conv-maps' });
    renderFeatureMaps(maps, [{ layer: view.layer, type: 'conv2d', maps: view.maps }], false);
    const what = view.channels > 1 ? `${view.filters.count / view.channels} filters × ${view.channels} channels` : `${view.filters.count} filters`;
    return el(
      'figure',
      { class: 'conv-view' },
      el('figcaption', {}, `Layer ${view.layer + 1} · conv2d: ${what}, and their feature maps of the test digit`),
      kernels,
      maps,
    );
  });
  const about = sample ? ` (test digit #${sample.index}, a ${sample.label}; the network reads it as ${sample.predicted})` : '';
  container.replaceChildren(el('h3', {}, `Convolution layers${about}`), ...blocks);
}

export function clearConvViews() {
  renderConvViews($('conv-views'), null, null);
}
