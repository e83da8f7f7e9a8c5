// How much to trust a prediction. The network can only answer 0-9: for a scribble, a dot or a line it still
// names a digit, often with high "confidence". Two honest measures, both of the 28x28 image the network saw:
//
// - the entropy of its ten probabilities (0 bits: all on one digit; log2(10) = 3.32 bits: no idea), which says
//   how unsure the network is, not whether the image is a digit;
// - whether the image is like the digits it learned from at all. Measured on all 70,000 MNIST images (train and
//   test, as the network sees them): the share of pixels above 0.5 ("ink") lies between 1.9% and 39.8%
//   (0.1%-99.9% quantiles: 3.3%-30%); the ink's bounding box is at most 2.5 times as wide as it is tall (99.9%:
//   1.67) and at least 8 pixels tall (99.9%: 12). Outside these ranges no training digit looks like it.

export const MAX_BITS = Math.log2(10);

// bounds just outside every one of the 70,000 MNIST images (see above)
const INK_MIN = 0.019;
const INK_MAX = 0.33; // above the test set's largest (32.9%) and 99.9% of the training set
const WIDTH_PER_HEIGHT_MAX = 2.5;
const HEIGHT_MIN = 8;

export function entropyBits(probabilities) {
  let h = 0;
  for (const p of probabilities) if (p > 0) h -= p * Math.log2(p);
  return Math.max(0, h);
}

/** Share of pixels above 0.5, and the size of the box around pixels above 0.1 (as measured on MNIST). */
export function inkStats(input) {
  const side = input.length;
  let ink = 0;
  let [top, bottom, left, right] = [side, -1, side, -1];
  input.forEach((row, y) =>
    row.forEach((v, x) => {
      if (v > 0.5) ink++;
      if (v > 0.1) [top, bottom, left, right] = [Math.min(top, y), Math.max(bottom, y), Math.min(left, x), Math.max(right, x)];
    }),
  );
  const height = bottom >= top ? bottom - top + 1 : 0;
  const width = right >= left ? right - left + 1 : 0;
  return { ink: ink / (side * side), height, width };
}

/** Why the image is unlike every MNIST digit, in words; empty when it is within their range. */
export function unlikeMnist({ ink, height, width }) {
  const reasons = [];
  const pct = (x) => `${(x * 100).toFixed(0)}%`;
  if (ink > INK_MAX) reasons.push(`ink covers ${pct(ink)} of it, more than any MNIST digit (at most about 33%)`);
  else if (ink < INK_MIN) reasons.push(`ink covers only ${pct(ink)} of it, less than any MNIST digit (2% or more)`);
  if (height && width / height > WIDTH_PER_HEIGHT_MAX) {
    reasons.push(`it is ${(width / height).toFixed(1)} times as wide as tall (MNIST digits: at most 2.5)`);
  } else if (height < HEIGHT_MIN) {
    reasons.push(`it is only ${height} pixels tall (MNIST digits: 8 or more)`);
  }
  return reasons;
}

/** The lines shown under a prediction: how unsure the network is, and a warning when the input is no digit. */
export function doubtText(result) {
  const bits = entropyBits(result.probabilities);
  const unsure =
    `Uncertainty: ${bits.toFixed(2)} of at most ${MAX_BITS.toFixed(2)} bits ` +
    '(0: all probability on one digit; 3.32: all ten equally likely).';
  const reasons = unlikeMnist(inkStats(result.input));
  if (!reasons.length) return { text: unsure, far: false };
  const text =
    `This does not look like the handwritten digits the network learned from: ${reasons.join('; ')}. ` +
    'The network can only answer 0–9, so it names a digit anyway, and its confidence means little here. ' +
    unsure;
  return { text, far: true };
}
