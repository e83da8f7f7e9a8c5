// "Why this digit": overlays of the server's attributions on the 28x28 image the network saw, a one-line
// reading of each, the top three digits, and the conv layers' feature maps of the drawing. Everything is
// computed by the server (the engine's own backward pass); this module only draws it.

import { $, b64ToBytes, el, fmtPct } from './util.js';

export const OVERLAYS = {
  none: 'Just the image the network saw.',
  saliency: 'Saliency: where a small change of ink would move the probability most (brighter = more).',
  integrated_gradients:
    'Integrated gradients: how much each pixel added (orange) or took away (blue) on the way from a blank image.',
  occlusion: 'Occlusion: how much the probability drops when a grey 4×4 patch hides each place (red = needed).',
};

/** Paint the digit in grey with one attribution map over it (orange/red positive, blue negative). */
export function drawOverlay(canvas, input, explanation, kind) {
  const side = input.length;
  canvas.width = side;
  canvas.height = side;
  const ctx = canvas.getContext('2d');
  const img = ctx.createImageData(side, side);
  const map = kind !== 'none' && explanation ? explanation[kind].flat() : null;
  const top = map ? Math.max(1e-12, ...map.map(Math.abs)) : 1;
  input.flat().forEach((ink, i) => {
    const grey = 255 - Math.round(Math.max(0, Math.min(1, ink)) * 200);
    let [r, g, b] = [grey, grey, grey];
    if (map) {
      const a = Math.max(-1, Math.min(1, map[i] / top));
      const w = Math.abs(a);
      const [cr, cg, cb] = a >= 0 ? [230, 90, 20] : [30, 100, 220];
      r = Math.round(grey * (1 - w) + cr * w);
      g = Math.round(grey * (1 - w) + cg * w);
      b = Math.round(grey * (1 - w) + cb * w);
    }
    img.data.set([r, g, b, 255], i * 4);
  });
  ctx.putImageData(img, 0, 0);
}

export function renderTop3(list, explanation) {
  const items = explanation?.top3 || [];
  list.replaceChildren(...items.map((t) => el('li', {}, `${t.digit}: ${fmtPct(t.probability, 1)}`)));
}

/** One small canvas per channel of every conv/pool layer's output for the drawing. */
export function renderFeatureMaps(container, featureMaps, heading = true) {
  if (!featureMaps || !featureMaps.length) {
    container.replaceChildren();
    container.hidden = true;
    return;
  }
  container.hidden = false;
  const blocks = featureMaps.map((layer) => {
    const { count, size, data } = layer.maps;
    const bytes = b64ToBytes(data);
    const canvases = [];
    for (let c = 0; c < count; c++) {
      const canvas = el('canvas', {
        class: 'pixelated fmap',
        width: size,
        height: size,
        role: 'img',
        'aria-label': `layer ${layer.layer + 1} ${layer.type}, channel ${c + 1}`,
      });
      const ctx = canvas.getContext('2d');
      const img = ctx.createImageData(size, size);
      for (let i = 0; i < size * size; i++) {
        const v = bytes[c * size * size + i];
        img.data.set([v, v, v, 255], i * 4);
      }
      ctx.putImageData(img, 0, 0);
      canvases.push(canvas);
    }
    return el('figure', { class: 'fmap-layer' }, el('figcaption', {}, `layer ${layer.layer + 1} · ${layer.type}`),
      el('div', { class: 'fmap-grid' }, ...canvases));
  });
  container.replaceChildren(...(heading ? [el('h4', {}, 'What the conv layers see in your drawing')] : []), ...blocks);
}

export function selectedOverlay() {
  return document.querySelector('input[name="overlay"]:checked')?.value || 'none';
}

export function describeOverlay() {
  $('explain-text').textContent = OVERLAYS[selectedOverlay()];
}
