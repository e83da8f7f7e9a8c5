// The run list (GET /api/runs) with open / download / delete, and the comparison overlay of checked runs.
// Re-rendering is skipped when nothing changed, and keyboard focus is put back after a re-render, so the
// periodic refresh never yanks focus away from someone tabbing through the list.

import { api } from './api.js';
import { CompareChart } from './compare.js';
import { describeDifferences } from './configdiff.js';
import { ACTIVE } from './runstates.js';
import { configSummary, datasetOf, trainingSummary } from './summary.js';
import { $, el, fmtDuration, fmtPct, fmtWhen } from './util.js';

export class RunsList {
  constructor({ datasets, onOpen, onDeleted }) {
    this.datasets = datasets;
    this.onOpen = onOpen;
    this.onDeleted = onDeleted;
    this.runs = [];
    this.signature = '';
    this.currentId = null;
    this.compare = new Set();
    this.details = new Map(); // id -> {epochs_done, state, history} for the comparison
    this.timer = 0;
    this.chart = new CompareChart($('chart-compare'));
    $('btn-refresh-runs').addEventListener('click', () => this.refresh());
    $('compare-metric').addEventListener('change', () => this.updateCompare());
    $('run-list').addEventListener('click', (e) => this.onClick(e));
    $('run-list').addEventListener('change', (e) => {
      const box = e.target.closest('input[data-role=compare]');
      if (!box) return;
      if (box.checked) this.compare.add(box.dataset.id);
      else this.compare.delete(box.dataset.id);
      this.updateCompare();
    });
  }

  setCurrent(id) {
    this.currentId = id;
    for (const li of $('run-list').children) li.classList.toggle('current', li.dataset.id === id);
  }

  async refresh() {
    clearTimeout(this.timer);
    try {
      this.runs = await api.runs();
      $('runs-error').textContent = '';
    } catch (error) {
      $('runs-error').textContent = `Could not load the runs: ${error.message}`;
    }
    this.render();
    // poll while something trains (a run started elsewhere, the default model); slowly otherwise
    const busy = this.runs.some((r) => ACTIVE.has(r.state));
    this.timer = setTimeout(() => this.refresh(), busy ? 3000 : 20000);
    return this.runs;
  }

  render() {
    const signature = JSON.stringify(this.runs);
    if (signature === this.signature) return;
    this.signature = signature;
    const list = $('run-list');
    const focused = document.activeElement?.closest?.('#run-list [data-role]');
    const refocus = focused ? [focused.dataset.id, focused.dataset.role] : null;
    for (const id of [...this.compare]) if (!this.runs.some((r) => r.id === id)) this.compare.delete(id);
    list.replaceChildren(...this.runs.map((run) => this.item(run)));
    $('runs-empty').hidden = this.runs.length > 0;
    if (refocus) list.querySelector(`[data-id="${CSS.escape(refocus[0])}"][data-role="${refocus[1]}"]`)?.focus();
    this.updateCompare();
  }

  item(run) {
    const label = run.name || run.id;
    const dataset = datasetOf(run.config, this.datasets);
    const acc = run.test_accuracy === null || run.test_accuracy === undefined ? '' : `test ${fmtPct(run.test_accuracy)}`;
    const meta = [
      acc,
      `${run.epochs_done}/${run.config.epochs} epochs`,
      run.train_seconds ? fmtDuration(run.train_seconds) : '',
      fmtWhen(run.created_at),
    ].filter(Boolean);
    const compareId = `cmp-${run.id}`;
    const actions = el(
      'div',
      { class: 'run-actions' },
      el('button', { type: 'button', dataset: { role: 'open', id: run.id }, 'aria-label': `Open run ${label}` }, 'Open'),
    );
    if (run.has_model) {
      actions.append(
        el(
          'a',
          {
            class: 'button secondary',
            href: api.modelUrl(run.id),
            download: `nnplay-${run.id}.npz`,
            dataset: { role: 'download', id: run.id },
            'aria-label': `Download the model of run ${label}`,
          },
          'Model ⤓',
        ),
      );
    }
    if (run.kind !== 'default' && run.controllable !== false) {
      actions.append(
        el(
          'button',
          { type: 'button', class: 'danger', dataset: { role: 'delete', id: run.id }, 'aria-label': `Delete run ${label}` },
          'Delete',
        ),
      );
    }
    return el(
      'li',
      { class: `run-item${run.id === this.currentId ? ' current' : ''}`, dataset: { id: run.id } },
      el(
        'div',
        { class: 'run-check' },
        el('input', {
          type: 'checkbox',
          id: compareId,
          dataset: { role: 'compare', id: run.id },
          checked: this.compare.has(run.id),
          disabled: run.epochs_done === 0,
        }),
        el('label', { for: compareId, class: 'compare-label' }, 'compare', el('span', { class: 'sr-only' }, ` ${label}`)),
      ),
      el(
        'div',
        { class: 'run-info' },
        el(
          'div',
          { class: 'run-line' },
          el('span', { class: 'run-name' }, label),
          run.kind === 'default' ? el('span', { class: 'badge' }, 'default model') : null,
          el('span', { class: `state state-${run.state}` }, run.state),
        ),
        el('div', { class: 'run-config' }, configSummary(run.config, dataset)),
        el('div', { class: 'run-meta muted' }, `${trainingSummary(run.config, dataset)}${meta.length ? ' · ' : ''}${meta.join(' · ')}`),
      ),
      actions,
    );
  }

  async onClick(event) {
    const button = event.target.closest('button[data-role]');
    if (!button) return;
    const id = button.dataset.id;
    const run = this.runs.find((r) => r.id === id);
    if (button.dataset.role === 'open') this.onOpen(id);
    if (button.dataset.role === 'delete') {
      const label = run?.name || id;
      if (!window.confirm(`Delete the run “${label}”? Its curves and its model are removed for good.`)) return;
      try {
        await api.deleteRun(id);
        this.compare.delete(id);
        this.details.delete(id);
        this.onDeleted(id);
      } catch (error) {
        $('runs-error').textContent = `Could not delete ${label}: ${error.message}`;
      }
      this.refresh();
    }
  }

  /** Fetch (cached) histories of the checked runs and overlay them. */
  async updateCompare() {
    const ids = this.runs.filter((r) => this.compare.has(r.id)).map((r) => r.id);
    const metric = $('compare-metric').value;
    $('compare-hint').textContent =
      ids.length >= 2
        ? `Comparing ${ids.length} runs.`
        : 'Tick “compare” on two or more runs to overlay their curves.';
    const picked = ids.map((id) => this.runs.find((r) => r.id === id));
    const differences = ids.length >= 2 ? describeDifferences(picked.map((r) => r.config)) : [];
    $('compare-diff').textContent =
      ids.length < 2
        ? ''
        : differences.length
          ? `Settings that differ (${picked.map((r) => r.name || r.id).join(' / ')}): ${differences.join(' · ')}`
          : 'Same settings in every compared run.';
    const series = [];
    for (const id of ids) {
      const run = this.runs.find((r) => r.id === id);
      let detail = this.details.get(id);
      if (!detail || detail.epochs_done !== run.epochs_done || detail.state !== run.state) {
        try {
          detail = await api.run(id);
        } catch {
          continue;
        }
        this.details.set(id, detail);
      }
      series.push({ label: run.name || run.id, history: detail.history || [] });
    }
    // a newer call may have finished first: only the latest selection draws
    const now = this.runs.filter((r) => this.compare.has(r.id)).map((r) => r.id);
    if (now.join() !== ids.join() || metric !== $('compare-metric').value) return;
    this.chart.set(series, metric);
  }
}
