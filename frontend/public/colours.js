// Colours for what is drawn on canvases (chart axes, histogram labels). CSS colours do not reach a canvas, so in
// forced-colours mode (Windows high contrast) text drawn in fixed greys would stay dark on the forced dark
// background. There the system colours are used instead: CanvasText for text and lines, Canvas for the paper,
// GrayText for grid lines. `onColoursChange` lets the charts redraw when the mode changes.

const FORCED = window.matchMedia('(forced-colors: active)');

const NORMAL = { text: '#374151', grid: '#e5e7eb', tick: '#d1d5db', paper: 'rgba(255,255,255,0.85)', zero: '#d1d5db' };

let probe = null;

/** A system colour keyword as the rgb() the browser resolves it to now. */
function system(keyword) {
  if (!probe) {
    probe = document.createElement('span');
    probe.hidden = true;
    document.body.append(probe);
  }
  probe.style.color = keyword; // CSSOM, allowed by the CSP (no inline style attribute)
  return getComputedStyle(probe).color;
}

export const forcedColours = () => FORCED.matches;

/** {text, grid, tick, paper, zero}: the colours to draw with now. */
export function canvasColours() {
  if (!FORCED.matches) return NORMAL;
  const text = system('CanvasText');
  const grid = system('GrayText');
  return { text, grid, tick: grid, paper: system('Canvas'), zero: grid };
}

export function onColoursChange(fn) {
  FORCED.addEventListener('change', fn);
}
