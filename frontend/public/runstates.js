// Run states, defined once for the whole page. The server sends queued, running, paused, finished, stopped,
// diverged, failed and interrupted (server/messages.py); the page adds its own short-lived ones while a
// control request is on its way (pausing, resuming, stopping) and two of its own (idle, connecting).

/** A run in one of these states may still change: poll for it, offer stop. */
export const ACTIVE = new Set(['queued', 'running', 'paused', 'pausing', 'resuming', 'stopping']);

/** A run in one of these states is over for good. */
export const TERMINAL = new Set(['finished', 'stopped', 'diverged', 'failed', 'interrupted']);

/** Over, but not the way the user hoped: the server's own message is shown with the advice below. */
export const ENDED_BADLY = new Set(['stopped', 'diverged', 'failed', 'interrupted']);

/** Shown in red. */
export const FAILED = new Set(['diverged', 'failed', 'interrupted']);

export const CAN_PAUSE = new Set(['queued', 'running', 'resuming']);
export const CAN_RESUME = new Set(['paused', 'pausing']);

/** What the state badge says; a state not named here shows as its own name. */
export const LABELS = { connecting: 'connecting…' };

export const stateLabel = (state) => LABELS[state] ?? state;

// Advice per state; for the states that end a run badly, the server's message comes first ("Diverged: loss
// became inf at epoch 1, batch 6: ..."), then this advice.
export const HINTS = {
  idle: 'Start a run with the Build form (1), or open a past one from the run list (4).',
  queued: 'Waiting for a free training slot: it starts as soon as a running run ends.',
  pausing: 'Pausing after the current batch…',
  resuming: 'Resuming…',
  stopping: 'Stopping after the current batch…',
  paused: 'Paused between two batches. Resume to carry on; nothing is lost.',
  stopped: 'If at least one epoch finished, that model was kept for drawing.',
  // diverged: see divergedAdvice, which depends on the run
  interrupted: 'Use “Copy config to the form” and start it again.',
  failed: 'The server could not train this run.',
};

/**
 * Advice for a diverged run, after the server's own message: what to change depends on the optimizer it used
 * (no "try Adam" to an Adam run), and whether a model was kept depends on has_model.
 */
export function divergedAdvice(run) {
  const config = run?.config || {};
  const lr = config.learning_rate;
  const had = Number.isFinite(lr) ? ` (this run had ${lr})` : '';
  const change =
    config.optimizer?.name === 'adam'
      ? `Lower the learning rate: Adam usually wants 0.001–0.005${had}. He init or a smaller network can help too.`
      : `Lower the learning rate${had}, or try Adam, He init or a smaller network.`;
  const saidNoModel = /no model was kept/i.test(run?.message || '');
  const kept = run?.has_model
    ? ' The model of the last finished epoch was kept for drawing.'
    : saidNoModel
      ? ''
      : ' No model was kept for drawing.';
  return `The loss became infinite or far larger than at the start, so training stopped. ${change}${kept}`;
}

/** The progress line once a run is over: how it ended, not the last batch and time left it showed. */
export function endedProgress(state, run, lastProgress) {
  const total = run?.config?.epochs;
  const done = run?.epochs_done ?? 0;
  if (state === 'finished') return `finished · epoch ${done}/${total}`;
  const where =
    lastProgress && lastProgress.epoch > done
      ? ` during epoch ${lastProgress.epoch}/${lastProgress.epochs} (batch ${lastProgress.batch}/${lastProgress.batches})`
      : '';
  const complete = done ? `${done} of ${total} epochs complete` : 'no epoch complete';
  return `${state}${where} · ${complete}`;
}
