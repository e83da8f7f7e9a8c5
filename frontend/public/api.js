// Every call to the server goes through here, so errors look the same everywhere: an ApiError whose message
// is the server's "detail" (a string, or pydantic's list of {loc, msg}) made readable.

export class ApiError extends Error {
  constructor(status, detail) {
    super(formatDetail(detail));
    this.status = status;
    this.detail = detail;
  }
}

/** "layers.0.units: Input should be a valid integer" from pydantic's list; strings pass through. */
export function formatDetail(detail) {
  if (typeof detail === 'string') return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((d) => {
        const where = (d.loc || []).filter((p) => p !== 'body').join('.');
        return where ? `${where}: ${d.msg}` : String(d.msg);
      })
      .join('; ');
  }
  return 'unexpected answer from the server';
}

async function request(method, path, body, contentType = 'application/json') {
  const init = { method, headers: { accept: 'application/json' } };
  if (body instanceof Blob) {
    init.headers['content-type'] = contentType;
    init.body = body;
  } else if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw new ApiError(0, 'the server cannot be reached; is it running?');
  }
  if (res.status === 204) return null;
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const detail = data && data.detail !== undefined ? data.detail : `${res.status} ${res.statusText}`;
    throw new ApiError(res.status, detail);
  }
  return data;
}

const runPath = (id) => `/api/runs/${encodeURIComponent(id)}`;

export const api = {
  health: () => request('GET', '/api/health'),
  options: () => request('GET', '/api/options'),
  presets: () => request('GET', '/api/presets'),
  datasets: () => request('GET', '/api/datasets'),
  architecture: (body) => request('POST', '/api/architecture', body),
  runs: () => request('GET', '/api/runs?limit=200'), // the newest 200; older pages: the Link header's next URL
  run: (id) => request('GET', runPath(id)),
  createRun: (config) => request('POST', '/api/runs', config),
  control: (id, action) => request('POST', `${runPath(id)}/${action}`),
  changeRun: (id, changes) => request('PATCH', runPath(id), changes),
  stepRun: (id, batches) => request('POST', `${runPath(id)}/step`, { batches }),
  deleteRun: (id) => request('DELETE', runPath(id)),
  playgroundPoints: (body) => request('POST', '/api/playground/points', body),
  models: () => request('GET', '/api/models'),
  /** `input`: {image: a PNG data URL} or {pixels: 28x28 numbers}. */
  predict: (input, model, explain = false) =>
    request('POST', '/api/predict', { ...input, explain, ...(model ? { model } : {}) }),
  /** One image of a data set's test split with its true label: {dataset, index, label, pixels}. */
  sample: (dataset, index) =>
    request('GET', `/api/datasets/${encodeURIComponent(dataset)}/samples/${encodeURIComponent(index)}`),
  modelUrl: (id) => `${runPath(id)}/model`,
  /** An .npz file (a File or Blob) as POST /api/models takes it: the raw bytes, the name in the query. */
  uploadModel: (file, name) =>
    request('POST', `/api/models?name=${encodeURIComponent(name)}`, file, 'application/octet-stream'),
};

/**
 * The live feed of one run. Reconnects with exponential backoff (0.5 s doubling to 10 s, jittered) when the
 * connection drops, or when the server closes with 1013 (we fell behind): every reconnect starts with a
 * snapshot, so the page simply redraws. It stops after the server's "end" message and the normal close that
 * follows, after close code 4404 (unknown run), or when close() is called.
 */
export class RunSocket {
  constructor(runId, { onMessage, onStatus }) {
    this.runId = runId;
    this.onMessage = onMessage;
    this.onStatus = onStatus || (() => {});
    this.attempt = 0;
    this.ended = false;
    this.closed = false;
    this.timer = 0;
    this.connect();
  }

  connect() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${scheme}//${location.host}/ws/runs/${encodeURIComponent(this.runId)}`);
    this.ws = ws;
    this.ended = false;
    ws.addEventListener('open', () => {
      this.attempt = 0;
      this.onStatus('live');
    });
    ws.addEventListener('message', (event) => {
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch {
        return; // the server only sends JSON; ignore anything else rather than crash the page
      }
      if (msg.type === 'end') this.ended = true;
      this.onMessage(msg);
    });
    ws.addEventListener('close', (event) => {
      if (this.ws !== ws || this.closed) return;
      if (event.code === 4404) return this.onStatus('unknown');
      // A normal close after "end" is the end of the story. A 1000 without "end" happens when the server
      // shuts down mid-run: reconnecting then fetches the run's final (interrupted) state.
      if (this.ended && event.code === 1000) return this.onStatus('done');
      const delay = Math.min(10000, 500 * 2 ** this.attempt) * (0.8 + Math.random() * 0.4);
      this.attempt += 1;
      this.onStatus('reconnecting', delay);
      this.timer = setTimeout(() => this.connect(), delay);
    });
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000);
  }
}
