"""The clot-regions task's networks (the AMI-Net report): ``cnn4``, its simple CNN, ``mobilenetv2`` and
``efficientformerv2``, each classifying the 15 atlas regions of one axial CTA slice (a patient's regions:
the union over its slices). Specs here; the torch modules in nets_slices and nets_efficientformer,
imported when a model is built."""

from __future__ import annotations

from typing import Any

from strokedata.manifest import Modality
from strokemodels.benchmark.tasks import TASKS
from strokemodels.registry import register_model
from strokemodels.spec import ModelSpec, Recipe
from strokemodels.zoo import seeded

PAPER = TASKS["clot-regions"].source
PHASES = [Modality.MCTA1, Modality.MCTA2, Modality.MCTA3]
SHARED_DEPARTURES = [
    "the patient's regions are the union of its slices' regions at 0.5 (the report scores slices)",
    "the best epoch is chosen on the validation fold by the task's primary metric; the report trains a "
    "fixed number of epochs",
    "inputs are the clot-regions pipeline's output: give it a CT window (`--set window=angiography`) so "
    "that the slices are scaled to [0, 1]; the report's normalisation is not described",
]


def _recipe(learning_rate: float, positive_weight: float) -> Recipe:
    """Return the report's recipe with its tuned learning rate and positive-class weight."""
    return Recipe(
        optimizer="adam",
        learning_rate=learning_rate,
        schedule="constant",
        epochs=40,
        batch_size=32,
        loss="weighted-bce",
        positive_weight=positive_weight,
        weighted_sampler=False,
    )


@register_model(
    ModelSpec(
        name="cnn4",
        task="clot-regions",
        kind="learned",
        summary="the report's simple CNN: two 5x5 convolutions with 4x4 pooling, fully connected layers",
        inputs=[Modality.MCTA1],
        pipeline="clot-regions",
        input_shape=(1, 128, 128),
        parameters=1_608_559,
        citation=PAPER,
        departures=[
            "the report's best raw-CTA setting (its tables): 4x4 max pooling, 512 features, tanh, dropout "
            "0.27, two extra fully connected layers, 128 x 128 slices; 'same' padding of the 5x5 "
            "convolutions; dropout after every hidden fully connected layer only",
            "15 sigmoid outputs (the report's figure draws a softmax over the regions, its loss is a "
            "multi-label binary cross-entropy)",
            "one channel, the first mCTA phase (the report's single raw CTA input)",
            *SHARED_DEPARTURES,
        ],
        recipe=_recipe(0.0009, 15.65),
        sample="slice",
    ),
    source="strokebench",
)
def build_cnn4(spec: ModelSpec, seed: int) -> Any:
    """Return a seeded CNN4 for the spec's channels and input size."""
    from strokemodels.zoo.nets_slices import CNN4

    return seeded(seed, lambda: CNN4(in_channels=len(spec.inputs), input_size=spec.input_shape[1]))


@register_model(
    ModelSpec(
        name="mobilenetv2",
        task="clot-regions",
        kind="learned",
        summary="MobileNetV2 (width 1.0) on 224 x 224 slices, 15 sigmoid outputs",
        inputs=PHASES,
        pipeline="clot-regions",
        input_shape=(3, 224, 224),
        parameters=2_243_087,
        citation=PAPER + "; Sandler et al. 2018 (MobileNetV2)",
        departures=[
            "the three mCTA phases are the three input channels (the report feeds 'CTA frames' to an "
            "ImageNet network without saying how one scan fills three channels)",
            "trained from scratch unless --init-weights gives a local torchvision mobilenet_v2 state dict "
            "(the report starts from ImageNet weights; nothing is downloaded here)",
            *SHARED_DEPARTURES,
        ],
        recipe=_recipe(7.01e-4, 15.59),
        sample="slice",
    ),
    source="strokebench",
)
def build_mobilenetv2(spec: ModelSpec, seed: int) -> Any:
    """Return a seeded MobileNetV2 for the spec's channels."""
    from strokemodels.zoo.nets_slices import MobileNetV2

    return seeded(seed, lambda: MobileNetV2(in_channels=len(spec.inputs)))


@register_model(
    ModelSpec(
        name="efficientformerv2",
        task="clot-regions",
        kind="learned",
        summary="EfficientFormerV2-S0 vision transformer on 224 x 224 slices, 15 sigmoid outputs",
        inputs=PHASES,
        pipeline="clot-regions",
        input_shape=(3, 224, 224),
        parameters=3_248_911,
        citation=PAPER + "; Li et al. 2023 (EfficientFormerV2)",
        departures=[
            "the three mCTA phases are the three input channels (as for mobilenetv2)",
            "trained from scratch unless --init-weights gives a local state dict of the same layout "
            "(the report fine-tunes pretrained weights)",
            "timm's S0 layout (attention in the last two blocks of stages 3 and 4, attention "
            "down-sampling into stage 4), one head without distillation, layer scale 1e-5; built for one "
            "input size (its attention biases depend on it)",
            *SHARED_DEPARTURES,
        ],
        recipe=_recipe(1.3e-3, 13.54),
        sample="slice",
    ),
    source="strokebench",
)
def build_efficientformerv2(spec: ModelSpec, seed: int) -> Any:
    """Return a seeded EfficientFormerV2-S0 for the spec's channels and input size."""
    from strokemodels.zoo.nets_efficientformer import EfficientFormerV2

    return seeded(
        seed, lambda: EfficientFormerV2(in_channels=len(spec.inputs), input_size=spec.input_shape[1])
    )
