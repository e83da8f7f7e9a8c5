// Line charts with uPlot (canvas, fast with thousands of points). Messages only update arrays and ask for a
// frame; the actual setData happens at most once per animation frame, so a burst of progress messages (e.g.
// after a reconnect) costs one redraw.

import { ChartTable } from './charttables.js';
import { canvasColours, onColoursChange } from './colours.js';

const COLORS = {
  batch: '#93b4e6',
  train: '#1d4ed8',
  test: '#c2410c',
};
const PALETTE = ['#1d4ed8', '#c2410c', '#047857', '#7c3aed', '#b91c1c', '#0e7490', '#a16207', '#be185d'];
const DASHES = [[], [6, 4], [2, 3], [10, 3, 2, 3]];
const MAX_BATCH_POINTS = 3000; // above this, neighbouring batch points are averaged in pairs

// functions, so that a switch to forced colours (high contrast) takes effect at the next redraw
const axisStyle = {
  stroke: () => canvasColours().text,
  grid: { stroke: () => canvasColours().grid, width: 1 },
  ticks: { stroke: () => canvasColours().tick, width: 1 },
  font: '11px system-ui, sans-serif',
  labelFont: '12px system-ui, sans-serif',
};

const plots = new Set();
onColoursChange(() => {
  for (const plot of plots) plot.redraw(false, true);
});

/** The newest value of a series: what its legend shows while the cursor is not over the chart. */
function lastValue(values) {
  for (let i = values.length - 1; i >= 0; i--) if (values[i] !== null && values[i] !== undefined) return values[i];
  return null;
}

/**
 * A legend value function that shows the newest value when no point is hovered (uPlot shows "–" then), so
 * the legend always says where the curves are now.
 */
const latest = (fmt) => (u, v, sidx, idx) => fmt(u, idx === null || idx === undefined ? lastValue(u.data[sidx] || []) : v);

/** A uPlot that follows its container's width. */
function makePlot(container, opts, data) {
  const width = () => Math.max(220, Math.floor(container.clientWidth));
  const series = opts.series.map((s) => ({ ...s, value: latest(s.value || ((u, v) => (v === null ? '–' : String(v)))) }));
  const plot = new window.uPlot({ ...opts, series, width: width() }, data, container);
  plots.add(plot);
  const observer = new ResizeObserver(() => {
    if (width() !== plot.width) plot.setSize({ width: width(), height: opts.height });
  });
  observer.observe(container);
  return {
    plot,
    setData(values) {
      plot.setData(values);
      if (plot.cursor.idx === null || plot.cursor.idx === undefined) plot.setLegend({ idx: null });
    },
    destroy() {
      observer.disconnect();
      plots.delete(plot);
      plot.destroy();
    },
  };
}

/** Calls fn once on the next animation frame, however many times it is scheduled before then. */
function frameScheduler(fn) {
  let pending = 0;
  return () => {
    if (!pending) {
      pending = requestAnimationFrame(() => {
        pending = 0;
        fn();
      });
    }
  };
}

/** The two live charts of the open run: loss (per batch and per epoch) and accuracy (per epoch). */
export class LiveCharts {
  constructor(lossEl, accEl) {
    this.lossEl = lossEl;
    this.accEl = accEl;
    this.logScale = false;
    this.totalEpochs = 1;
    this.bx = []; // batch-loss x (fractional epoch) and y
    this.by = [];
    this.epochs = []; // sorted by epoch: {x, train_loss, test_loss, train_acc, test_acc}
    this.schedule = frameScheduler(() => this.render());
    this.lossTable = new ChartTable(lossEl, 'Loss per epoch as a table');
    this.accTable = new ChartTable(accEl, 'Accuracy per epoch as a table');
    this.loss = this.makeLoss();
    this.acc = makePlot(
      accEl,
      {
        height: 220,
        scales: {
          x: { time: false, range: (u, min, max) => [0, Math.max(this.totalEpochs, max ?? 0, 1)] },
          y: { range: (u, min) => [min === null ? 0 : Math.max(0, Math.floor((min - 3) / 5) * 5), 100] },
        },
        axes: [
          { ...axisStyle, label: 'epoch', incrs: [1, 2, 5, 10, 20, 50, 100] },
          { ...axisStyle, label: 'accuracy %', size: 50 },
        ],
        series: [
          { label: 'epoch', value: epochValue },
          { label: 'train', stroke: COLORS.train, width: 2, points: { show: true, size: 6 }, value: pctValue },
          {
            label: 'test',
            stroke: COLORS.test,
            width: 2,
            dash: [6, 4],
            points: { show: true, size: 6 },
            value: pctValue,
          },
        ],
      },
      [[], [], []],
    );
  }

  makeLoss() {
    return makePlot(
      this.lossEl,
      {
        height: 220,
        scales: {
          x: { time: false, range: (u, min, max) => [0, Math.max(this.totalEpochs, max ?? 0, 1)] },
          y: this.logScale ? { distr: 3 } : { range: (u, min, max) => [0, max === null ? 1 : max * 1.05] },
        },
        axes: [
          { ...axisStyle, label: 'epoch', incrs: [1, 2, 5, 10, 20, 50, 100] },
          { ...axisStyle, label: 'loss', size: 50 },
        ],
        series: [
          { label: 'epoch', value: (u, v) => (v === null ? '–' : v.toFixed(2)) },
          // spanGaps: the batch and epoch series share one x array, each has nulls at the other's points
          { label: 'batch', stroke: COLORS.batch, width: 1, spanGaps: true, points: { show: false }, value: lossValue },
          {
            label: 'train',
            stroke: COLORS.train,
            width: 2,
            spanGaps: true,
            points: { show: true, size: 6 },
            value: lossValue,
          },
          {
            label: 'test',
            stroke: COLORS.test,
            width: 2,
            dash: [6, 4],
            spanGaps: true,
            points: { show: true, size: 6 },
            value: lossValue,
          },
        ],
      },
      this.lossData(),
    );
  }

  setLogScale(on) {
    this.logScale = on;
    this.loss.destroy();
    this.loss = this.makeLoss();
  }

  reset(totalEpochs = 1) {
    this.totalEpochs = totalEpochs;
    this.bx = [];
    this.by = [];
    this.epochs = [];
    this.schedule();
  }

  /** From a snapshot: the per-epoch curve is redrawn whole; batch points already seen are kept. */
  setHistory(history, totalEpochs) {
    this.totalEpochs = totalEpochs;
    this.epochs = history.map(epochPoint).sort((a, b) => a.x - b.x);
    this.schedule();
  }

  addEpoch(message) {
    const point = epochPoint(message);
    const i = this.epochs.findIndex((p) => p.x >= point.x);
    if (i === -1) this.epochs.push(point);
    else if (this.epochs[i].x === point.x) this.epochs[i] = point;
    else this.epochs.splice(i, 0, point);
    this.schedule();
  }

  addProgress(message) {
    const x = message.epoch - 1 + message.batch / message.batches;
    if (this.bx.length && x <= this.bx[this.bx.length - 1]) return; // a repeat after a reconnect
    this.bx.push(x);
    this.by.push(message.loss);
    if (this.bx.length > MAX_BATCH_POINTS) this.decimate();
    this.schedule();
  }

  /** Halve the batch points by averaging neighbours: the curve keeps its shape, the cost stays bounded. */
  decimate() {
    const bx = [];
    const by = [];
    for (let i = 0; i + 1 < this.bx.length; i += 2) {
      bx.push((this.bx[i] + this.bx[i + 1]) / 2);
      const a = this.by[i];
      const b = this.by[i + 1];
      by.push(a === null || b === null ? null : (a + b) / 2);
    }
    if (this.bx.length % 2) {
      bx.push(this.bx[this.bx.length - 1]);
      by.push(this.by[this.by.length - 1]);
    }
    this.bx = bx;
    this.by = by;
  }

  get pointCount() {
    return this.bx.length + this.epochs.length;
  }

  /** Merge the batch points and the epoch points into uPlot's one-x-array layout. */
  lossData() {
    const xs = [];
    const batch = [];
    const train = [];
    const test = [];
    const E = this.epochs;
    let i = 0;
    let j = 0;
    while (i < this.bx.length || j < E.length) {
      if (j >= E.length || (i < this.bx.length && this.bx[i] < E[j].x)) {
        xs.push(this.bx[i]);
        batch.push(this.by[i++]);
        train.push(null);
        test.push(null);
      } else {
        const same = i < this.bx.length && this.bx[i] === E[j].x;
        xs.push(E[j].x);
        batch.push(same ? this.by[i++] : null);
        train.push(E[j].train_loss);
        test.push(E[j].test_loss);
        j++;
      }
    }
    if (this.logScale) {
      // log scales cannot show 0 or negatives: those points become gaps
      for (const arr of [batch, train, test]) for (let k = 0; k < arr.length; k++) if (!(arr[k] > 0)) arr[k] = null;
    }
    return [xs, batch, train, test];
  }

  render() {
    this.loss.setData(this.lossData());
    const xs = this.epochs.map((p) => p.x);
    const pct = (v) => (v === null || v === undefined ? null : v * 100);
    this.acc.setData([xs, this.epochs.map((p) => pct(p.train_acc)), this.epochs.map((p) => pct(p.test_acc))]);
    const none = this.bx.length
      ? `No epoch finished yet; the per-batch loss (${this.bx.length} points) is drawn only.`
      : 'No epoch finished yet.';
    this.lossTable.set(
      ['epoch', 'train loss', 'test loss'],
      this.epochs.map((p) => [String(p.x), lossValue(null, p.train_loss), lossValue(null, p.test_loss)]),
      none,
    );
    this.accTable.set(
      ['epoch', 'train accuracy', 'test accuracy'],
      this.epochs.map((p) => [String(p.x), pctValue(null, pct(p.train_acc)), pctValue(null, pct(p.test_acc))]),
      'No epoch finished yet.',
    );
  }
}

function epochPoint(m) {
  return {
    x: m.epoch,
    train_loss: m.train_loss ?? null,
    test_loss: m.test_loss ?? null,
    train_acc: m.train_accuracy ?? null,
    test_acc: m.test_accuracy ?? null,
  };
}

function epochValue(u, v) {
  return v === null || v === undefined ? '–' : String(v);
}

function lossValue(u, v) {
  return v === null || v === undefined ? '–' : v.toPrecision(3);
}

function pctValue(u, v) {
  return v === null || v === undefined ? '–' : `${v.toFixed(2)}%`;
}

/**
 * A y range that fits the data with a little room (96% and 98% must not share one sliver of a 0-100 axis);
 * accuracy stays within 0-100 %, a loss above 0.
 */
export function zoomed(min, max, isPercent) {
  if (min === null || max === null) return isPercent ? [0, 100] : [0, 1];
  const pad = Math.max((max - min) * 0.1, isPercent ? 0.2 : Math.abs(max) * 0.02 || 0.01);
  let lo = min - pad;
  let hi = max + pad;
  if (isPercent) [lo, hi] = [Math.max(0, lo), Math.min(100, hi)];
  else lo = Math.max(0, lo);
  return [lo, hi];
}

/** Overlay of several runs' per-epoch curves (one metric at a time). */
export class CompareChart {
  constructor(container) {
    this.container = container;
    this.chart = null;
    this.table = new ChartTable(container, 'Compared curves as a table');
  }

  /** runs: [{label, history}] ; metric: a key of the epoch messages (test_accuracy, test_loss, ...). */
  set(runs, metric) {
    if (this.chart) {
      this.chart.destroy();
      this.chart = null;
    }
    const isAcc = metric.endsWith('accuracy');
    if (!runs.length) {
      this.table.set([], [], 'No runs compared.');
      return;
    }
    const epochs = [...new Set(runs.flatMap((r) => r.history.map((h) => h.epoch)))].sort((a, b) => a - b);
    const data = [epochs];
    for (const r of runs) {
      const byEpoch = new Map(r.history.map((h) => [h.epoch, h[metric]]));
      data.push(
        epochs.map((e) => {
          const v = byEpoch.get(e);
          return v === null || v === undefined ? null : isAcc ? v * 100 : v;
        }),
      );
    }
    this.chart = makePlot(
      this.container,
      {
        height: 240,
        scales: { x: { time: false }, y: { range: (u, min, max) => zoomed(min, max, isAcc) } },
        axes: [
          { ...axisStyle, label: 'epoch', incrs: [1, 2, 5, 10, 20, 50, 100] },
          { ...axisStyle, label: metric.replace('_', ' ') + (isAcc ? ' %' : ''), size: 50 },
        ],
        series: [
          { label: 'epoch', value: epochValue },
          ...runs.map((r, i) => ({
            label: r.label,
            stroke: PALETTE[i % PALETTE.length],
            dash: DASHES[Math.floor(i / PALETTE.length) % DASHES.length],
            width: 2,
            spanGaps: true,
            points: { show: true, size: 5 },
            value: isAcc ? pctValue : lossValue,
          })),
        ],
      },
      data,
    );
    const fmt = isAcc ? pctValue : lossValue;
    this.table.set(
      ['epoch', ...runs.map((r) => r.label)],
      epochs.map((e, k) => [String(e), ...data.slice(1).map((col) => fmt(null, col[k]))]),
    );
  }
}
