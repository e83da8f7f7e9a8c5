// The 2-D playground's pictures (playground.js): the orange .. white .. blue colour ramp, the server's byte
// images (neurons, output) and the input features' own pictures as ImageData, the output plot with the data
// points, and the loss curves with the marks of live changes.

export const EXTENT = 6;
const ORANGE = [245, 147, 34];
const WHITE = [232, 234, 235];
const BLUE = [8, 119, 189];

/** 0..255 -> orange .. white .. blue, as the playground colours -1 .. 0 .. +1. */
const RAMP = (() => {
  const table = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) {
    const t = i / 255;
    const [a, b, u] = t < 0.5 ? [ORANGE, WHITE, t * 2] : [WHITE, BLUE, (t - 0.5) * 2];
    for (let c = 0; c < 3; c++) table[i * 3 + c] = Math.round(a[c] + (b[c] - a[c]) * u);
  }
  return table;
})();

const colourOf = (v01) => {
  const i = Math.max(0, Math.min(255, Math.round(v01 * 255))) * 3;
  return `rgb(${RAMP[i]},${RAMP[i + 1]},${RAMP[i + 2]})`;
};

export function decode(b64) {
  const text = atob(b64);
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}

/** A grid x grid byte image into an ImageData through the colour ramp (optionally thresholded). */
export function toImage(bytes, grid, discretize = false) {
  const img = new ImageData(grid, grid);
  for (let i = 0; i < bytes.length; i++) {
    const v = discretize ? (bytes[i] >= 128 ? 255 : 0) : bytes[i];
    img.data[i * 4] = RAMP[v * 3];
    img.data[i * 4 + 1] = RAMP[v * 3 + 1];
    img.data[i * 4 + 2] = RAMP[v * 3 + 2];
    img.data[i * 4 + 3] = 255;
  }
  return img;
}

/** An input feature's picture, computed here: its value over the square, scaled to its own range. */
export function featureImage(name, grid = 32) {
  const f = {
    x1: (a) => a,
    x2: (a, b) => b,
    x1_sq: (a) => a * a,
    x2_sq: (a, b) => b * b,
    x1x2: (a, b) => a * b,
    sin_x1: (a) => Math.sin(a),
    sin_x2: (a, b) => Math.sin(b),
  }[name];
  const values = new Float32Array(grid * grid);
  let top = 1e-9;
  for (let r = 0; r < grid; r++) {
    for (let c = 0; c < grid; c++) {
      const x1 = -EXTENT + ((c + 0.5) * 2 * EXTENT) / grid;
      const x2 = EXTENT - ((r + 0.5) * 2 * EXTENT) / grid;
      const v = f(x1, x2);
      values[r * grid + c] = v;
      top = Math.max(top, Math.abs(v));
    }
  }
  const bytes = new Uint8Array(grid * grid);
  for (let i = 0; i < values.length; i++) bytes[i] = Math.round((values[i] / top + 1) * 127.5);
  return toImage(bytes, grid);
}

/** The output over the square (optionally thresholded) under the data points (test points: dark rims). */
export function drawPlot(canvas, { frame, points, discretize, showTest }) {
  const ctx = canvas.getContext('2d');
  const size = canvas.width;
  ctx.clearRect(0, 0, size, size);
  const m = frame;
  if (m) {
    const img = toImage(decode(m.output), m.grid, discretize);
    const off = new OffscreenCanvas(m.grid, m.grid);
    off.getContext('2d').putImageData(img, 0, 0);
    ctx.imageSmoothingEnabled = !discretize;
    ctx.globalAlpha = 0.85;
    ctx.drawImage(off, 0, 0, size, size);
    ctx.globalAlpha = 1;
  }
  if (!points) return;
  const regression = points.task === 'regression';
  const draw = (set, test) => {
    for (let k = 0; k < set.x1.length; k++) {
      const x = ((set.x1[k] + EXTENT) / (2 * EXTENT)) * size;
      const y = ((EXTENT - set.x2[k]) / (2 * EXTENT)) * size;
      ctx.beginPath();
      ctx.arc(x, y, 3, 0, 2 * Math.PI);
      ctx.fillStyle = colourOf(regression ? (set.label[k] + 1) / 2 : set.label[k]);
      ctx.fill();
      ctx.lineWidth = 1;
      ctx.strokeStyle = test ? '#111' : '#fff';
      ctx.stroke();
    }
  };
  draw(points.train, false);
  if (showTest) draw(points.test, true);
}

/** Train (grey) and test (dark) loss per step ([step, train, test] rows), a tick at each live change ([step, text]). */
export function drawCurve(canvas, history, marks) {
  const ctx = canvas.getContext('2d');
  const { width, height } = canvas;
  ctx.clearRect(0, 0, width, height);
  const h = history;
  if (!h.length) return;
  const maxStep = Math.max(1, h[h.length - 1][0]);
  const top = Math.max(1e-9, ...h.map((r) => Math.max(r[1] ?? 0, r[2] ?? 0)));
  const line = (k, colour) => {
    ctx.beginPath();
    h.forEach((r, i) => {
      const x = (r[0] / maxStep) * (width - 2) + 1;
      const y = height - 2 - ((r[k] ?? 0) / top) * (height - 4);
      if (i) ctx.lineTo(x, y);
      else ctx.moveTo(x, y);
    });
    ctx.strokeStyle = colour;
    ctx.lineWidth = 1.5;
    ctx.stroke();
  };
  for (const [step] of marks) {
    const x = (step / maxStep) * (width - 2) + 1;
    ctx.fillStyle = 'rgba(120,120,120,0.6)';
    ctx.fillRect(x, 0, 1, height);
  }
  line(2, '#111');
  line(1, '#999');
}
