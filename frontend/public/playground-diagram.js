// The 2-D playground's network diagram (playground.js): a column of feature buttons (each with its own picture),
// one column per hidden layer (+/- neuron buttons, one canvas per neuron), the output; an SVG path per weight,
// its width and colour by the weight; hovering a neuron or the output shows it large. The functions take the
// Playground `pg` and keep their canvases and links on it (pg.neuronCanvases, pg.outputCanvas, pg.links).

import { FEATURE_LABELS, MAX_NEURONS, PLAY_PROPS } from './playground-state.js';
import { decode, featureImage, toImage } from './playground-raster.js';
import { $, el } from './util.js';

const SVG = 'http://www.w3.org/2000/svg';

/** The diagram for the state's features and layers (then the last frame again, when it still fits). */
export function buildDiagram(pg) {
  const s = pg.state;
  const grid = pg.frame?.grid || 64;
  const columns = [];
  const features = s.get('features');
  const inputs = el('div', { class: 'col inputs' }, el('p', { class: 'col-title', text: 'Features' }));
  for (const name of PLAY_PROPS.find((p) => p.key === 'features').options) {
    const on = features.includes(name);
    const canvas = el('canvas', { width: 32, height: 32, class: 'node-img' });
    canvas.getContext('2d').putImageData(featureImage(name), 0, 0);
    const node = el(
      'button',
      {
        type: 'button',
        class: `node feature${on ? ' on' : ''}`,
        'aria-pressed': String(on),
        'aria-label': `Feature ${FEATURE_LABELS[name]}: ${on ? 'used' : 'not used'}`,
        dataset: { feature: name },
        onclick: () => {
          const next = on ? features.filter((f) => f !== name) : [...features, name];
          if (next.length) pg.change('features', next);
          else $('p-error').textContent = 'At least one feature is needed.';
        },
      },
      canvas,
      el('span', { class: 'node-label', text: FEATURE_LABELS[name] }),
    );
    inputs.append(node);
  }
  columns.push(inputs);
  pg.neuronCanvases = [];
  s.get('layers').forEach((units, i) => {
    const col = el('div', { class: 'col hidden-layer' });
    const head = el(
      'div',
      { class: 'col-head' },
      el('button', {
        type: 'button',
        class: 'mini',
        text: '+',
        'aria-label': `Add a neuron to layer ${i + 1}`,
        disabled: units >= MAX_NEURONS,
        onclick: () => pg.change('layers', s.get('layers').map((u, k) => (k === i ? Math.min(MAX_NEURONS, u + 1) : u))),
      }),
      el('button', {
        type: 'button',
        class: 'mini',
        text: '−',
        'aria-label': `Remove a neuron from layer ${i + 1}`,
        disabled: units <= 1,
        onclick: () => pg.change('layers', s.get('layers').map((u, k) => (k === i ? Math.max(1, u - 1) : u))),
      }),
    );
    col.append(head, el('p', { class: 'col-title', text: `${units} neuron${units > 1 ? 's' : ''}` }));
    const canvases = [];
    for (let j = 0; j < units; j++) {
      const canvas = el('canvas', { width: grid, height: grid, class: 'node-img' });
      const node = el('div', {
        class: 'node neuron',
        tabindex: '0',
        role: 'img',
        'aria-label': `Layer ${i + 1}, neuron ${j + 1}`,
        dataset: { layer: String(i), neuron: String(j) },
      });
      node.append(canvas);
      const show = () => showZoom(pg, { layer: i, neuron: j });
      node.addEventListener('mouseenter', show);
      node.addEventListener('focus', show);
      node.addEventListener('mouseleave', () => hideZoom(pg));
      node.addEventListener('blur', () => hideZoom(pg));
      col.append(node);
      canvases.push(canvas);
    }
    pg.neuronCanvases.push(canvases);
    columns.push(col);
  });
  const outCanvas = el('canvas', { width: grid, height: grid, class: 'node-img' });
  const outNode = el('div', { class: 'node neuron output', tabindex: '0', role: 'img', 'aria-label': 'Output' }, outCanvas);
  outNode.addEventListener('mouseenter', () => showZoom(pg, { output: true }));
  outNode.addEventListener('focus', () => showZoom(pg, { output: true }));
  outNode.addEventListener('mouseleave', () => hideZoom(pg));
  outNode.addEventListener('blur', () => hideZoom(pg));
  pg.outputCanvas = outCanvas;
  columns.push(el('div', { class: 'col out' }, el('p', { class: 'col-title', text: 'Output' }), outNode));
  $('p-columns').replaceChildren(...columns);
  const n = s.get('layers').length;
  $('p-net-info').textContent = `${n} hidden layer${n === 1 ? '' : 's'}, ${features.length} input${features.length === 1 ? '' : 's'}`;
  layoutLinks(pg);
  if (pg.frame && pg.frame.neurons.length === n) pg.onFrame(pg.frame);
}

/** One SVG path per weight, from each neuron to each neuron of the next layer (inputs: the used features). */
export function layoutLinks(pg) {
  const svg = $('p-links');
  const box = $('p-diagram').getBoundingClientRect();
  const cols = [...$('p-columns').children];
  if (!cols.length) return;
  const nodesOf = (col, sel) => [...col.querySelectorAll(sel)];
  const layers = [nodesOf(cols[0], '.node.feature.on'), ...cols.slice(1).map((c) => nodesOf(c, '.node.neuron'))];
  const scroll = $('p-diagram');
  const centre = (node, side) => {
    const r = node.getBoundingClientRect();
    return [(side > 0 ? r.right : r.left) - box.left + scroll.scrollLeft, r.top + r.height / 2 - box.top + scroll.scrollTop];
  };
  svg.setAttribute('width', String(scroll.scrollWidth));
  svg.setAttribute('height', String(scroll.scrollHeight));
  const paths = [];
  pg.links = [];
  for (let l = 0; l + 1 < layers.length; l++) {
    layers[l].forEach((from, i) => {
      layers[l + 1].forEach((to, j) => {
        const [x1, y1] = centre(from, 1);
        const [x2, y2] = centre(to, -1);
        const mid = (x1 + x2) / 2;
        const path = document.createElementNS(SVG, 'path');
        path.setAttribute('d', `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`);
        path.setAttribute('class', 'link');
        path.addEventListener('mouseenter', () => {
          const w = pg.frame?.weights?.[l]?.[i]?.[j];
          $('p-hover').textContent = `Weight ${l === 0 ? 'input' : `layer ${l}`} #${i + 1} → ${l + 1 === layers.length - 1 ? 'output' : `layer ${l + 1}`} #${j + 1}: ${w === undefined ? '–' : w.toFixed(4)}`;
        });
        paths.push(path);
        pg.links.push({ path, l, i, j });
      });
    });
  }
  svg.replaceChildren(...paths);
  updateLinks(pg);
}

export function updateLinks(pg) {
  const weights = pg.frame?.weights;
  if (!weights) return;
  // the output layer's two units: draw the link to unit 1 (class 1) for classification, unit 0 for regression
  const outputs = weights.length - 1;
  for (const link of pg.links) {
    const matrix = weights[link.l];
    if (!matrix) continue;
    const w = link.l === outputs ? matrix[link.i]?.[matrix[link.i].length - 1] : matrix[link.i]?.[link.j];
    if (w === undefined) continue;
    link.path.style.strokeWidth = String(Math.min(6, 0.5 + Math.abs(w) * 1.5));
    link.path.style.stroke = w >= 0 ? 'rgb(8,119,189)' : 'rgb(245,147,34)';
  }
}

export function showZoom(pg, which) {
  pg.hovered = which;
  const zoom = $('p-zoom');
  const m = pg.frame;
  if (!m) return;
  const b64 = which.output ? m.output : m.neurons[which.layer]?.[which.neuron];
  if (!b64) return;
  zoom.width = m.grid;
  zoom.height = m.grid;
  zoom.getContext('2d').putImageData(toImage(decode(b64), m.grid), 0, 0);
  zoom.hidden = false;
  $('p-hover').textContent = which.output ? 'Output' : `Layer ${which.layer + 1}, neuron ${which.neuron + 1}`;
}

export function hideZoom(pg) {
  pg.hovered = null;
  $('p-zoom').hidden = true;
}
