// The "Train and watch" panel for one run: its WebSocket, the state line with plain-language hints, the
// progress bar, the charts and the per-epoch pictures. Everything is redrawn from the snapshot a (re)connect
// starts with, so a reload, a dropped connection or a server restart all land on the same picture.

import { api, RunSocket } from './api.js';
import { LiveCharts } from './charts.js';
import { clearConvViews, renderConvViews } from './convviews.js';
import { HealthCharts } from './health.js';
import { SteerPanel } from './steer.js';
import { Histograms } from './histograms.js';
import { drawFilters, renderConfusion, renderMisclassified } from './panels.js';
import {
  ACTIVE,
  CAN_PAUSE,
  CAN_RESUME,
  divergedAdvice,
  ENDED_BADLY,
  endedProgress,
  FAILED,
  HINTS,
  stateLabel,
  TERMINAL,
} from './runstates.js';
import { configSummary, datasetOf, trainingSummary } from './summary.js';
import { $, fmtDuration, fmtLoss, fmtPct } from './util.js';

export class RunWatcher {
  constructor({ datasets, onEnd, onUseConfig, onOpen }) {
    this.datasets = datasets;
    this.onEnd = onEnd;
    this.onUseConfig = onUseConfig;
    this.onOpen = onOpen || (() => {});
    this.run = null;
    this.socket = null;
    this.state = 'idle';
    this.charts = new LiveCharts($('chart-loss'), $('chart-acc'));
    this.histograms = new Histograms($('histograms'), $('hist-shared'));
    $('loss-log').addEventListener('change', (e) => this.charts.setLogScale(e.target.checked));
    this.changes = [];
    this.health = new HealthCharts();
    this.steer = new SteerPanel(() => ({ run: this.run, state: this.state, changes: this.changes }));
    $('btn-pause').addEventListener('click', () => this.control('pause'));
    $('btn-resume').addEventListener('click', () => this.control('resume'));
    $('btn-stop').addEventListener('click', () => this.control('stop'));
    $('btn-use-config').addEventListener('click', () => this.run && this.onUseConfig(this.run.config));
  }

  get runId() {
    return this.run?.id ?? this.pendingId ?? null;
  }

  open(runId) {
    this.close();
    this.pendingId = runId;
    this.run = null;
    this.lastEpoch = null;
    this.lastProgress = null;
    this.charts.reset();
    this.histograms.reset();
    this.changes = [];
    this.stepCount = 0;
    this.health.reset(null);
    this.showFilters(null);
    clearConvViews();
    renderConfusion($('confusion'), null);
    renderMisclassified($('misclassified'), null);
    $('run-title').textContent = 'Loading…';
    $('run-config').textContent = '';
    $('run-summary').textContent = '';
    $('chart-note').textContent = '';
    $('progress').value = 0;
    $('progress-text').textContent = '–';
    this.setState('connecting');
    this.socket = new RunSocket(runId, {
      onMessage: (msg) => this.handle(msg),
      onStatus: (status, delay) => this.connection(status, delay),
    });
    this.onOpen(runId);
  }

  close() {
    this.socket?.close();
    this.socket = null;
  }

  /** The open run was deleted from the list: show an empty panel. */
  forget(runId) {
    if (this.runId !== runId) return;
    this.close();
    this.run = null;
    this.pendingId = null;
    $('run-title').textContent = 'No run open';
    $('run-config').textContent = '';
    this.setState('idle');
    // after setState, which writes the idle hint: the notice is what the user needs to read now
    $('run-hint').textContent = 'That run was deleted. Start a new one, or open another from the run list (4).';
  }

  connection(status, delay) {
    const text = {
      live: '· live',
      reconnecting: `connection lost; reconnecting in ${Math.round((delay || 0) / 1000)} s…`,
      unknown: '',
      done: '',
    }[status];
    $('ws-status').textContent = text ?? '';
    if (status === 'unknown') {
      $('run-title').textContent = 'Run not found';
      $('run-hint').textContent = 'This run no longer exists on the server (it may have been deleted).';
      this.setState('idle');
    }
  }

  handle(msg) {
    switch (msg.type) {
      case 'snapshot':
        return this.snapshot(msg.run);
      case 'progress':
        return this.progress(msg);
      case 'epoch':
        return this.epoch(msg);
      case 'state':
        if (msg.step !== null && msg.step !== undefined) this.noteStep(msg.step);
        return this.setState(msg.state);
      case 'end':
        return this.end(msg);
      case 'error':
        $('run-hint').textContent = `Server: ${msg.detail}`;
        return undefined;
      case 'ack': // set and step answer with what they do, not a run state
        return ['pause', 'resume', 'stop'].includes(msg.action) ? this.setState(msg.state) : undefined;
      case 'change':
        this.changes.push(msg);
        this.charts.addChange(msg);
        return this.steer.update(this.run, this.state, this.changes);
      case 'health':
        this.noteStep(msg.step);
        return this.health.add(msg);
      default:
        return undefined; // unknown message types are ignored: newer servers may send more
    }
  }

  /** Batches trained so far. Only ever grows: a merged progress message may arrive after a newer state message. */
  noteStep(step) {
    this.stepCount = Math.max(this.stepCount || 0, step);
  }

  snapshot(run) {
    this.run = run;
    this.pendingId = null;
    $('run-title').textContent = run.name || run.id;
    const dataset = datasetOf(run.config, this.datasets);
    $('run-config').textContent = `${configSummary(run.config, dataset)} · ${trainingSummary(run.config, dataset)}`;
    const history = run.history || [];
    this.charts.setHistory(history, run.config.epochs);
    this.changes = [...(run.changes || [])];
    this.charts.setJournal(run.progress, run.changes);
    this.health.set(run.health, run.config);
    this.histograms.setHistory(history);
    const last = history[history.length - 1];
    if (last) {
      this.lastEpoch = last;
      renderConfusion($('confusion'), last.confusion);
      this.summary(last);
    }
    if (run.extras) {
      renderConvViews($('conv-views'), run.extras.conv, run.extras.sample);
      this.showFilters(run.extras.filters);
      renderMisclassified($('misclassified'), run.extras.misclassified);
    }
    const done = run.epochs_done / run.config.epochs;
    $('progress').value = run.state === 'finished' ? 1 : done;
    $('progress-text').textContent = `epoch ${run.epochs_done}/${run.config.epochs}`;
    this.setState(run.state, run.message);
  }

  progress(m) {
    if (m.step) this.noteStep(m.step);
    if (TERMINAL.has(this.state)) return; // a late report must not bring back "time left" to an ended run
    this.lastProgress = m;
    this.charts.addProgress(m);
    const done = (m.epoch - 1 + m.batch / m.batches) / m.epochs;
    $('progress').value = done;
    const eta = m.eta_s === null || m.eta_s === undefined ? '' : ` · about ${fmtDuration(m.eta_s)} left`;
    $('progress-text').textContent = `epoch ${m.epoch}/${m.epochs} · batch ${m.batch}/${m.batches}${eta}`;
    if (this.state === 'queued' || this.state === 'connecting') this.setState('running');
  }

  epoch(m) {
    this.lastEpoch = m;
    this.charts.addEpoch(m);
    this.histograms.addEpoch(m);
    renderConfusion($('confusion'), m.confusion);
    if (m.filters) this.showFilters(m.filters);
    if (m.conv) renderConvViews($('conv-views'), m.conv, m.sample);
    if (m.misclassified) renderMisclassified($('misclassified'), m.misclassified);
    if (this.run) this.run.epochs_done = m.epoch;
    $('progress').value = m.epoch / m.epochs;
    $('progress-text').textContent = `epoch ${m.epoch}/${m.epochs}`;
    this.summary(m);
  }

  summary(m) {
    $('run-summary').textContent =
      `After epoch ${m.epoch}/${m.epochs}: train loss ${fmtLoss(m.train_loss)}, ` +
      `test loss ${fmtLoss(m.test_loss)}, test accuracy ${fmtPct(m.test_accuracy, 2)}` +
      (Number.isFinite(m.learning_rate) ? `, learning rate ${Number(m.learning_rate.toPrecision(3))}` : '');
  }

  end(m) {
    if (this.run) {
      this.run.state = m.state;
      this.run.message = m.message;
      this.run.has_model = m.has_model;
    }
    if (m.state === 'finished') $('progress').value = 1;
    this.setState(m.state, m.message);
    this.onEnd?.(m);
  }

  setState(state, message) {
    this.state = state;
    const badge = $('run-state');
    badge.textContent = stateLabel(state);
    badge.className = `state state-${state}`;
    if (message !== undefined && this.run) this.run.message = message;
    let hint = state === 'diverged' ? divergedAdvice(this.run) : (HINTS[state] ?? '');
    if (ENDED_BADLY.has(state)) {
      let said = (this.run?.message || '').trim().replace(/\.+$/, '');
      // runs stored before the server said so claim weights were kept when no epoch finished
      if (this.run && !this.run.has_model) said = said.replace(/\s*The last finite weights were kept$/, '');
      const title = state[0].toUpperCase() + state.slice(1);
      hint = said ? `${title}: ${said}. ${hint}` : `${title}. ${hint}`;
    }
    if (state === 'finished' && this.lastEpoch) {
      const acc = this.lastEpoch.test_accuracy;
      hint =
        acc !== null && acc < 0.2
          ? `Finished, but it learned next to nothing: ${fmtPct(acc, 2)} right, where guessing gets 10%. Look at ` +
            'the gradient histograms, then try ReLU, cross-entropy, He init or another learning rate.'
          : `Finished: ${fmtPct(acc, 2)} of the test digits right. Draw one below to try it.`;
    }
    const mine = !this.run || this.run.controllable !== false;
    if (!mine && ACTIVE.has(state)) hint = `${hint} You are watching someone else's run: only its owner can pause, change or stop it.`.trim();
    $('run-hint').textContent = hint;
    $('run-hint').classList.toggle('bad', FAILED.has(state));
    if (TERMINAL.has(state) && this.run) {
      $('progress-text').textContent = endedProgress(state, this.run, this.lastProgress);
      this.noteCharts(state);
    }
    const has = Boolean(this.run);
    this.steer.update(this.run, state, this.changes);
    $('btn-pause').disabled = !has || !mine || !CAN_PAUSE.has(state);
    $('btn-resume').disabled = !has || !mine || !CAN_RESUME.has(state);
    $('btn-stop').disabled = !has || !mine || !ACTIVE.has(state) || state === 'stopping';
    $('btn-use-config').disabled = !has;
  }

  /**
   * When an ended run has nothing to draw, say why instead of leaving two empty charts: per-batch losses only
   * ever reach a page live (they are not stored), and only finished epochs are.
   */
  noteCharts(state) {
    const { bx, epochs } = this.charts;
    let note = '';
    if (!bx.length && !epochs.length) {
      note =
        `Nothing to draw: the run ${state === 'finished' ? 'ended' : state} before any epoch finished, and the ` +
        'per-batch losses are only sent live (about three a second), never stored: none reached this page ' +
        'before the end. Only finished epochs are kept for a later visit.';
    } else if (!epochs.length) {
      note =
        `The thin line is the per-batch loss this page received live, up to where the run ${state}. It is ` +
        'not stored: after a reload only finished epochs (none here) can be drawn.';
    }
    $('chart-note').textContent = note;
  }

  /** The first-layer grid, and how many of the layer's units it shows (the server sends at most 64). */
  showFilters(filters) {
    drawFilters($('filters'), filters);
    const first = this.run?.config?.layers?.[0];
    const type = first?.type ?? 'dense';
    const channels = datasetOf(this.run?.config || {}, this.datasets)?.input_shape?.[2] ?? 1;
    const total = !first ? null : type === 'dense' ? first.units : type === 'conv2d' ? first.filters * channels : null;
    const what = type === 'conv2d' ? (channels > 1 ? 'kernels' : 'filters') : 'units';
    const count = filters?.count;
    $('filters-note').textContent = !count
      ? ''
      : Number.isInteger(total) && count < total
        ? `(first ${count} of ${total} ${what})`
        : `(all ${count} ${what})`;
  }

  /**
   * Pause / resume / stop over REST (its errors come back as readable details). The answer is only a first
   * word: the WebSocket's "state" message confirms what the trainer actually did.
   */
  async control(action) {
    const id = this.runId;
    if (!id) return;
    const before = this.state;
    this.setState({ pause: 'pausing', resume: 'resuming', stop: 'stopping' }[action]);
    try {
      const answer = await api.control(id, action);
      // resume answers the old state ("paused") until the trainer wakes up; "pausing"/"stopping" are fine
      if (action !== 'resume' && this.state !== 'paused' && this.state !== 'running' && answer.state !== this.state) {
        if (['queued', 'paused', 'stopped'].includes(answer.state)) this.setState(answer.state);
      }
    } catch (error) {
      this.setState(before);
      $('run-hint').textContent = `Could not ${action}: ${error.message}`;
    }
  }
}
