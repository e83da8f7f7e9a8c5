// The live charts of the open run with uPlot (canvas, fast with thousands of points): loss per batch and per
// epoch, accuracy per epoch, and a marker wherever a setting was changed while it trained. Messages only update
// arrays and ask for a frame; setData happens at most once per animation frame.

import { ChartTable } from './charttables.js';
import { COLORS, axisStyle, epochValue, frameScheduler, lossValue, makePlot, pctValue } from './plots.js';

const MAX_BATCH_POINTS = 3000; // above this, neighbouring batch points are averaged in pairs
const NEAR_PX = 8; // the cursor this close to a change marker shows what changed

const NAMES = { learning_rate: 'learning rate', l1: 'L1', l2: 'L2', batch_size: 'batch size', momentum: 'momentum' };

/** "learning rate 0.001 → 0.01 (batch 812)": a change in words. */
export function describeChange(c) {
  const name = c.name.startsWith('dropout.') ? `layer ${Number(c.name.split('.')[1]) + 1} dropout` : NAMES[c.name] || c.name;
  const fmt = (v) => (Number.isInteger(v) ? String(v) : Number(v.toPrecision(3)).toString());
  return `${name} ${fmt(c.old)} → ${fmt(c.new)} (epoch ${c.epoch}, batch ${c.step})`;
}

/** A uPlot plugin: a dashed vertical line, numbered, at every change; hovering near one names it. */
function markers(charts) {
  return {
    hooks: {
      draw: [
        (u) => {
          const { ctx, bbox } = u;
          ctx.save();
          ctx.strokeStyle = '#7c3aed';
          ctx.fillStyle = '#7c3aed';
          ctx.setLineDash([4, 3]);
          ctx.font = `${Math.round(10 * devicePixelRatio)}px system-ui, sans-serif`;
          charts.changes.forEach((c, i) => {
            const x = Math.round(u.valToPos(c.at, 'x', true));
            if (x < bbox.left || x > bbox.left + bbox.width) return;
            ctx.beginPath();
            ctx.moveTo(x, bbox.top);
            ctx.lineTo(x, bbox.top + bbox.height);
            ctx.stroke();
            ctx.fillText(String(i + 1), x + 3, bbox.top + 12 * devicePixelRatio);
          });
          ctx.restore();
        },
      ],
      setCursor: [
        (u) => {
          const left = u.cursor.left;
          const near = left === null || left < 0 ? null : charts.changes.find((c) => Math.abs(u.valToPos(c.at, 'x') - left) <= NEAR_PX);
          charts.hover.textContent = near ? `Changed here: ${describeChange(near)}` : '';
        },
      ],
    },
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
    this.changes = []; // live changes: {at, name, old, new, epoch, step}
    this.hover = document.createElement('p');
    this.hover.className = 'change-hover';
    this.hover.setAttribute('aria-live', 'polite');
    lossEl.after(this.hover);
    this.schedule = frameScheduler(() => this.render());
    this.lossTable = new ChartTable(lossEl, 'Loss per epoch as a table');
    this.accTable = new ChartTable(accEl, 'Accuracy per epoch as a table');
    this.loss = this.makeLoss();
    this.acc = makePlot(
      accEl,
      {
        height: 220,
        plugins: [markers(this)],
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
        plugins: [markers(this)],
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
    this.changes = [];
    this.hover.textContent = '';
    this.schedule();
  }

  /** From a snapshot: the stored per-batch points and changes (so a reloaded page draws them too). */
  setJournal(progress, changes) {
    for (const m of progress || []) this.addProgress(m);
    this.changes = [...(changes || [])];
    this.schedule();
  }

  addChange(change) {
    if (!this.changes.some((c) => c.step === change.step && c.name === change.name)) this.changes.push(change);
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
    this.loss.plot.redraw(false, false); // the markers are drawn in the draw hook
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

