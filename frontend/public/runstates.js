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
  diverged:
    'The loss became infinite or NaN, so training stopped: lower the learning rate (or try Adam, He init, a ' +
    'smaller network).',
  interrupted: 'Use “Copy config to the form” and start it again.',
  failed: 'The server could not train this run.',
};
