"""Declarative spec, save/load round trip, and clear errors for bad or mismatching files."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from engine.model import Model, ModelFormatError, ModelSpec
from engine.spec import DenseSpec

SPEC = ModelSpec.mlp(hidden=(DenseSpec(16, "tanh", 0.2), DenseSpec(8)), input_size=12, output_size=4)


def test_spec_round_trips_through_dict_and_counts_parameters() -> None:
    assert ModelSpec.from_dict(json.loads(json.dumps(SPEC.to_dict()))) == SPEC
    assert SPEC.parameter_count == 12 * 16 + 16 + 16 * 8 + 8 + 8 * 4 + 4
    assert ModelSpec().parameter_count == 784 * 128 + 128 + 128 * 10 + 10


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"layers": [{"units": 0}]}, "units"),
        ({"layers": [{"units": 4, "activation": "swish"}]}, "activation"),
        ({"layers": [{"units": 4, "dropout": 1.0}]}, "dropout"),
        ({"output": {"activation": "linear"}, "loss": "cross_entropy"}, "cross_entropy"),
        ({"loss": "hinge"}, "loss"),
        ({"init": "zeros"}, "init"),
        ({"layers": [{"units": 4, "colour": "red"}]}, "colour"),
        ({"layers": [{"type": "lstm"}]}, "type must be one of"),
        ({"input_shape": [784], "layers": [{"type": "conv2d", "filters": 4}]}, "needs an image"),
        ({"input_shape": [2, 2, 1], "layers": [{"type": "maxpool2d", "size": 3}]}, "below 1x1"),
        ({"hidden": []}, "unknown keys"),
        ([], "JSON object"),
    ],
)
def test_bad_specs_are_refused_with_a_clear_message(data: object, message: str) -> None:
    with pytest.raises(ModelFormatError, match=message):
        ModelSpec.from_dict(data)


def test_save_load_round_trip_is_exact(tmp_path: Path) -> None:
    model = Model.build(SPEC, seed=3)
    model.meta = {"test_accuracy": 0.5}
    path = tmp_path / "m.npz"
    model.save(path)
    loaded = Model.load(path)
    assert loaded.spec == SPEC and loaded.meta == {"test_accuracy": 0.5}
    x = np.random.default_rng(0).random((5, 12), dtype=np.float32)
    np.testing.assert_array_equal(model.forward(x)[1], loaded.forward(x)[1])
    assert not list(tmp_path.glob("*.tmp"))
    with np.load(path, allow_pickle=False) as data:  # the file itself needs no pickle
        assert "header" in data.files


def arrays_of(model: Model) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(model.to_bytes()), allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def save_arrays(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()


def test_mismatching_arrays_and_bad_files_give_clear_errors() -> None:
    arrays = arrays_of(Model.build(SPEC))
    wrong_shape = dict(arrays, l0_W=np.zeros((12, 15), np.float32))
    with pytest.raises(ModelFormatError, match="l0_W has shape"):
        Model.load(save_arrays(wrong_shape))
    missing = {k: v for k, v in arrays.items() if k != "l2_b"}
    with pytest.raises(ModelFormatError, match="missing"):
        Model.load(save_arrays(missing))
    nan = dict(arrays, l1_W=np.full((16, 8), np.nan, np.float32))
    with pytest.raises(ModelFormatError, match="NaN"):
        Model.load(save_arrays(nan))
    header = json.loads(str(arrays["header"]))
    header["spec"]["layers"][0]["units"] = 17
    with pytest.raises(ModelFormatError, match="shape"):
        Model.load(save_arrays(dict(arrays, header=np.array(json.dumps(header)))))
    with pytest.raises(ModelFormatError, match="header"):
        Model.load(save_arrays({k: v for k, v in arrays.items() if k != "header"}))
    with pytest.raises(ModelFormatError):
        Model.load(b"definitely not a zip file")


def test_object_arrays_are_refused_without_unpickling(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (marker.write_text, ("x",))  # would run on unpickling

    arrays = arrays_of(Model.build(SPEC))
    buf = io.BytesIO()
    np.savez(buf, **dict(arrays, l0_W=np.array([Evil()], dtype=object)))  # type: ignore[arg-type]
    with pytest.raises(ModelFormatError):
        Model.load(buf.getvalue())
    assert not marker.exists()


def test_truncated_zip_is_a_format_error() -> None:
    data = Model.build(SPEC).to_bytes()
    for cut in (b"PK\x03\x04 not really", data[: len(data) // 2], data[:-30]):
        with pytest.raises(ModelFormatError):
            Model.load(cut)


def test_histograms_survive_float32_values_spanning_the_whole_range() -> None:
    from engine.metrics import Histogram

    h = Histogram.of(np.array([-3e38, 0.0, 3e38], np.float32), bins=10)
    assert sum(h.counts) == 3 and len(h.edges) == 11
