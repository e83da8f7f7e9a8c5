// What every uPlot chart of the page shares: colours, axis style (forced colours aware), a plot that follows its
// container's width and whose legend shows the newest values, a once-per-frame scheduler, value formats.

import { canvasColours, onColoursChange } from './colours.js';

export const COLORS = {
  batch: '#93b4e6',
  train: '#1d4ed8',
  test: '#c2410c',
};
export const PALETTE = ['#1d4ed8', '#c2410c', '#047857', '#7c3aed', '#b91c1c', '#0e7490', '#a16207', '#be185d'];
export const DASHES = [[], [6, 4], [2, 3], [10, 3, 2, 3]];

// functions, so that a switch to forced colours (high contrast) takes effect at the next redraw
export const axisStyle = {
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
export function makePlot(container, opts, data) {
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
export function frameScheduler(fn) {
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

export function epochValue(u, v) {
  return v === null || v === undefined ? '–' : String(v);
}

export function lossValue(u, v) {
  return v === null || v === undefined ? '–' : v.toPrecision(3);
}

export function pctValue(u, v) {
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

