"""Spec format 2: the one shape/size function, format-1 files made by the code before typed layers, dtypes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.model import Model
from engine.spec import Conv2DSpec, DenseSpec, ModelFormatError, ModelSpec, OutputSpec, PoolSpec, describe

FIXTURES = Path(__file__).parent.parent / "fixtures"


def test_format1_file_made_before_typed_layers_loads_and_predicts_the_same() -> None:
    # tests/fixtures/format1_model.npz was written by the format-1 code (commit 7f8a518), with its outputs
    expected = json.loads((FIXTURES / "format1_model.json").read_text())
    model = Model.load(FIXTURES / "format1_model.npz")
    assert model.spec.input_shape == (784,)
    assert [layer.units for layer in model.spec.layers if isinstance(layer, DenseSpec)] == [16, 8]
    assert model.spec.layers[0].dropout == pytest.approx(0.1)
    assert model.meta["name"] == "fixture"
    x = np.linspace(0, 1, 784 * 2, dtype=np.float32).reshape(2, 784)
    np.testing.assert_array_equal(model.forward(x)[1], np.array(expected["outputs"], np.float32))
    # saved again, it is a format-2 file that loads to the same network
    again = Model.load(model.to_bytes())
    np.testing.assert_array_equal(again.forward(x)[1], model.forward(x)[1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_save_load_round_trips_every_dtype(dtype: type, tmp_path: Path) -> None:
    model = Model.build(ModelSpec.mlp((DenseSpec(6, "tanh"),), input_size=5, output_size=3), seed=4, dtype=dtype)
    model.save(tmp_path / "m.npz")
    loaded = Model.load(tmp_path / "m.npz")
    assert loaded.dtype is dtype
    for (a, _), (b, _) in zip(model.parameters(), loaded.parameters(), strict=True):
        assert b.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(a, b)


def test_parameter_counts_match_the_format1_formula_for_every_old_preset() -> None:
    # the counts the format-1 code gave (sum of a*b + b over consecutive layer sizes), kept in the fixture
    from server.presets import get_preset

    expected = json.loads((FIXTURES / "format1_model.json").read_text())["preset_parameters"]
    for old_name, count in expected.items():
        name = {"default": "mlp"}.get(old_name, old_name)  # the dense default became the mlp preset
        preset = get_preset(name)
        assert preset is not None
        assert preset.config.parameter_count() == count, name
        assert preset.config.model_spec().parameter_count == count


def test_describe_gives_shapes_parameters_and_multiply_adds() -> None:
    spec = ModelSpec(
        input_shape=(28, 28, 1),
        layers=(Conv2DSpec(8, 5), PoolSpec(2), Conv2DSpec(16, 5, padding="valid"), PoolSpec(2, "avgpool2d")),
        output=OutputSpec(10),
    )
    rows = describe(spec)
    assert [r.output_shape for r in rows] == [(28, 28, 8), (14, 14, 8), (10, 10, 16), (5, 5, 16), (10,)]
    assert [r.parameters for r in rows] == [5 * 5 * 8 + 8, 0, 5 * 5 * 8 * 16 + 16, 0, 400 * 10 + 10]
    assert rows[0].macs == 28 * 28 * 8 * 25 and rows[2].macs == 10 * 10 * 16 * 200 and rows[4].macs == 4000
    assert spec.parameter_count == sum(r.parameters for r in rows)
    strided = describe(ModelSpec(input_shape=(7, 7, 1), layers=(Conv2DSpec(2, 3, stride=2),)))
    assert strided[0].output_shape == (4, 4, 2)  # "same" at stride 2: ceil(7 / 2)


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ((DenseSpec(8), Conv2DSpec(4)), "layer 2 \\(conv2d\\) needs an image"),
        ((PoolSpec(3), PoolSpec(3), PoolSpec(3), PoolSpec(3)), "layer 4 \\(maxpool2d\\).*below 1x1"),
        (
            (
                Conv2DSpec(4, 7, padding="valid"),
                Conv2DSpec(4, 7, padding="valid"),
                Conv2DSpec(4, 7, padding="valid"),
                Conv2DSpec(4, 7, padding="valid"),
                Conv2DSpec(4, 7, padding="valid"),
            ),
            "larger than its",
        ),
    ],
)
def test_bad_combinations_name_the_layer(layers: tuple, message: str) -> None:
    with pytest.raises(ModelFormatError, match=message):
        ModelSpec(input_shape=(28, 28, 1), layers=layers)


def test_a_conv_network_with_batchnorm_saves_its_running_statistics_and_loads_identically(tmp_path: Path) -> None:
    from engine.spec import BatchNormSpec

    spec = ModelSpec(
        input_shape=(8, 8, 1),
        layers=(Conv2DSpec(3, 3), BatchNormSpec(), PoolSpec(2), DenseSpec(5)),
        output=OutputSpec(4),
    )
    model = Model.build(spec, seed=2)
    x = np.random.default_rng(0).random((16, 64), dtype=np.float32)
    model.loss_and_backward(x, np.arange(16) % 4)  # training mode moves the running statistics
    assert not np.allclose(model.owners[1].buffers["running_mean"], 0)
    model.save(tmp_path / "cnn.npz")
    loaded = Model.load(tmp_path / "cnn.npz")
    np.testing.assert_array_equal(loaded.owners[1].buffers["running_var"], model.owners[1].buffers["running_var"])
    np.testing.assert_array_equal(loaded.forward(x)[1], model.forward(x)[1])
    assert loaded.activations(x[:1])[0].shape == (1, 8, 8, 3)
