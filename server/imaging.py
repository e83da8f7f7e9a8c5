"""Turn a drawing (canvas PNG data URL or a 28x28 pixel array) into the 28x28 image an MNIST network expects.

MNIST digits were made by scaling each NIST digit so its longer side is 20 px (anti-aliased, aspect ratio
kept) and then translating it inside a 28x28 field so that its centre of mass sits at the centre. Doing the
same to a user's drawing matters more for accuracy than anything the network does, so `mnist_preprocess`
follows that recipe.

Pillow decodes the PNG (it is the maintained decoder, and its decompression-bomb guard stays in force: this
module never changes `Image.MAX_IMAGE_PIXELS`); everything after decoding is whole-array NumPy work.
"""

from __future__ import annotations

import base64
import io
import math

import numpy as np
from PIL import Image

__all__ = ["ImageError", "decode_data_url", "mnist_preprocess", "pixels_to_array", "prepare"]

MNIST_SIDE = 28
DIGIT_SIDE = 20  # MNIST scaled every digit so that its longer side is 20 px.
CENTRE = 14.0  # target centre of mass, in pixel-index coordinates (rows/columns 0..27)
NOISE = 0.1  # ink below this is anti-aliasing fringe, JPEG-ish speckle or paper grain: not part of the digit
# Thinnest stroke kept, as a fraction of the digit's longer side, by stroke_width's estimate. MNIST's median is
# 0.089 (300 test digits); 0.14 read a 150 px digit drawn with an 8 px pen best (0.897 -> 0.967).
STROKE_FRACTION = 0.14
MAX_STROKE_STEPS = 40  # at most this many pixels eroded or grown per edge
MAX_STROKE_PIXELS = 2048 * 2048  # the whole canvas at its largest: cost stays a few ms
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_MAX_HEADER = 100  # "data:image/png;base64" is 21 characters; anything much longer is not a canvas export
# Larger drawings are box-reduced (in Pillow, on 8/16-bit pixels) to at most this side before any float
# array exists: the digit ends up 20 px tall, so 512 px keeps 25x that, and a 2048x2048 PNG then costs
# about 1/16 of the NumPy time and memory. The 280 px canvas is never reduced.
WORK_SIDE = 512


class ImageError(ValueError):
    """A rejected image. `str(e)` is safe to show to the user: it never contains their input."""

    status_code: int

    def __init__(self, message: str, status_code: int = 422) -> None:
        super().__init__(message)
        self.status_code = status_code


def decode_data_url(data_url: str, *, max_bytes: int, max_side: int) -> np.ndarray:
    """Decode a `data:image/png;base64,...` URL to a float32 (H, W) ink image in [0, 1] (1 = ink)."""
    raw = _png_bytes(data_url, max_bytes=max_bytes)
    try:
        # formats=["PNG"]: never let another (less hardened) plugin have a go at the bytes.
        with Image.open(io.BytesIO(raw), formats=["PNG"]) as im:
            # Image.open only read the header: refuse big images before a single pixel buffer exists.
            width, height = im.size
            if width > max_side or height > max_side:
                raise ImageError(f"The image is too large: at most {max_side}x{max_side} pixels.", 413)
            im.load()
            levels, full_scale = _drawing_channel(_reduced(im))
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):  # the warning, if made an error
        raise ImageError(f"The image is too large: at most {max_side}x{max_side} pixels.", 413) from None
    except Exception:
        # Whatever a hostile or broken file makes the decoder raise (OSError for truncation, SyntaxError for
        # broken chunks, ...) is the client's bad data, not a server fault.
        raise ImageError("The image could not be decoded: it is not a valid PNG (truncated or corrupt?).") from None
    return _ink(levels, full_scale)


def pixels_to_array(pixels: object) -> np.ndarray:
    """Validate a 28x28 array of numbers in [0, 1] or [0, 255] (ink = high); return float32 (28, 28), [0, 1].

    The array is taken as already MNIST-formatted: it is not re-centred or re-scaled.
    """
    shape_msg = f"'pixels' must be a {MNIST_SIDE}x{MNIST_SIDE} array (a list of {MNIST_SIDE} rows of numbers)."
    # Check the outer structure first (28 rows, cheap) so a huge or deeply nested payload never reaches NumPy.
    if isinstance(pixels, np.ndarray):
        if pixels.shape != (MNIST_SIDE, MNIST_SIDE):
            raise ImageError(shape_msg)
    elif not (
        isinstance(pixels, list | tuple)
        and len(pixels) == MNIST_SIDE
        and all(isinstance(row, list | tuple) and len(row) == MNIST_SIDE for row in pixels)
    ):
        raise ImageError(shape_msg)
    try:
        # No dtype forced: strings, None, nested lists or huge ints then show up as a non-numeric dtype or a
        # wrong shape instead of being silently converted (np.asarray(["1"], float) would accept "1").
        arr = np.asarray(pixels)
    except (ValueError, TypeError):  # ragged rows
        raise ImageError(shape_msg) from None
    if arr.shape != (MNIST_SIDE, MNIST_SIDE):
        raise ImageError(shape_msg)
    if arr.dtype.kind not in "iuf":  # booleans, strings, objects
        raise ImageError("'pixels' must contain only numbers.")
    values = arr.astype(np.float64)
    if not np.isfinite(values).all():
        raise ImageError("'pixels' must contain only finite numbers (no NaN or infinity).")
    if values.min() < 0 or values.max() > 255:
        raise ImageError("'pixels' values must lie in [0, 1] or [0, 255].")
    if values.max() > 1:  # 0-255 scale, like the MNIST files themselves
        values /= 255.0
    return values.astype(np.float32)


def mnist_preprocess(ink: np.ndarray) -> np.ndarray:
    """Crop, scale (longer side 20 px) and centre (centre of mass at (14, 14)) an ink image, as MNIST did."""
    try:
        img = np.asarray(ink, dtype=np.float32)
    except (ValueError, TypeError):
        raise ImageError("The image must be a 2-D array of numbers.") from None
    if img.ndim != 2 or img.size == 0:
        raise ImageError("The image must be a non-empty 2-D array.")
    if not np.isfinite(img).all():
        raise ImageError("The image contains non-finite values.")

    mask = img >= NOISE
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        raise ImageError("The drawing is empty: draw a digit first.")
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    crop = np.where(mask[box], np.minimum(img[box], 1.0), 0.0)
    # A faint pen (grey stroke, half-transparent brush) should still give full-strength ink, as in MNIST.
    crop = (crop / crop.max()).astype(np.float32)

    crop = normalise_stroke(crop)
    h, w = crop.shape
    scale = DIGIT_SIDE / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    # Exact area averaging: the grey-level anti-aliasing MNIST's size normalisation produced. Not Pillow's
    # BOX, which samples the box at pixel centres and can drop a thin line outright (Hypothesis found one);
    # LANCZOS rings, and once clipped that thins strokes. Two small matrix products, separable by axis.
    digit = _area_weights(h, new_h) @ crop @ _area_weights(w, new_w).T
    digit = np.clip(digit, 0.0, 1.0)

    # Integer shift putting the centre of mass at (14, 14), as MNIST did. Clamped so the digit stays whole:
    # only a very lopsided shape (mass piled at one end) ends up slightly off-centre instead of cut off.
    total = float(digit.sum())
    cy = float(np.arange(new_h) @ digit.sum(axis=1)) / total
    cx = float(np.arange(new_w) @ digit.sum(axis=0)) / total
    top = min(max(math.floor(CENTRE - cy + 0.5), 0), MNIST_SIDE - new_h)
    left = min(max(math.floor(CENTRE - cx + 0.5), 0), MNIST_SIDE - new_w)
    out = np.zeros((MNIST_SIDE, MNIST_SIDE), dtype=np.float32)
    out[top : top + new_h, left : left + new_w] = digit
    return out


def stroke_width(ink: np.ndarray) -> float:
    """Mean stroke width in pixels: for a stroke of width w and length L, the ink covers w*L pixels and its
    edge about 2*L, so w is about 2 * area / edge."""
    mask = ink >= 0.5
    area = int(mask.sum())
    if area == 0:
        return 0.0
    edge = int((mask & ~_min3(mask)).sum())
    return 2.0 * area / max(edge, 1)


def normalise_stroke(crop: np.ndarray) -> np.ndarray:
    """Grow strokes that are thinner than MNIST's, relative to the digit's size (a fine pen on a large digit).
    Thick strokes are left alone: eroding them was measured to hurt (benchmarks/bench_drawn.py: a 100 px
    digit with a 20 px pen fell from 0.95 to 0.82-0.91), because a pen too wide for its digit has already
    filled the loops and gaps that erosion cannot reopen. Small digits need the strokes themselves (polylines
    redrawn at MNIST's width), which the page does not send yet. The crop box is kept, so the scale is too."""
    if max(crop.shape) < 2 * MNIST_SIDE:  # already at MNIST's scale (a pixel array, a tiny drawing): as drawn
        return crop
    target = STROKE_FRACTION * max(crop.shape)
    width = stroke_width(crop)
    if width == 0.0 or crop.size > MAX_STROKE_PIXELS or width >= target:
        return crop
    out = crop
    for _ in range(min(round((target - width) / 2), MAX_STROKE_STEPS)):  # a 3x3 step widens each edge by 1 px
        out = _max3(out)
    return out


def _min3(a: np.ndarray) -> np.ndarray:
    """3x3 minimum filter (erosion), edges padded with the array's own border."""
    p = np.pad(a, 1, mode="edge")
    h, w = a.shape
    return np.minimum.reduce([p[i : i + h, j : j + w] for i in range(3) for j in range(3)])


def _max3(a: np.ndarray) -> np.ndarray:
    """3x3 maximum filter (dilation)."""
    p = np.pad(a, 1, mode="constant")
    h, w = a.shape
    return np.maximum.reduce([p[i : i + h, j : j + w] for i in range(3) for j in range(3)])


def prepare(image: str | None, pixels: object | None, *, max_bytes: int, max_side: int) -> np.ndarray:
    """Return the float32 (28, 28) network input in [0, 1] for exactly one of `image` / `pixels`."""
    if (image is None) == (pixels is None):
        raise ImageError("Send exactly one of 'image' (a PNG data URL) or 'pixels' (a 28x28 array).")
    if pixels is not None:
        array = pixels_to_array(pixels)
        if not (array >= NOISE).any():  # the same rule as for drawings: no ink, nothing to read
            raise ImageError("The drawing is empty: draw a digit first.")
        return array
    assert image is not None  # for mypy: guaranteed by the check above
    return mnist_preprocess(decode_data_url(image, max_bytes=max_bytes, max_side=max_side))


def _png_bytes(data_url: object, *, max_bytes: int) -> bytes:
    """The decoded bytes of a base64 PNG data URL, size-checked before and after decoding."""
    form = "The image must be a data URL: data:image/png;base64,..."
    if not isinstance(data_url, str):
        raise ImageError(form)
    header, comma, payload = data_url.partition(",")
    if not comma or len(header) > _MAX_HEADER or header[:5].lower() != "data:":
        raise ImageError(form)
    params = [p.strip().lower() for p in header[5:].split(";")]
    if params[-1] != "base64" or len(params) < 2:
        raise ImageError(form)
    if params[0] != "image/png":
        raise ImageError("Only PNG images (data:image/png) are accepted.")
    # Every 4 base64 characters carry 3 bytes: reject oversize input before spending time or memory on it.
    too_large = ImageError(f"The image is too large: at most {max_bytes} bytes.", 413)
    if len(payload) > 4 * math.ceil(max_bytes / 3):
        raise too_large
    try:
        raw = base64.b64decode(payload, validate=True)
    except ValueError:  # binascii.Error, or non-ASCII characters
        raise ImageError("The image data is not valid base64.") from None
    if len(raw) > max_bytes:
        raise too_large
    if not raw.startswith(_PNG_SIGNATURE):
        raise ImageError("The image is not a PNG.")
    return raw


def _reduced(im: Image.Image) -> Image.Image:
    """The image box-reduced by a whole factor so that its longer side is at most WORK_SIDE."""
    factor = math.ceil(max(im.size) / WORK_SIDE)
    if factor <= 1:
        return im
    if im.mode in ("P", "PA", "1") or (im.mode not in ("RGBA", "LA") and "transparency" in im.info):
        # averaging palette indices or a transparent colour would be meaningless: to real channels first
        im = im.convert("RGBA" if im.mode == "PA" or "transparency" in im.info else "L")
    elif im.mode.startswith("I;16"):
        im = im.convert("I")  # Pillow reduces 32-bit integers, not the packed 16-bit modes
    return im.reduce(factor)  # premultiplies alpha for RGBA and LA, like a proper resampling


def _drawing_channel(im: Image.Image) -> tuple[np.ndarray, int]:
    """The one integer channel that carries the drawing, and its full-scale value (255 or 65535)."""
    if im.mode.startswith("I"):  # 16-bit greyscale ("I;16"): keep the full precision
        return np.clip(np.asarray(im), 0, 65535), 65535
    if im.mode not in ("RGBA", "LA") and (im.mode == "PA" or "transparency" in im.info):
        # Via RGBA so a palette/greyscale/RGB tRNS transparent colour becomes a real alpha channel.
        im = im.convert("RGBA")
    if im.mode not in ("RGBA", "LA"):
        return np.asarray(im.convert("L")), 255
    alpha = np.asarray(im.getchannel("A"))
    if np.median(_border(alpha)) < 128:
        # Transparent canvas (the HTML canvas default): the strokes are what is opaque, whatever their colour,
        # so the ink is the alpha channel itself (anti-aliased edges included).
        return alpha, 255
    # Opaque background with some see-through pixels: those are background too, so blend them into it.
    grey = np.asarray(im.convert("L")).astype(np.uint32)
    bg = int(np.median(_border(grey)))
    return (grey * alpha + bg * (255 - alpha.astype(np.uint32)) + 127) // 255, 255


def _area_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) matrix: the fraction of each output pixel covered by each input pixel (rows sum to 1)."""
    step = n_in / n_out  # output pixel j spans [j * step, (j + 1) * step) in input coordinates
    lo = np.arange(n_out)[:, None] * step
    i = np.arange(n_in)[None, :]
    overlap = np.minimum(lo + step, i + 1) - np.maximum(lo, i)
    return (np.clip(overlap, 0.0, None) / step).astype(np.float32)


def _border(a: np.ndarray) -> np.ndarray:
    return np.concatenate((a[0], a[-1], a[:, 0], a[:, -1]))


def _ink(levels: np.ndarray, full_scale: int) -> np.ndarray:
    """Ink image in [0, 1], 1 = ink, whatever the colours: the background is the border's dominant value."""
    # The median of the border is its dominant value as long as the background holds most of the border.
    bg = float(np.median(_border(levels)))
    # Stretch so the background maps to 0 and the opposite extreme to 1: dark-on-light and light-on-dark
    # drawings give the same ink, and an off-white or grey background does not become faint ink everywhere.
    gain = -1.0 / bg if bg >= full_scale / 2 else 1.0 / (full_scale - bg)
    # In place, on the one float array returned: each fresh 280x280 float temporary costs as much as the op.
    ink = levels.astype(np.float32)
    ink -= np.float32(bg)
    ink *= np.float32(gain)
    return np.clip(ink, 0.0, 1.0, out=ink)
