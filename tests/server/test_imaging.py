"""Tests for server.imaging: real PNGs built with Pillow, hand-crafted hostile ones, Hypothesis properties."""

from __future__ import annotations

import base64
import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image, ImageDraw, ImageFile

from server.imaging import ImageError, decode_data_url, mnist_preprocess, pixels_to_array, prepare

MAX_BYTES = 1_000_000
MAX_SIDE = 2048
LIMITS = {"max_bytes": MAX_BYTES, "max_side": MAX_SIDE}


# ---------------------------------------------------------------------------------------------- helpers


def png_bytes(im: Image.Image, **save: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG", **save)
    return buf.getvalue()


def data_url(raw: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(raw).decode("ascii")


def digit_mask(size: int = 280, offset: tuple[int, int] = (0, 0)) -> np.ndarray:
    """A boolean "2"-ish shape (arc, diagonal, base line) drawn with a thick pen, like a canvas stroke."""
    im = Image.new("L", (size, size), 0)
    d = ImageDraw.Draw(im)
    dx, dy = offset
    d.arc((80 + dx, 50 + dy, 200 + dx, 150 + dy), start=180, end=40, fill=255, width=18)
    d.line((190 + dx, 120 + dy, 85 + dx, 230 + dy), fill=255, width=18)
    d.line((85 + dx, 230 + dy, 205 + dx, 230 + dy), fill=255, width=18)
    return np.asarray(im) > 127


def canvas_png(mask: np.ndarray) -> bytes:
    """HTML-canvas-style export: transparent black background, opaque black strokes."""
    rgba = np.zeros((*mask.shape, 4), np.uint8)
    rgba[mask, 3] = 255
    return png_bytes(Image.fromarray(rgba, "RGBA"))


def grey_png(mask: np.ndarray, ink: int = 0, background: int = 255) -> bytes:
    return png_bytes(Image.fromarray(np.where(mask, ink, background).astype(np.uint8), "L"))


def ink_bbox(out: np.ndarray) -> tuple[int, int]:
    rows, cols = np.flatnonzero(out.any(axis=1)), np.flatnonzero(out.any(axis=0))
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


def centre_of_mass(out: np.ndarray) -> tuple[float, float]:
    total = out.sum()
    return (
        float(np.arange(out.shape[0]) @ out.sum(axis=1) / total),
        float(np.arange(out.shape[1]) @ out.sum(axis=0) / total),
    )


def assert_mnist_like(out: np.ndarray) -> None:
    assert out.shape == (28, 28)
    assert out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert max(ink_bbox(out)) in (19, 20)


def status_of(fn: object, *args: object, **kwargs: object) -> int:
    assert callable(fn)
    with pytest.raises(ImageError) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert message and len(message) < 200  # a short user-facing sentence, not a dump of the input
    return info.value.status_code


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def header_only_png(width: int, height: int) -> bytes:
    """A valid-looking PNG that declares a size but carries no pixel data: a decompression-bomb stand-in."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IEND", b"")


MASK = digit_mask()
REFERENCE = prepare(data_url(grey_png(MASK)), None, **LIMITS)  # black ink on opaque white


# ---------------------------------------------------------------------------------------------- formats


def test_transparent_canvas_with_black_strokes() -> None:
    ink = decode_data_url(data_url(canvas_png(MASK)), **LIMITS)
    assert ink.shape == (280, 280) and ink.dtype == np.float32
    np.testing.assert_array_equal(ink, MASK.astype(np.float32))
    out = prepare(data_url(canvas_png(MASK)), None, **LIMITS)
    assert_mnist_like(out)
    np.testing.assert_allclose(out, REFERENCE, atol=1e-6)


def test_transparent_canvas_with_white_strokes_is_alpha_weighted() -> None:
    rgba = np.zeros((*MASK.shape, 4), np.uint8)
    rgba[MASK] = 255  # white, opaque strokes: a canvas shown on a dark page
    rgba[MASK.nonzero()[0][:50], MASK.nonzero()[1][:50], 3] = 128  # some half-transparent anti-aliasing
    ink = decode_data_url(data_url(png_bytes(Image.fromarray(rgba, "RGBA"))), **LIMITS)
    assert ink.max() == 1.0 and ink[~MASK].max() == 0.0
    assert np.isclose(ink[MASK].min(), 128 / 255)


def test_black_on_white_matches_white_on_black() -> None:
    light_on_dark = prepare(data_url(grey_png(MASK, ink=255, background=0)), None, **LIMITS)
    assert_mnist_like(REFERENCE)
    np.testing.assert_allclose(light_on_dark, REFERENCE, atol=1e-6)


def test_opaque_rgb_and_off_white_background() -> None:
    rgb = np.full((*MASK.shape, 3), (240, 235, 225), np.uint8)  # cream paper, blue pen
    rgb[MASK] = (20, 30, 120)
    out = prepare(data_url(png_bytes(Image.fromarray(rgb, "RGB"))), None, **LIMITS)
    assert_mnist_like(out)
    assert np.corrcoef(out.ravel(), REFERENCE.ravel())[0, 1] > 0.99


def test_opaque_rgba_canvas_uses_colours_and_see_through_pixels_are_background() -> None:
    rgba = np.full((*MASK.shape, 4), 255, np.uint8)  # canvas filled white before drawing: alpha says nothing
    rgba[MASK, :3] = 0
    np.testing.assert_allclose(
        prepare(data_url(png_bytes(Image.fromarray(rgba))), None, **LIMITS), REFERENCE, atol=1e-6
    )
    rgba[250:270, 10:40] = (0, 0, 0, 0)  # transparent black hole: background, not ink
    rgba[5:15, 200:220] = (0, 0, 0, 1)  # almost transparent black: background too
    np.testing.assert_allclose(
        prepare(data_url(png_bytes(Image.fromarray(rgba))), None, **LIMITS), REFERENCE, atol=1e-6
    )


@pytest.mark.parametrize("mode", ["L", "LA", "I;16", "P", "P-transparent", "1", "RGB-tRNS"])
def test_every_png_mode_gives_the_same_digit(mode: str) -> None:
    if mode == "I;16":
        im = Image.fromarray(np.where(MASK, 0, 65535).astype(np.uint16))
        assert im.mode == "I;16"
        raw = png_bytes(im)
    elif mode == "LA":
        la = np.zeros((*MASK.shape, 2), np.uint8)
        la[MASK, 1] = 255
        raw = png_bytes(Image.fromarray(la, "LA"))
    elif mode.startswith("P"):
        im = Image.fromarray(MASK.astype(np.uint8), "P")
        im.putpalette([255, 255, 255, 0, 0, 0])
        raw = png_bytes(im, transparency=0) if mode == "P-transparent" else png_bytes(im)
    elif mode == "1":
        raw = png_bytes(Image.fromarray(np.where(MASK, 0, 255).astype(np.uint8), "L").convert("1"))
    elif mode == "RGB-tRNS":  # transparent *colour* (tRNS chunk), not an alpha channel
        rgb = np.full((*MASK.shape, 3), 255, np.uint8)
        rgb[MASK] = 0
        raw = png_bytes(Image.fromarray(rgb, "RGB"), transparency=(255, 255, 255))
    else:
        raw = grey_png(MASK)
    expected_mode = {"P-transparent": "P", "RGB-tRNS": "RGB"}.get(mode, mode)
    assert Image.open(io.BytesIO(raw)).mode == expected_mode
    np.testing.assert_allclose(prepare(data_url(raw), None, **LIMITS), REFERENCE, atol=1e-6)


def test_16_bit_keeps_grey_levels() -> None:
    im = Image.fromarray(np.array([[65535, 65535, 65535], [65535, 32768, 65535], [65535, 65535, 65535]], np.uint16))
    ink = decode_data_url(data_url(png_bytes(im)), **LIMITS)
    assert np.isclose(ink[1, 1], 1 - 32768 / 65535, atol=1e-6) and ink.sum() == ink[1, 1]


@pytest.mark.parametrize("value", [0, 255])
def test_one_by_one_decodes_and_is_an_empty_drawing(value: int) -> None:
    url = data_url(png_bytes(Image.new("L", (1, 1), value)))
    assert decode_data_url(url, **LIMITS).shape == (1, 1)
    assert status_of(prepare, url, None, **LIMITS) == 422


def test_single_ink_pixel_in_a_bigger_image_fills_the_box() -> None:
    ink = np.zeros((5, 5), np.float32)
    ink[0, 4] = 1.0
    out = mnist_preprocess(ink)
    assert ink_bbox(out) == (20, 20) and out.min() >= 0 and np.isclose(out.max(), 1.0)


@pytest.mark.parametrize(
    "raw",
    [
        png_bytes(Image.new("RGBA", (280, 280), (0, 0, 0, 0))),  # untouched canvas
        png_bytes(Image.new("RGB", (280, 280), "white")),
        png_bytes(Image.new("L", (50, 50), 0)),  # all black: the background is black, so no ink either
        png_bytes(Image.new("RGBA", (50, 50), (0, 0, 0, 255))),
        png_bytes(Image.new("L", (50, 50), 250)),  # faint noise below the threshold
    ],
)
def test_blank_drawings_are_rejected(raw: bytes) -> None:
    with pytest.raises(ImageError, match="empty") as info:
        prepare(data_url(raw), None, **LIMITS)
    assert info.value.status_code == 422


# ---------------------------------------------------------------------------------------------- rejections


@pytest.mark.parametrize("side", [(100_000, 100_000), (MAX_SIDE + 1, 10), (10, MAX_SIDE + 1), (2**31 - 1, 1)])
def test_huge_declared_size_is_413_without_decoding(monkeypatch: pytest.MonkeyPatch, side: tuple[int, int]) -> None:
    def no_decoding(self: object) -> None:
        raise AssertionError("pixel data must never be decoded for an oversize image")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    assert status_of(decode_data_url, data_url(header_only_png(*side)), **LIMITS) == 413


def test_pillow_bomb_guard_still_applies_with_a_generous_max_side() -> None:
    url = data_url(header_only_png(100_000, 100_000))
    assert status_of(decode_data_url, url, max_bytes=MAX_BYTES, max_side=1_000_000) == 413


def test_image_at_the_size_limit_is_accepted() -> None:
    im = Image.new("L", (40, 30), 255)
    im.paste(0, (10, 10, 20, 20))
    assert decode_data_url(data_url(png_bytes(im)), max_bytes=MAX_BYTES, max_side=40).shape == (30, 40)


def test_bytes_over_the_limit_are_413_before_and_after_decoding() -> None:
    raw = png_bytes(Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), np.uint8)))
    assert decode_data_url(data_url(raw), max_bytes=len(raw), max_side=MAX_SIDE).shape == (64, 64)
    # Slightly over: only the exact post-decoding count can tell. Far over: the base64 length alone does.
    assert status_of(decode_data_url, data_url(raw), max_bytes=len(raw) - 1, max_side=MAX_SIDE) == 413
    assert status_of(decode_data_url, data_url(raw), max_bytes=len(raw) // 2, max_side=MAX_SIDE) == 413
    huge = "data:image/png;base64," + "!" * 10_000_000  # not even base64: rejected on length alone
    assert status_of(decode_data_url, huge, max_bytes=1000, max_side=MAX_SIDE) == 413


def test_not_a_png_is_422() -> None:
    jpeg = io.BytesIO()
    Image.new("RGB", (20, 20), "white").save(jpeg, "JPEG")
    assert status_of(decode_data_url, data_url(jpeg.getvalue()), **LIMITS) == 422
    assert status_of(decode_data_url, data_url(b"GIF89a" + bytes(100)), **LIMITS) == 422
    assert status_of(decode_data_url, data_url(np.random.default_rng(1).bytes(500)), **LIMITS) == 422


@pytest.mark.parametrize("keep", [0.5, 0.9, 40 / 1000, 8 / 1000])
def test_truncated_png_is_422(keep: float) -> None:
    raw = canvas_png(MASK)
    assert status_of(decode_data_url, data_url(raw[: int(len(raw) * keep)]), **LIMITS) == 422


def test_corrupt_pixel_data_is_422() -> None:
    raw = bytearray(grey_png(MASK))
    idat = raw.index(b"IDAT")
    raw[idat + 20 : idat + 60] = bytes(40)  # zlib stream garbage (and a wrong CRC)
    assert status_of(decode_data_url, data_url(bytes(raw)), **LIMITS) == 422


@pytest.mark.parametrize(
    "url",
    [
        "",
        "hello",
        "data:image/png;base64",  # no comma
        "data:image/png,iVBORw0KGgo=",  # not base64-encoded
        "data:image/jpeg;base64," + base64.b64encode(b"\xff\xd8\xff").decode(),
        "data:text/html;base64,PHA+",
        "data:image/png;base64,@@@not base64@@@",
        "data:image/png;base64,iVBORw0KGgo",  # bad padding
        "data:image/png;base64,ïï",
        "data:image/png;base64,",
        "image/png;base64,iVBORw0KGgo=",
        "data:" + "x" * 1000 + ";base64,iVBORw0KGgo=",
    ],
)
def test_bad_data_urls_are_422(url: str) -> None:
    assert status_of(decode_data_url, url, **LIMITS) == 422


def test_messages_never_echo_the_input() -> None:
    secret = "<script>alert(1)</script>"
    for url in (f"data:{secret};base64,AAAA", f"data:image/png;base64,{secret}", secret):
        with pytest.raises(ImageError) as info:
            decode_data_url(url, **LIMITS)
        assert "script" not in str(info.value)


def test_mime_type_and_scheme_are_case_insensitive() -> None:
    url = data_url(canvas_png(MASK)).replace("data:image/png;base64", "DATA:Image/PNG;Base64")
    np.testing.assert_allclose(prepare(url, None, **LIMITS), REFERENCE, atol=1e-6)


# ---------------------------------------------------------------------------------------------- geometry


def test_off_centre_drawing_is_centred_by_mass() -> None:
    small = np.zeros((280, 280), bool)
    small[:140, :140] = digit_mask()[::2, ::2]  # half size, in the top-left corner
    out = prepare(data_url(canvas_png(small)), None, **LIMITS)
    assert_mnist_like(out)
    cy, cx = centre_of_mass(out)
    assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1
    # Same drawing, same place in the output, wherever it was on the canvas and however big.
    assert np.corrcoef(out.ravel(), REFERENCE.ravel())[0, 1] > 0.95


def test_tall_thin_stroke_keeps_its_aspect_ratio() -> None:
    ink = np.zeros((280, 280), np.float32)
    ink[40:240, 130:150] = 1.0  # 200 x 20: a "1"
    out = mnist_preprocess(ink)
    assert ink_bbox(out) == (20, 2)
    cy, cx = centre_of_mass(out)
    assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1


def test_wide_shape_scales_its_longer_side_to_20() -> None:
    ink = np.zeros((100, 300), np.float32)
    ink[40:70, 10:290] = 1.0  # 30 x 280
    assert ink_bbox(mnist_preprocess(ink)) == (2, 20)


def test_isolated_pixels_are_never_dropped_by_the_resampling() -> None:
    ink = np.zeros((36, 19), np.float32)  # Pillow's BOX filter loses the (3, 9) pixel here (Hypothesis find)
    ink[3, 9] = ink[27, 0] = ink[35, 18] = 1.0
    out = mnist_preprocess(ink)
    assert ink_bbox(out) == (20, 12)
    assert np.isclose(out.sum(), (20 * 12) / (33 * 19) * 3, rtol=1e-5)  # area averaging keeps the ink's mass


def test_tiny_noise_does_not_count_as_ink() -> None:
    ink = np.full((100, 100), 0.05, np.float32)  # below the noise threshold everywhere ...
    ink[30:70, 45:55] = 1.0  # ... except a stroke
    out = mnist_preprocess(ink)
    assert ink_bbox(out) == (20, 5)


def test_bad_arrays_to_mnist_preprocess_are_422() -> None:
    for bad in (np.zeros(5), np.zeros((0, 3)), np.zeros((2, 2, 2)), np.array([[np.nan, 1.0]])):
        assert status_of(mnist_preprocess, bad) == 422


# ---------------------------------------------------------------------------------------------- pixels


def test_pixels_in_0_1_and_0_255() -> None:
    arr = np.zeros((28, 28))
    arr[10:18, 12:16] = 1.0
    unit = pixels_to_array(arr.tolist())
    assert unit.dtype == np.float32 and unit.shape == (28, 28)
    np.testing.assert_array_equal(unit, arr)
    np.testing.assert_array_equal(pixels_to_array((arr * 255).astype(int).tolist()), arr)
    # Already MNIST-formatted: not re-centred, even though the mass is off-centre.
    np.testing.assert_array_equal(prepare(None, arr.tolist(), **LIMITS), arr)


@pytest.mark.parametrize(
    "pixels",
    [
        None,
        "pixels",
        42,
        [],
        [[0.0] * 28] * 27,
        [[0.0] * 27] * 28,
        [[0.0] * 28] * 27 + [[0.0] * 29],  # ragged
        [[0.0] * 28] * 27 + [[[0.0]] * 28],  # too deep
        [[0.0] * 28] * 27 + [[0.0] * 27 + [float("nan")]],
        [[0.0] * 28] * 27 + [[0.0] * 27 + [float("inf")]],
        [[0.0] * 28] * 27 + [[0.0] * 27 + [-1]],
        [[0.0] * 28] * 27 + [[0.0] * 27 + [256]],
        [[0.0] * 28] * 27 + [[0.0] * 27 + ["1"]],
        [[0.0] * 28] * 27 + [[0.0] * 27 + [None]],
        [[0.0] * 28] * 27 + [[0.0] * 27 + [10**100]],
        [[True] * 28] * 28,
        {"a": 1},
        np.zeros((28, 29)),
    ],
)
def test_bad_pixels_are_422(pixels: object) -> None:
    assert status_of(pixels_to_array, pixels) == 422


def test_prepare_needs_exactly_one_input() -> None:
    assert status_of(prepare, None, None, **LIMITS) == 422
    assert status_of(prepare, data_url(canvas_png(MASK)), [[0.0] * 28] * 28, **LIMITS) == 422


# ---------------------------------------------------------------------------------------------- properties

BAD_VALUE = st.sampled_from([float("nan"), float("inf"), -float("inf"), -1, -1e-9, 255.5, 1e300, "7", None, [1]])
ELEMENT = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**70), 2**70),
    st.booleans(),
    st.text(max_size=3),
    st.none(),
)


@settings(deadline=None)
@given(
    hnp.arrays(np.float64, (28, 28), elements=st.floats(0, 1))
    | hnp.arrays(np.int64, (28, 28), elements=st.integers(0, 255))
)
def test_valid_pixels_always_accepted(arr: np.ndarray) -> None:
    out = pixels_to_array(arr.tolist())
    assert out.shape == (28, 28) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1
    expected = arr / 255 if arr.max() > 1 else arr
    np.testing.assert_allclose(out, expected, atol=1e-6)


@settings(deadline=None)
@given(
    hnp.arrays(np.float64, (28, 28), elements=st.floats(0, 1)),
    st.integers(0, 27),
    st.integers(0, 27),
    BAD_VALUE,
)
def test_one_bad_value_is_always_caught(arr: np.ndarray, i: int, j: int, bad: object) -> None:
    pixels = arr.tolist()
    pixels[i][j] = bad
    assert status_of(pixels_to_array, pixels) == 422


@settings(deadline=None)
@given(st.lists(st.lists(ELEMENT, max_size=30), max_size=30) | ELEMENT)
def test_random_pixel_payloads_raise_only_image_error(pixels: object) -> None:
    try:
        out = pixels_to_array(pixels)
    except ImageError as e:
        assert e.status_code == 422
    else:
        assert out.shape == (28, 28) and out.dtype == np.float32 and 0 <= out.min() <= out.max() <= 1


@settings(deadline=None)
@given(
    hnp.arrays(
        st.sampled_from([np.float32, np.float64]),
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=60),
        elements=st.floats(-1, 2, width=32) | st.sampled_from([0.0, 1.0]),
    )
)
def test_random_images_through_mnist_preprocess(ink: np.ndarray) -> None:
    try:
        out = mnist_preprocess(ink)
    except ImageError as e:
        assert e.status_code == 422
        assert not (ink >= 0.1).any()  # only ever rejected for being empty
    else:
        assert_mnist_like(out)


@settings(deadline=None)
@given(st.binary(max_size=2000), st.booleans())
def test_random_bytes_as_data_url_raise_only_image_error(raw: bytes, with_signature: bool) -> None:
    if with_signature:  # get past the signature check and into Pillow's PNG parser
        raw = b"\x89PNG\r\n\x1a\n" + raw
    with pytest.raises(ImageError):
        decode_data_url(data_url(raw), **LIMITS)


@settings(deadline=None)
@given(st.text(max_size=300))
def test_random_text_as_data_url_raises_only_image_error(text: str) -> None:
    for url in (text, "data:image/png;base64," + text):
        with pytest.raises(ImageError):
            decode_data_url(url, **LIMITS)


@settings(deadline=None, max_examples=50)
@given(st.integers(1, 64), st.integers(1, 64), st.sampled_from(["L", "RGB", "RGBA", "LA", "P", "1", "I;16"]))
def test_random_valid_pngs_decode_to_ink_in_range(width: int, height: int, mode: str) -> None:
    rng = np.random.default_rng(width * 100 + height)
    noise = rng.integers(0, 256, (height, width, 4), np.uint8)
    im = Image.fromarray(noise, "RGBA").convert(mode)
    ink = decode_data_url(data_url(png_bytes(im)), **LIMITS)
    assert ink.shape == (height, width) and ink.dtype == np.float32
    assert 0 <= ink.min() <= ink.max() <= 1
    try:
        assert_mnist_like(mnist_preprocess(ink))
    except ImageError as e:
        assert e.status_code == 422


def test_thin_pen_strokes_are_grown_towards_mnist_width() -> None:
    # a 150 px "1" drawn with a 4 px pen: once scaled into the 20 px box its stroke would be ~0.5 px of faint
    # grey; grown towards MNIST's width it reads as ink
    ink = np.zeros((200, 200), np.float32)
    ink[25:175, 98:102] = 1.0
    out = mnist_preprocess(ink)
    assert out.max() > 0.9
    thick = np.zeros((200, 200), np.float32)
    thick[25:175, 90:110] = 1.0  # a 20 px pen is as thick as MNIST's strokes already: left as drawn
    np.testing.assert_array_equal(mnist_preprocess(thick) > 0, _scaled_box(thick) > 0)


def _scaled_box(ink: np.ndarray) -> np.ndarray:
    from server import imaging

    saved = imaging.normalise_stroke
    imaging.normalise_stroke = lambda crop: crop
    try:
        return mnist_preprocess(ink)
    finally:
        imaging.normalise_stroke = saved
