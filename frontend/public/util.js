// Small helpers shared by the modules: DOM building that never parses HTML, number formatting, base64,
// reading number inputs.

/**
 * Create an element. Children that are strings become text nodes, so server or user text (run names, error
 * details) can never turn into markup. Attributes go through setAttribute: values are never parsed as HTML.
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children) if (child !== null && child !== undefined && child !== false) node.append(child);
  return node;
}

export const $ = (id) => document.getElementById(id);

export function fmtInt(n) {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '–';
}

/** 28.2k, 1.3M: for multiply-add counts, where the digits after the third say little. */
export function fmtCompact(n) {
  if (!Number.isFinite(n)) return '–';
  if (Math.abs(n) < 1e4) return fmtInt(n);
  const [div, unit] = Math.abs(n) >= 1e9 ? [1e9, 'G'] : Math.abs(n) >= 1e6 ? [1e6, 'M'] : [1e3, 'k'];
  return `${Number((n / div).toPrecision(3))}${unit}`;
}

/** A number input's value: null when empty, NaN when the browser or Number() cannot read it. */
export function readNumber(input) {
  if (input.validity && input.validity.badInput) return NaN;
  const raw = input.value.trim();
  if (raw === '') return null;
  const v = Number(raw);
  return Number.isFinite(v) ? v : NaN;
}

/** What an input shows for a state value: empty for null and for a number that is not one. */
export function showValue(v) {
  return v === null || v === undefined || (typeof v === 'number' && !Number.isFinite(v)) ? '' : String(v);
}

export function fmtPct(x, digits = 1) {
  return typeof x === 'number' && Number.isFinite(x) ? `${(x * 100).toFixed(digits)}%` : '–';
}

export function fmtLoss(x) {
  if (x === null || x === undefined) return '∞/NaN';
  return Math.abs(x) >= 1000 ? x.toExponential(2) : x.toPrecision(3);
}

/** A compact human number for axis labels and σ values (1.2e-5, 0.034, 12). */
export function fmtShort(x) {
  if (!Number.isFinite(x)) return '–';
  if (x === 0) return '0';
  const a = Math.abs(x);
  if (a >= 1e4 || a < 1e-3) return x.toExponential(1);
  return Number(x.toPrecision(2)).toString();
}

export function fmtDuration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return '–';
  if (seconds < 10) return `${seconds.toFixed(1)} s`;
  if (seconds < 60) return `${Math.round(seconds)} s`;
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds % 60);
  if (m < 60) return s ? `${m} min ${s} s` : `${m} min`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function fmtWhen(unixSeconds) {
  if (!unixSeconds) return '';
  const d = new Date(unixSeconds * 1000);
  const sameDay = d.toDateString() === new Date().toDateString();
  const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  return sameDay ? time : `${d.toLocaleDateString([], { month: 'short', day: 'numeric' })} ${time}`;
}

export function b64ToBytes(b64) {
  const bin = atob(b64 || '');
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return bytes;
}

/** Text from base64url of UTF-8 (links made before the readable hash format carry their config so). */
export function fromBase64Url(s) {
  let b64 = s.replace(/-/g, '+').replace(/_/g, '/');
  while (b64.length % 4) b64 += '=';
  return new TextDecoder('utf-8', { fatal: true }).decode(b64ToBytes(b64));
}

/** Size a canvas's backing store to its CSS box times the device pixel ratio; returns the CSS size. */
export function fitCanvas(canvas, cssHeight) {
  const dpr = window.devicePixelRatio || 1;
  const width = Math.max(40, Math.floor(canvas.clientWidth || canvas.parentElement?.clientWidth || 200));
  const height = cssHeight;
  if (canvas.width !== Math.round(width * dpr) || canvas.height !== Math.round(height * dpr)) {
    canvas.width = Math.round(width * dpr);
    canvas.height = Math.round(height * dpr);
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  return { ctx, width, height };
}
