// Entry point: loads what the server offers, wires the four sections together, and keeps the URL in step
// with the form's State (state.js writes and reads the settings; &run=<id> names the open run) so a link
// reproduces an experiment.

import { api } from './api.js';
import { runName } from './configdiff.js';
import { DrawPad } from './draw.js';
import { BuildForm } from './form.js';
import { buildRules, loadSetup } from './options.js';
import { Playground } from './playground.js';
import { RunsList } from './runs.js';
import { ACTIVE } from './runstates.js';
import { LAYER_PROPS, PROPS, State } from './state.js';
import { $ } from './util.js';
import { RunWatcher } from './watch.js';

let form = null;
let watcher = null;
let runs = null;
let pad = null;
let hashTimer = 0;
let nameMax = 80;
let presetConfigs = []; // [{name, config}], each config normalised like the form's
let healthTimer = 0;
let healthAsked = 0; // only the newest health request schedules the next one
let playground = null;

const in2d = () => document.documentElement.dataset.mode === '2d';

function hashParams() {
  return new URLSearchParams(location.hash.replace(/^#/, ''));
}

/** replaceState, not location.hash: editing the form must not flood the back button with entries. */
function writeHash() {
  if (in2d()) {
    const hash = `#${playground.state.toHash()}`;
    if (hash !== location.hash) history.replaceState(null, '', hash);
    return;
  }
  let hash = `#${form.state.toHash()}`;
  if (watcher?.runId) hash += `&run=${encodeURIComponent(watcher.runId)}`;
  if (hash !== location.hash) history.replaceState(null, '', hash);
}

function scheduleHash() {
  clearTimeout(hashTimer);
  hashTimer = setTimeout(writeHash, 250);
}

/** Fill the form from the URL if it carries settings (either format); returns true when it did. */
function configFromHash() {
  if (hashParams().get('mode') === '2d') return false; // the playground's own settings (playground-state.js)
  try {
    if (!form.setFromHash(hashParams())) return false;
    $('copy-note').textContent = 'Settings loaded from the link.';
    return true;
  } catch {
    $('copy-note').textContent = 'The link’s settings could not be read; showing a preset instead.';
    return false;
  }
}

async function start() {
  const { config, valid } = form.update();
  if (!valid) {
    form.focusFirstError();
    return;
  }
  form.setBusy(true);
  try {
    // an edited preset is not that preset: name the run by what differs, and number repeats
    const name = runName(config, presetConfigs, runs.runs.map((r) => r.name)).slice(0, nameMax);
    const created = await api.createRun({ ...config, name });
    watcher.open(created.id);
    runs.refresh();
    pollHealth();
    // on a phone the panel is below the form: bring the live view into sight
    if (window.matchMedia('(max-width: 900px)').matches) $('train').scrollIntoView({ behavior: 'smooth' });
  } catch (error) {
    form.showServerError(error);
  } finally {
    form.setBusy(false);
  }
}

function showHealth(h) {
  const parts = [];
  parts.push(
    h.mnist === 'ready' ? 'MNIST ready' : h.mnist === 'fetching' ? 'MNIST downloading…' : 'MNIST missing on the server',
  );
  parts.push(
    {
      ready: 'default model ready',
      training: 'default model training…',
      missing: 'no default model',
      failed: 'default model failed',
    }[h.default_model] || `default model ${h.default_model}`,
  );
  if (h.runs_training) parts.push(`${h.runs_training} training`);
  if (h.runs_queued) parts.push(`${h.runs_queued} queued`);
  $('health').textContent = parts.join(' · ');
  $('health').classList.toggle('bad', h.mnist !== 'ready');
  form?.setCanStart(
    h.mnist === 'ready',
    h.mnist === 'ready' ? '' : 'Training needs MNIST on the server; it is not there yet (see the status above).',
  );
  pad?.setHealth(h);
}

async function pollHealth() {
  clearTimeout(healthTimer);
  const asked = ++healthAsked;
  let h = null;
  try {
    h = await api.health();
    if (asked !== healthAsked) return;
    showHealth(h);
  } catch (error) {
    if (asked !== healthAsked) return;
    $('health').textContent = `Server unreachable: ${error.message}`;
    $('health').classList.add('bad');
  }
  // every 2 s while anything changes (data fetch, default model, runs training or queued), so the counts stay
  // current; every 10 s otherwise, which also notices runs started from elsewhere (another tab, the API)
  const settled = h && h.mnist === 'ready' && h.default_model !== 'training' && !h.runs_training && !h.runs_queued;
  healthTimer = setTimeout(pollHealth, settled ? 10000 : 2000);
}

/**
 * What a first visit (no run in the link) opens, so the Train panel shows something alive: the run training the
 * default model, else any run still training or queued, else the default model's finished curves.
 */
function firstRun(health, list) {
  const has = (id) => id && list.some((r) => r.id === id);
  if (has(health.default_model_run)) return health.default_model_run;
  return (list.find((r) => ACTIVE.has(r.state)) || list.find((r) => r.kind === 'default' && r.epochs_done > 0))?.id;
}

async function main() {
  let setup;
  try {
    setup = await loadSetup();
  } catch (error) {
    $('health').textContent = `Cannot load the playground: ${error.message}. Reload the page to retry.`;
    $('health').classList.add('bad');
    return;
  }

  const { presets, datasets, health } = setup;
  playground = new Playground({ datasets, limits: setup.options.limits, onHash: scheduleHash });
  const rules = buildRules(setup, { props: PROPS, layerProps: LAYER_PROPS });
  const scratch = new State(rules);
  presetConfigs = presets.map((p) => {
    scratch.fromConfig(p.config);
    return { name: p.name, config: scratch.toConfig() };
  });
  nameMax = rules.props.name?.maxLength ?? 80;
  form = new BuildForm({ rules, presets, onSubmit: start, onChange: scheduleHash });
  if (!configFromHash()) form.setConfig((presets.find((p) => p.name === 'quick') || presets[0]).config);
  form.enable(true);

  watcher = new RunWatcher({
    datasets,
    onOpen: (id) => {
      runs?.setCurrent(id);
      scheduleHash();
    },
    onEnd: () => {
      runs.refresh();
      pollHealth();
      pad.refreshModels();
    },
    onUseConfig: (config) => {
      form.setConfig(config);
      $('copy-note').textContent = 'The run’s settings are in the form: change something and start again.';
      $('build').scrollIntoView({ behavior: 'smooth' });
    },
  });
  runs = new RunsList({
    datasets,
    onOpen: (id) => {
      watcher.open(id);
      $('train').scrollIntoView({ behavior: 'smooth' });
    },
    onDeleted: (id) => {
      watcher.forget(id);
      pad.refreshModels();
      scheduleHash();
    },
  });
  pad = new DrawPad({ testSize: datasets.find((d) => d.name === 'mnist')?.test_size || 10000 });
  showHealth(health);

  // measured for the tests and the README: navigation start -> the form can be used
  window.__nnplayReadyMs = Math.round(performance.now());
  // handles for the browser tests and for poking around in the devtools console
  window.__nnplay = { form, watcher, runs, pad, playground };
  document.documentElement.dataset.ready = 'true';

  $('btn-copy-link').addEventListener('click', async () => {
    writeHash();
    try {
      await navigator.clipboard.writeText(location.href);
      $('copy-note').textContent = 'Link copied: opening it fills the form with these settings.';
    } catch {
      $('copy-note').textContent = `Copy this link: ${location.href}`;
    }
  });
  // In-page links (nav, skip link) scroll and move focus without touching location.hash, which holds the
  // experiment (#config=...): following them must not lose the link to it.
  document.addEventListener('click', (event) => {
    const link = event.target.closest('a[href^="#"]');
    const target = link && document.getElementById(link.getAttribute('href').slice(1));
    if (!target) return;
    event.preventDefault();
    target.scrollIntoView({ behavior: 'smooth', block: 'start' });
    const heading = target.querySelector('h2') || target;
    heading.setAttribute('tabindex', '-1');
    heading.focus({ preventScroll: true });
  });
  setUpModes();
  window.addEventListener('hashchange', () => {
    if (hashParams().get('mode') === '2d') {
      // a 2-D link opened or edited by hand (not the page's own writing): its setup replaces the current one
      if (!in2d() || location.hash !== `#${playground.state.toHash()}`) setMode('2d', hashParams());
      return;
    }
    configFromHash();
    const run = hashParams().get('run');
    if (run && run !== watcher.runId) watcher.open(run);
  });

  const openRun = hashParams().get('run');
  await runs.refresh();
  const first = openRun && runs.runs.some((r) => r.id === openRun) ? openRun : firstRun(health, runs.runs);
  if (first) watcher.open(first);
  pollHealth();
}

/** MNIST or the 2-D playground: tabs (arrow keys move between them), the URL says which (#mode=2d&...). */
function setMode(mode, params = null) {
  const is2d = mode === '2d';
  if (is2d === in2d() && params === null) return;
  document.documentElement.dataset.mode = is2d ? '2d' : 'mnist';
  $('play').hidden = !is2d;
  $('mnist-mode').hidden = is2d;
  for (const [id, on] of [['tab-2d', is2d], ['tab-mnist', !is2d]]) {
    $(id).setAttribute('aria-selected', String(on));
    $(id).tabIndex = on ? 0 : -1;
  }
  if (is2d) playground.enter(params);
  else playground.leave();
  writeHash();
}

function setUpModes() {
  $('tab-mnist').addEventListener('click', () => setMode('mnist'));
  $('tab-2d').addEventListener('click', () => setMode('2d'));
  for (const id of ['tab-mnist', 'tab-2d']) {
    $(id).addEventListener('keydown', (event) => {
      if (!['ArrowLeft', 'ArrowRight'].includes(event.key)) return;
      const other = id === 'tab-2d' ? 'tab-mnist' : 'tab-2d';
      $(other).focus();
      $(other).click();
    });
  }
  document.documentElement.dataset.mode = 'mnist';
  if (hashParams().get('mode') === '2d') setMode('2d', hashParams());
}

main();
