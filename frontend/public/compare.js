// Overlay of several runs' per-epoch curves (the run list's "compare").

import { ChartTable } from './charttables.js';
import { DASHES, PALETTE, axisStyle, epochValue, lossValue, makePlot, pctValue, zoomed } from './plots.js';

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
