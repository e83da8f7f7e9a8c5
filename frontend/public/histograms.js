// TensorBoard-style "offset" histograms drawn on plain canvases: for every layer with weights (dense, conv2d,
// batchnorm), one panel each for weights, biases and weight gradients. Each epoch is one curve; older epochs sit higher and fainter, the
// newest is at the front. uPlot is not used here because these are ridge plots, not x/y series.

import { canvasColours, onColoursChange } from './colours.js';
import { el, fitCanvas, fmtShort } from './util.js';

const KINDS = [
  { key: 'weights', label: 'weights', color: [194, 65, 12] },
  { key: 'biases', label: 'biases', color: [4, 120, 87] },
  { key: 'gradients', label: 'gradients', color: [109, 40, 217] },
];
const MAX_SLICES = 24; // more epochs than this: an evenly spaced sample, always with the newest
const PANEL_HEIGHT = 140;

/** Mean and standard deviation of a histogram, from its bin centres. */
function spread(h) {
  let n = 0;
  let sum = 0;
  for (let i = 0; i < h.counts.length; i++) {
    const c = (h.edges[i] + h.edges[i + 1]) / 2;
    n += h.counts[i];
    sum += h.counts[i] * c;
  }
  if (!n) return { mean: 0, sd: 0 };
  const mean = sum / n;
  let v = 0;
  for (let i = 0; i < h.counts.length; i++) {
    const c = (h.edges[i] + h.edges[i + 1]) / 2;
    v += h.counts[i] * (c - mean) ** 2;
  }
  return { mean, sd: Math.sqrt(v / n) };
}

function sample(items, k) {
  if (items.length <= k) return items;
  const out = [];
  for (let i = 0; i < k; i++) out.push(items[Math.round((i * (items.length - 1)) / (k - 1))]);
  return out;
}

/** A histogram entry's layer index; messages from before typed layers may lack it: then its position. */
const layerIndex = (h, list) => (Number.isInteger(h.layer) ? h.layer : list.indexOf(h));
const layerOf = (list, layer) => list?.find((h) => layerIndex(h, list) === layer);

export class Histograms {
  constructor(container, sharedToggle) {
    this.container = container;
    this.shared = sharedToggle;
    this.byEpoch = new Map(); // epoch -> histograms list of that epoch
    this.panels = []; // [{layer, kind, canvas, caption}]: `layer` is the index in the layer list (output last)
    this.signature = '';
    this.frame = 0;
    sharedToggle.addEventListener('change', () => this.schedule());
    new ResizeObserver(() => this.schedule()).observe(container);
    onColoursChange(() => this.schedule());
  }

  reset() {
    this.byEpoch.clear();
    this.signature = '';
    this.container.replaceChildren(el('p', { class: 'muted' }, 'No epochs yet.'));
    this.panels = [];
  }

  setHistory(history) {
    this.byEpoch.clear();
    for (const m of history) if (m.histograms) this.byEpoch.set(m.epoch, m.histograms);
    this.schedule();
  }

  addEpoch(message) {
    if (message.histograms) this.byEpoch.set(message.epoch, message.histograms);
    this.schedule();
  }

  schedule() {
    if (!this.frame) {
      this.frame = requestAnimationFrame(() => {
        this.frame = 0;
        this.draw();
      });
    }
  }

  /**
   * One figure per layer x kind; rebuilt only when the layers change. Pooling layers have no weights and no
   * histograms, so layer numbers can skip: "Layer 1 · conv2d 5×5×1×8", "Layer 3 · conv2d ...".
   */
  build(layers) {
    this.panels = [];
    const rows = layers.map((h, i) => {
      const last = i === layers.length - 1;
      const layer = Number.isInteger(h.layer) ? h.layer : i;
      const title = `Layer ${layer + 1}${last ? ' (output)' : ''} · ${h.type || 'dense'} ${(h.shape || []).join('×')}`;
      const figures = KINDS.map((kind) => {
        const canvas = el('canvas', {
          class: 'hist-canvas',
          role: 'img',
          'aria-label': `${title}: ${kind.label} histogram per epoch`,
        });
        const caption = el('figcaption', {}, kind.label);
        this.panels.push({ layer, kind, canvas, caption });
        return el('figure', { class: 'hist-panel' }, canvas, caption);
      });
      return el('div', { class: 'hist-layer' }, el('h4', {}, title), el('div', { class: 'hist-row' }, ...figures));
    });
    this.container.replaceChildren(...rows);
  }

  draw() {
    const epochs = [...this.byEpoch.keys()].sort((a, b) => a - b);
    if (!epochs.length) return;
    const latest = this.byEpoch.get(epochs[epochs.length - 1]);
    const signature = latest.map((h) => `${h.layer}:${h.type}:${h.shape}`).join('|');
    if (signature !== this.signature) {
      this.build(latest);
      this.signature = signature;
    }
    const shown = sample(epochs, MAX_SLICES);
    // x-range per panel, or per kind across all layers when "same x-scale" is ticked (makes vanishing
    // gradients obvious: the early layers' curves collapse to a spike)
    const ranges = new Map();
    const key = (layer, kind) => (this.shared.checked ? kind : `${layer}:${kind}`);
    for (const e of shown) {
      for (const h of this.byEpoch.get(e)) {
        for (const kind of KINDS) {
          const edges = h[kind.key]?.edges;
          if (!edges || edges.length < 2) continue;
          const k = key(layerIndex(h, this.byEpoch.get(e)), kind.key);
          const r = ranges.get(k) || [Infinity, -Infinity];
          ranges.set(k, [Math.min(r[0], edges[0]), Math.max(r[1], edges[edges.length - 1])]);
        }
      }
    }
    for (const panel of this.panels) {
      const slices = shown
        .map((e) => ({ epoch: e, h: layerOf(this.byEpoch.get(e), panel.layer)?.[panel.kind.key] }))
        .filter((s) => s.h && s.h.counts?.length);
      const range = ranges.get(key(panel.layer, panel.kind.key)) || [-1, 1];
      this.drawPanel(panel, slices, range);
    }
  }

  drawPanel(panel, slices, [lo, hi]) {
    const { ctx, width, height } = fitCanvas(panel.canvas, PANEL_HEIGHT);
    ctx.clearRect(0, 0, width, height);
    if (!slices.length) return;
    if (!(hi > lo)) {
      lo -= 0.5;
      hi += 0.5;
    }
    const pad = { left: 6, right: 6, top: 14, bottom: 16 };
    const plotW = width - pad.left - pad.right;
    const n = slices.length;
    const peak = (height - pad.top - pad.bottom) * 0.5; // height of a slice's tallest bin
    const step = n > 1 ? (height - pad.top - pad.bottom - peak) / (n - 1) : 0;
    const X = (v) => pad.left + ((v - lo) / (hi - lo)) * plotW;
    const [r, g, b] = panel.kind.color;
    const colours = canvasColours();

    // zero line, so a histogram drifting off centre is visible
    if (lo < 0 && hi > 0) {
      ctx.strokeStyle = colours.zero;
      ctx.setLineDash([3, 3]);
      ctx.beginPath();
      ctx.moveTo(X(0), pad.top);
      ctx.lineTo(X(0), height - pad.bottom);
      ctx.stroke();
      ctx.setLineDash([]);
    }
    slices.forEach((s, i) => {
      const base = height - pad.bottom - (n - 1 - i) * step; // oldest (i = 0) highest
      const max = Math.max(1, ...s.h.counts);
      const alpha = n > 1 ? 0.25 + (0.75 * i) / (n - 1) : 1;
      ctx.beginPath();
      ctx.moveTo(X(s.h.edges[0]), base);
      for (let k = 0; k < s.h.counts.length; k++) {
        const c = (s.h.edges[k] + s.h.edges[k + 1]) / 2;
        ctx.lineTo(X(c), base - (s.h.counts[k] / max) * peak);
      }
      ctx.lineTo(X(s.h.edges[s.h.edges.length - 1]), base);
      ctx.closePath();
      // an opaque-ish fill hides the older curves behind: the ridge-plot look
      ctx.fillStyle = colours.paper;
      ctx.fill();
      ctx.fillStyle = `rgba(${r},${g},${b},${(alpha * 0.25).toFixed(3)})`;
      ctx.fill();
      ctx.strokeStyle = `rgba(${r},${g},${b},${alpha.toFixed(3)})`;
      ctx.lineWidth = i === n - 1 ? 1.6 : 1;
      ctx.stroke();
    });
    // labels: range at the bottom, epoch span and spread at the top
    ctx.fillStyle = colours.text;
    ctx.font = '10px system-ui, sans-serif';
    ctx.textBaseline = 'alphabetic';
    ctx.textAlign = 'left';
    ctx.fillText(fmtShort(lo), pad.left, height - 4);
    ctx.textAlign = 'right';
    ctx.fillText(fmtShort(hi), width - pad.right, height - 4);
    const newest = slices[n - 1];
    const { sd } = spread(newest.h);
    ctx.fillText(`σ ${fmtShort(sd)}`, width - pad.right, 10);
    ctx.textAlign = 'left';
    const span = n > 1 ? `${slices[0].epoch}–${newest.epoch}` : `${newest.epoch}`;
    ctx.fillText(width < 150 ? `ep ${span}` : `epoch${n > 1 ? 's' : ''} ${span}`, pad.left, 10);
    panel.caption.textContent = `${panel.kind.label} · σ ${fmtShort(sd)}`;
  }
}
