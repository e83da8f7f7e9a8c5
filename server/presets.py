"""Named starting points. Each config is a valid POST /api/runs body as it stands."""

from __future__ import annotations

from server.config import Conv2DConfig, DenseConfig, OptimizerConfig, RunConfig, ScheduleConfig
from server.schemas import Preset

CNN_DESCRIPTION = (
    "A small convolutional network that strides instead of pooling: conv 16@5x5 stride 2 (28x28 -> 14x14) -> "
    "conv 32@3x3 stride 2, valid (-> 6x6) -> 128 ReLU units -> 10 outputs; Adam (beta2 0.99) with a cosine "
    "schedule, 4 epochs. Each filter is shared across the whole image, so it learns strokes wherever they are: "
    "about 99.0-99.1% in some 15 seconds on two cores."
)


def cnn_config(name: str) -> RunConfig:
    """The cnn preset; also the default model's, trained at first start."""
    return RunConfig(
        name=name,
        layers=[
            Conv2DConfig(type="conv2d", filters=16, kernel=5, stride=2),
            Conv2DConfig(type="conv2d", filters=32, kernel=3, stride=2, padding="valid"),
            DenseConfig(units=128),
        ],
        optimizer=OptimizerConfig(name="adam", beta2=0.99),
        learning_rate=3e-3,
        schedule=ScheduleConfig(name="cosine"),
        batch_size=128,
        epochs=4,
    )


PRESETS: list[Preset] = [
    Preset(name="default", description="The default model's network: " + CNN_DESCRIPTION, config=cnn_config("default")),
    Preset(
        name="mlp",
        description=(
            "Two ReLU layers (the default before convolutions), Adam with a cosine schedule: about 98.3% test "
            "accuracy in 8 epochs."
        ),
        config=RunConfig(
            name="mlp",
            layers=[DenseConfig(units=256), DenseConfig(units=128)],
            optimizer=OptimizerConfig(name="adam"),
            learning_rate=2e-3,
            schedule=ScheduleConfig(name="cosine"),
            batch_size=128,
            epochs=8,
        ),
    ),
    Preset(
        name="speedrun",
        description=(
            "98% in about 1.2 seconds: 784-200-100-10 ReLU for 3 epochs at batch 320 (188 Adam steps an epoch, so "
            "the optimizer's fixed cost per step is paid less often and the GEMMs are larger and more "
            "efficient), a one-cycle schedule (warm up from lr/25 to 5e-3 over the first 30%, cosine down to "
            "lr/1e4: a large step size early without diverging, a small one to settle) and label smoothing 0.05 "
            "(no over-confident logits, so the high learning rate stays stable). Narrower than 200-100 and it "
            "falls below 98%; wider and it is slower."
        ),
        config=RunConfig(
            name="speedrun",
            layers=[DenseConfig(units=200), DenseConfig(units=100)],
            optimizer=OptimizerConfig(name="adam"),
            learning_rate=5e-3,
            schedule=ScheduleConfig(name="onecycle", warmup=0.3),
            label_smoothing=0.05,
            batch_size=320,
            epochs=3,
        ),
    ),
    Preset(
        name="quick",
        description="One small ReLU layer on 10,000 images for 3 epochs: a few seconds, about 93%.",
        config=RunConfig(
            name="quick",
            layers=[DenseConfig(units=64)],
            learning_rate=2e-3,
            batch_size=64,
            epochs=3,
            train_subset=10_000,
        ),
    ),
    Preset(
        name="seed-article",
        description=(
            "The classic from-scratch tutorial: 784-128-10, sigmoid, mean squared error, plain SGD at 0.01, "
            "weights randn*0.01, one sample per step. Slow but it learns (~92% by epoch 4); try batch 128 to "
            "see it stall near 11%."
        ),
        config=RunConfig(
            name="seed-article",
            layers=[DenseConfig(units=128, activation="sigmoid")],
            output_activation="sigmoid",
            loss="mse",
            init="naive",
            optimizer=OptimizerConfig(name="sgd"),
            learning_rate=0.01,
            batch_size=1,
            epochs=4,
        ),
    ),
    Preset(
        name="dropout-wide",
        description="One wide ReLU layer (512) with 30% dropout and SGD with Nesterov momentum, step decay.",
        config=RunConfig(
            name="dropout-wide",
            layers=[DenseConfig(units=512, dropout=0.3)],
            optimizer=OptimizerConfig(name="nesterov", momentum=0.9),
            learning_rate=0.05,
            schedule=ScheduleConfig(name="step", step_size=4, gamma=0.3),
            batch_size=128,
            epochs=10,
        ),
    ),
    Preset(
        name="deep-sigmoid",
        description="Five sigmoid layers, naive init: watch the gradient histograms vanish layer by layer.",
        config=RunConfig(
            name="deep-sigmoid",
            layers=[DenseConfig(units=64, activation="sigmoid") for _ in range(5)],
            init="naive",
            optimizer=OptimizerConfig(name="sgd"),
            learning_rate=0.1,
            batch_size=64,
            epochs=5,
            train_subset=20_000,
        ),
    ),
]


PRESETS.append(Preset(name="cnn", description=CNN_DESCRIPTION, config=cnn_config("cnn")))


def get_preset(name: str) -> Preset | None:
    return next((p for p in PRESETS if p.name == name), None)
