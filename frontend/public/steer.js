// Steering the open run while it trains: change the learning rate, L2, batch size or a layer's dropout (PATCH
// /api/runs/{id}; each change applies from the next batch and comes back as a "change" message that the charts
// mark), step a paused run a few batches at a time, and the list of changes made so far.

import { api } from './api.js';
import { describeChange } from './charts.js';
import { $, el } from './util.js';

const FIELDS = ['learning_rate', 'l2', 'batch_size']; // number inputs steer-<name>

export class SteerPanel {
  constructor(getRun) {
    this.getRun = getRun; // () => {run, state}
    $('steer-form').addEventListener('submit', (e) => {
      e.preventDefault();
      this.apply();
    });
    $('btn-step').addEventListener('click', () => this.step());
  }

  /** Enable what makes sense in this state; fill the inputs with the run's current values. */
  update(run, state, changes) {
    const mine = Boolean(run) && run.controllable !== false; // another owner's run: watch, do not steer
    const active = mine && (state === 'running' || state === 'paused' || state === 'pausing');
    $('steer-apply').disabled = !active;
    for (const name of FIELDS) $(`steer-${name}`).disabled = !active;
    $('btn-step').disabled = !(mine && state === 'paused');
    if (run && this.filledFor !== run.id) {
      this.filledFor = run.id;
      const current = currentValues(run.config, changes);
      for (const name of FIELDS) $(`steer-${name}`).value = String(current[name]);
    }
    this.list(changes);
  }

  list(changes) {
    const items = (changes || []).map((c) => el('li', {}, describeChange(c))); // the list numbers them, as the markers are
    $('change-list').replaceChildren(...items);
    $('change-list').hidden = !items.length;
  }

  async apply() {
    const { run } = this.getRun();
    if (!run) return;
    const current = currentValues(run.config, this.getRun().changes);
    const body = {};
    for (const name of FIELDS) {
      const raw = $(`steer-${name}`).value.trim();
      if (raw === '') continue;
      const value = Number(raw);
      if (value !== current[name]) body[name] = value;
    }
    const note = $('steer-note');
    if (!Object.keys(body).length) {
      note.textContent = 'Nothing changed: edit a value first.';
      return;
    }
    try {
      await api.changeRun(run.id, body);
      note.textContent = 'Applied from the next batch; the charts mark it.';
    } catch (error) {
      note.textContent = `Not applied: ${error.message}`;
    }
  }

  async step() {
    const { run } = this.getRun();
    if (!run) return;
    const batches = Number($('step-batches').value) || 1;
    try {
      await api.stepRun(run.id, batches);
      $('steer-note').textContent = `Training ${batches} batch${batches === 1 ? '' : 'es'}, then pausing again.`;
    } catch (error) {
      $('steer-note').textContent = `Cannot step: ${error.message}`;
    }
  }
}

/** The values in force: the run's config, then every change in order. */
export function currentValues(config, changes) {
  const values = { learning_rate: config.learning_rate, l2: config.l2, batch_size: config.batch_size };
  for (const c of changes || []) if (c.name in values) values[c.name] = c.new;
  return values;
}
