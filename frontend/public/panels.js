// The per-epoch pictures: first-layer weights (dense units or conv filters) as little images, the test confusion matrix, and a strip of
// misclassified test digits. Images are written pixel by pixel into ImageData at their native size and
// scaled up by CSS with image-rendering: pixelated, which is sharp and cheap.

import { b64ToBytes, el } from './util.js';

const GAP = 1; // pixels between tiles in the filter grid

/** Diverging colour for a uint8 weight where 128 is zero: blue negative, near-white zero, red positive. */
function diverging(v) {
  const t = (v - 127.5) / 127.5;
  const w = [247, 247, 247];
  const end = t >= 0 ? [178, 24, 43] : [33, 102, 172];
  const a = Math.min(1, Math.abs(t));
  return [w[0] + (end[0] - w[0]) * a, w[1] + (end[1] - w[1]) * a, w[2] + (end[2] - w[2]) * a];
}
const LUT = Array.from({ length: 256 }, (_, v) => diverging(v));

export function drawFilters(canvas, filters) {
  if (!filters || !filters.count) {
    canvas.width = 28;
    canvas.height = 28;
    canvas.getContext('2d').clearRect(0, 0, 28, 28);
    canvas.classList.add('empty');
    return;
  }
  canvas.classList.remove('empty');
  const { count, size } = filters;
  const data = b64ToBytes(filters.data);
  const cols = Math.ceil(Math.sqrt(count));
  const rows = Math.ceil(count / cols);
  const W = cols * (size + GAP) - GAP;
  const H = rows * (size + GAP) - GAP;
  canvas.width = W;
  canvas.height = H;
  const ctx = canvas.getContext('2d');
  const img = ctx.createImageData(W, H);
  img.data.fill(255); // gaps white
  for (let f = 0; f < count; f++) {
    const ox = (f % cols) * (size + GAP);
    const oy = Math.floor(f / cols) * (size + GAP);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const [r, g, b] = LUT[data[f * size * size + y * size + x]];
        const o = ((oy + y) * W + ox + x) * 4;
        img.data[o] = r;
        img.data[o + 1] = g;
        img.data[o + 2] = b;
        img.data[o + 3] = 255;
      }
    }
  }
  ctx.putImageData(img, 0, 0);
  canvas.setAttribute('aria-label', `First-layer weights of ${count} units or filters as ${size} by ${size} images`);
}

/** Grey side x side image from uint8 (ink high) or 0..1 floats (ink = 1): dark ink on white paper. */
export function drawDigit(canvas, pixels, { offset = 0, scale = 255, side } = {}) {
  canvas.width = side;
  canvas.height = side;
  const ctx = canvas.getContext('2d');
  const img = ctx.createImageData(side, side);
  for (let i = 0; i < side * side; i++) {
    const v = 255 - Math.max(0, Math.min(255, pixels[offset + i] * scale));
    img.data[i * 4] = v;
    img.data[i * 4 + 1] = v;
    img.data[i * 4 + 2] = v;
    img.data[i * 4 + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}

/**
 * Confusion matrix as a table: the cell shade is the share of that true digit's row, blue on the diagonal
 * (right) and orange off it (mistakes, boosted so that a few percent is already visible).
 */
export function renderConfusion(table, matrix) {
  if (!matrix || !matrix.length) {
    table.replaceChildren();
    return;
  }
  const head = el(
    'thead',
    {},
    el('tr', {}, el('th', { scope: 'col', class: 'corner' }, 'pred→', el('br'), 'true↓'), ...matrix.map((_, j) => el('th', { scope: 'col' }, String(j)))),
  );
  const body = el('tbody');
  matrix.forEach((row, i) => {
    const total = row.reduce((a, b) => a + b, 0) || 1;
    const tr = el('tr', {}, el('th', { scope: 'row' }, String(i)));
    row.forEach((count, j) => {
      const share = count / total;
      const td = el('td', { title: `true ${i}, predicted ${j}: ${count} (${(share * 100).toFixed(1)}%)` }, String(count));
      // CSSOM assignments are allowed by the CSP (style-src 'self' only forbids inline style attributes)
      if (i === j) {
        td.style.backgroundColor = `rgba(29, 78, 216, ${(0.1 + 0.9 * share).toFixed(3)})`;
        if (share > 0.45) td.classList.add('dark');
      } else if (count > 0) {
        const a = Math.min(1, share * 5);
        td.style.backgroundColor = `rgba(234, 88, 12, ${(0.08 + 0.85 * a).toFixed(3)})`;
        if (a > 0.6) td.classList.add('dark');
      }
      if (i === j) td.classList.add('diag');
      tr.append(td);
    });
    body.append(tr);
  });
  table.replaceChildren(head, body);
}

export function renderMisclassified(container, misclassified) {
  const items = misclassified?.items || [];
  if (!items.length) {
    container.replaceChildren(el('p', { class: 'muted' }, misclassified ? 'No mistakes in the sample.' : 'None yet.'));
    return;
  }
  const data = b64ToBytes(misclassified.data);
  const side = Math.round(Math.sqrt(data.length / items.length)); // square images, one after another
  if (!side) {
    // not images (the 2-D sets' points): the mistakes as text
    const listed = items.slice(0, 12).map((i) => `#${i.index}: ${i.label}→${i.predicted}`);
    container.replaceChildren(el('p', { class: 'muted' }, `Misclassified test points: ${listed.join(', ')}`));
    return;
  }
  const tiles = items.map((item, k) => {
    const canvas = el('canvas', { class: 'pixelated digit', width: side, height: side });
    drawDigit(canvas, data, { offset: k * side * side, scale: 1, side });
    return el(
      'figure',
      { class: 'mis', 'aria-label': `test digit ${item.index}: true ${item.label}, predicted ${item.predicted}` },
      canvas,
      el('figcaption', {}, `${item.label}→${item.predicted}`),
    );
  });
  container.replaceChildren(...tiles);
}
