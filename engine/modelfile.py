"""The model file: an ``.npz`` archive holding a JSON ``header`` and one array per parameter or buffer.

Format 2 (written now): header {"format": "nnplay-model", "version": 2, "dtype", "spec", "meta"}, arrays
``l{spec index}_{name}``. Format 1 (read only): a dense stack whose spec has ``hidden``/``input_size``, arrays
``layer{k}_W``/``layer{k}_b`` for the k-th dense layer, float32 (its header had no dtype).

The header and the archive's directory are checked before any array is read, so a small file that declares a
huge array (or a pickled one) is refused without allocating or unpickling anything.
"""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from numpy.lib.npyio import NpzFile

from engine.atomic import atomic_write_with
from engine.spec import FORMAT_VERSION, DenseSpec, ModelFormatError, ModelSpec

MAX_HEADER_BYTES = 1_000_000
DTYPES = {"float32": np.float32, "float64": np.float64}


@dataclass
class LoadedFile:
    spec: ModelSpec
    dtype: type
    meta: dict[str, Any]
    arrays: dict[str, np.ndarray]  # format-2 names


def write_model_file(
    target: str | Path | BinaryIO, spec: dict[str, Any], dtype: str, meta: dict[str, Any], arrays: dict[str, np.ndarray]
) -> None:
    header = {"format": "nnplay-model", "version": FORMAT_VERSION, "dtype": dtype, "spec": spec, "meta": meta}
    payload = {"header": np.array(json.dumps(header)), **arrays}
    if isinstance(target, str | Path):
        atomic_write_with(Path(target), lambda f: np.savez(f, **payload))  # type: ignore[arg-type]
    else:
        np.savez(target, **payload)  # type: ignore[arg-type]


def read_model_file(
    source: str | Path | BinaryIO | bytes, shapes_of: Callable[[ModelSpec], dict[str, tuple[int, ...]]]
) -> LoadedFile:
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    try:
        data = np.load(source, allow_pickle=False)
        if not isinstance(data, NpzFile):
            raise ModelFormatError("not an .npz archive")
        with data:
            spec, meta, dtype, renamed = _read_header(data)
            expected = {renamed.get(name, name): shape for name, shape in shapes_of(spec).items()}
            names = set(data.files) - {"header"}
            if names != set(expected):
                missing, extra = sorted(set(expected) - names), sorted(names - set(expected))
                raise ModelFormatError(f"arrays do not match the spec (missing {missing}, unexpected {extra})")
            itemsize = np.dtype(dtype).itemsize
            for name, shape in expected.items():
                if _member_size(data, name) > int(np.prod(shape)) * itemsize + 4096:
                    raise ModelFormatError(f"{name} is larger than the spec allows")
            arrays = {name: data[name] for name in expected}
    except ModelFormatError:
        raise
    except (ValueError, TypeError, KeyError) as exc:  # object arrays need pickle, which we refuse
        raise ModelFormatError(f"not a valid model file: {exc}") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, RecursionError, MemoryError) as exc:
        raise ModelFormatError(f"not a valid .npz model file: {type(exc).__name__}") from None
    for name, shape in expected.items():
        if arrays[name].shape != shape:
            raise ModelFormatError(f"{name} has shape {arrays[name].shape}, the spec needs {shape}")
        if arrays[name].dtype != np.dtype(dtype):
            raise ModelFormatError(f"{name} is {arrays[name].dtype}; the header says {np.dtype(dtype).name}")
        if not np.isfinite(arrays[name]).all():
            raise ModelFormatError(f"{name} contains NaN or infinite values")
    back = {old: new for new, old in renamed.items()}
    return LoadedFile(spec, dtype, meta, {back.get(name, name): a for name, a in arrays.items()})


def read_spec(source: bytes) -> ModelSpec:
    """Only the spec in a model file's header: enough to check size limits before any array is read."""
    try:
        data = np.load(io.BytesIO(source), allow_pickle=False)
        if not isinstance(data, NpzFile):
            raise ModelFormatError("not an .npz archive")
        with data:
            return _read_header(data)[0]
    except ModelFormatError:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise ModelFormatError(f"not a valid model file: {exc}") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, RecursionError, MemoryError) as exc:
        raise ModelFormatError(f"not a valid .npz model file: {type(exc).__name__}") from None


def _read_header(data: NpzFile) -> tuple[ModelSpec, dict[str, Any], type, dict[str, str]]:
    """Spec, meta, dtype, and for format 1 the map from format-2 array names to the file's names."""
    if "header" not in data.files:
        raise ModelFormatError("not an nnplay model: missing JSON header")
    if _member_size(data, "header") > MAX_HEADER_BYTES:
        raise ModelFormatError(
            f"the model's JSON header (spec and metadata) is too large: the limit is {MAX_HEADER_BYTES} bytes"
        )
    header_arr = data["header"]
    if header_arr.dtype.kind != "U" or header_arr.shape != ():
        raise ModelFormatError("not an nnplay model: the header is not a JSON string")
    try:
        header = json.loads(str(header_arr))
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ModelFormatError(f"model header is not valid JSON: {type(exc).__name__}") from None
    if not isinstance(header, dict) or header.get("format") != "nnplay-model":
        raise ModelFormatError("not an nnplay model: wrong format tag")
    meta = header.get("meta") or {}
    if not isinstance(meta, dict):
        raise ModelFormatError("model meta must be a JSON object")
    version = header.get("version")
    if version == 1:
        spec = ModelSpec.from_format1(header.get("spec"))
        dense = [
            i
            for i, layer in enumerate((*spec.layers, spec.output))
            if isinstance(layer, DenseSpec) or i == len(spec.layers)
        ]
        renamed = {f"l{i}_{p}": f"layer{k}_{p}" for k, i in enumerate(dense) for p in ("W", "b")}
        return spec, meta, np.float32, renamed
    if version != FORMAT_VERSION:
        raise ModelFormatError(f"unsupported model format version {version!r} (this build reads 1 and 2)")
    dtype = DTYPES.get(str(header.get("dtype", "")))
    if dtype is None:
        raise ModelFormatError(f"dtype must be one of {list(DTYPES)}")
    return ModelSpec.from_dict(header.get("spec")), meta, dtype, {}


def _member_size(data: NpzFile, name: str) -> int:
    """Uncompressed size the archive declares for an array, read from its directory without loading it."""
    assert data.zip is not None
    return data.zip.getinfo(f"{name}.npy").file_size
