// Shapes, parameter counts and multiply-adds of the network being built, from POST /api/architecture: the
// engine's own description, so the page never computes a size itself. Asked 150 ms after the last edit; an
// answer to an older question is dropped. A 422 names the layer that cannot work (or the limit exceeded) and
// is turned into {layer, message} items for the rows.

import { api } from './api.js';

const DEBOUNCE_MS = 150;

/**
 * The server's 422 detail as [{layer, message}]: `layer` is the index in the layer list, the number of layers
 * for the output layer, or null when no layer is named. Pydantic says "Value error, layer 2 (conv2d) needs ..."
 * with 1-based layer numbers; a field error has the index in its loc.
 */
export function explain(detail) {
  const items = Array.isArray(detail) ? detail : [{ loc: [], msg: String(detail) }];
  return items.map((d) => {
    const loc = (d.loc || []).filter((p) => p !== 'body');
    let message = String(d.msg || '').replace(/^Value error, /, '');
    if (loc[0] === 'layers' && Number.isInteger(loc[1])) {
      const field = loc.slice(2).filter((p) => typeof p === 'string').pop();
      return { layer: loc[1], message: field ? `${field}: ${message}` : message };
    }
    const named = /^layer (\d+)\b/i.exec(message);
    if (!named && loc.length) message = `${loc.join('.')}: ${message}`;
    return { layer: named ? Number(named[1]) - 1 : null, message };
  });
}

export class ArchitectureCheck {
  /** onResult({key, ok, data}) on an answer, ({key, ok: false, problems}) on a 422, ({key, pending}) at once. */
  constructor(onResult) {
    this.onResult = onResult;
    this.timer = 0;
    this.asked = 0; // sequence number of the latest question
    this.last = null; // the latest result, whatever it was
  }

  /** Ask about a network (the body of POST /api/architecture); nothing is sent when the answer is known. */
  request(body) {
    const key = JSON.stringify(body);
    clearTimeout(this.timer);
    if (this.last && this.last.key === key && !this.last.pending) {
      this.asked += 1; // an answer still on its way is about another network now
      this.onResult(this.last);
      return;
    }
    const seq = ++this.asked;
    this.publish({ key, pending: true, ok: false });
    this.timer = setTimeout(() => this.send(body, key, seq), DEBOUNCE_MS);
  }

  /** Forget the question: the form cannot ask (a layer field is not a number, say). */
  cancel() {
    clearTimeout(this.timer);
    this.asked += 1;
    this.publish(null);
  }

  async send(body, key, seq) {
    let result;
    try {
      result = { key, ok: true, data: await api.architecture(body) };
    } catch (error) {
      const problems =
        error.status === 422 ? explain(error.detail) : [{ layer: null, message: `could not ask the server: ${error.message}` }];
      result = { key, ok: false, problems, unreachable: error.status !== 422 };
    }
    if (seq === this.asked) this.publish(result);
  }

  publish(result) {
    this.last = result;
    this.onResult(result);
  }

  /** True when the server said this exact network cannot work: Start stays disabled. */
  refused(key) {
    return Boolean(this.last && this.last.key === key && !this.last.pending && !this.last.ok && !this.last.unreachable);
  }
}
