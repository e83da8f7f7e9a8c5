// Is the network healthy? Per layer, the statistics the server measures a few times a second: the update-to-data
// ratio (log scale, with the 1e-3 guide line a healthy layer sits near), the gradient norm (log scale: a
// gradient that shrinks layer by layer has vanished), and the share of dead or saturated units, plus warnings in
// words when something is wrong, with what to try.

import { PALETTE, axisStyle, makePlot } from './plots.js';
import { $, el } from './util.js';

const MAX_POINTS = 600;

export class HealthCharts {
  constructor() {
    this.points = []; // health messages, in order
    this.config = null;
    this.ratio = null;
    this.grad = null;
  }

  reset(config) {
    this.points = [];
    this.config = config;
    for (const chart of [this.ratio, this.grad]) chart?.destroy();
    this.ratio = this.grad = null;
    $('health-warnings').replaceChildren();
    $('health-table').replaceChildren();
  }

  set(health, config) {
    this.reset(config);
    for (const m of health || []) this.points.push(m);
    this.render();
  }

  add(message) {
    this.points.push(message);
    if (this.points.length > MAX_POINTS) this.points = this.points.filter((_, i) => i % 2 === 0);
    this.render();
  }

  render() {
    const last = this.points[this.points.length - 1];
    if (!last) return;
    const layers = last.layers;
    const xs = this.points.map((m) => m.step);
    const series = (key) => layers.map((_, i) => this.points.map((m) => positive(m.layers[i]?.[key])));
    const labels = layers.map((l) => `layer ${l.layer + 1} ${l.type}`);
    if (!this.ratio || this.ratio.count !== layers.length) {
      this.ratio?.destroy();
      this.grad?.destroy();
      this.ratio = logChart($('chart-ratio'), 'update / weights', labels, true);
      this.grad = logChart($('chart-grad'), 'gradient norm', labels, false);
    }
    this.ratio.setData([xs, ...series('update_ratio')]);
    this.grad.setData([xs, ...series('grad_norm')]);
    $('health-table').replaceChildren(
      el('tr', {}, ...['layer', 'mean', 'std', 'dead', 'saturated', 'grad norm', 'update/weights'].map((h) => el('th', {}, h))),
      ...layers.map((l, i) =>
        el(
          'tr',
          {},
          el('td', {}, labels[i]),
          ...[l.mean, l.std].map((v) => el('td', {}, fmt(v))),
          ...[l.dead, l.saturated].map((v) => el('td', {}, `${Math.round((v ?? 0) * 100)}%`)),
          ...[l.grad_norm, l.update_ratio].map((v) => el('td', {}, sci(v))),
        ),
      ),
    );
    const words = warnings(layers, this.config);
    $('health-warnings').replaceChildren(...words.map((w) => el('li', {}, w)));
    $('health-ok').hidden = words.length > 0;
  }
}

/** What is wrong, in words, from the newest statistics; [] when nothing is. */
export function warnings(layers, config) {
  const out = [];
  const lr = config?.learning_rate;
  for (const l of layers) {
    const name = `layer ${l.layer + 1}`;
    if (l.activation === 'relu' && l.dead >= 0.4) {
      out.push(`${name}: ${Math.round(l.dead * 100)}% of ReLUs are dead (zero for every image): lower the learning rate or use leaky ReLU.`);
    }
    if ((l.activation === 'sigmoid' || l.activation === 'tanh') && l.saturated >= 0.4) {
      out.push(`${name}: ${Math.round(l.saturated * 100)}% of ${l.activation} outputs are saturated, where their slope is ~0: use Xavier/He initialisation, a lower learning rate, or ReLU.`);
    }
    if (l.update_ratio > 0.05) {
      out.push(`${name}: each step moves the weights by ${sci(l.update_ratio)} of their size (healthy is about 1e-3): the learning rate${lr ? ` (${lr})` : ''} is too high.`);
    } else if (l.update_ratio > 0 && l.update_ratio < 3e-4) {
      const how = l.update_ratio < 1e-5 ? 'it barely learns' : 'it learns slowly';
      out.push(`${name}: each step moves the weights by only ${sci(l.update_ratio)} of their size (healthy is about 1e-3): ${how}. Raise the learning rate, or use cross-entropy, whose gradients do not shrink with sigmoid outputs (unless a schedule is winding the rate down on purpose).`);
    }
  }
  const grads = layers.map((l) => l.grad_norm).filter((g) => g > 0);
  if (grads.length >= 2 && grads[0] < grads[grads.length - 1] * 1e-3) {
    out.push('Gradients vanish before layer 1 (a thousand times smaller than at the output): try He initialisation, ReLU, or fewer sigmoid layers.');
  }
  return out;
}

function logChart(container, label, labels, guide) {
  container.replaceChildren();
  const chart = makePlot(
    container,
    {
      height: 160,
      scales: { x: { time: false }, y: { distr: 3 } },
      axes: [{ ...axisStyle, label: 'batch' }, { ...axisStyle, label, size: 60 }],
      series: [
        { label: 'batch' },
        ...labels.map((text, i) => ({ label: text, stroke: PALETTE[i % PALETTE.length], width: 1.5, value: (u, v) => sci(v) })),
      ],
      plugins: guide ? [guideLine(1e-3)] : [],
    },
    [[], ...labels.map(() => [])],
  );
  chart.count = labels.length;
  return chart;
}

/** A horizontal dotted line at y (the healthy update-to-data ratio). */
function guideLine(y) {
  return {
    hooks: {
      draw: [
        (u) => {
          const pos = Math.round(u.valToPos(y, 'y', true));
          if (pos < u.bbox.top || pos > u.bbox.top + u.bbox.height) return;
          const ctx = u.ctx;
          ctx.save();
          ctx.strokeStyle = '#047857';
          ctx.setLineDash([2, 3]);
          ctx.beginPath();
          ctx.moveTo(u.bbox.left, pos);
          ctx.lineTo(u.bbox.left + u.bbox.width, pos);
          ctx.stroke();
          ctx.restore();
        },
      ],
    },
  };
}

const positive = (v) => (v > 0 ? v : null); // a log axis cannot show 0
const fmt = (v) => (v === null || v === undefined ? '–' : v.toFixed(3));
const sci = (v) => (v === null || v === undefined ? '–' : v === 0 ? '0' : v.toExponential(1));
