"""The occlusion task's networks (Papakyriakou et al. 2025): ``cbam3d``, the paper's 3D CNN with CBAM and
self-attention, and ``resnet18-cbam3d``, its baseline. Specs here; the torch modules in nets3d, imported
when a model is built."""

from __future__ import annotations

from typing import Any

from strokedata.manifest import Modality
from strokemodels.benchmark.tasks import TASKS
from strokemodels.registry import register_model
from strokemodels.spec import ModelSpec, Recipe
from strokemodels.zoo import seeded

PAPER = TASKS["occlusion"].source
MAPS = [Modality.CBF, Modality.CBV, Modality.TMAX]
RECIPE = Recipe(
    optimizer="adam",
    learning_rate=1e-3,
    schedule="cosine",
    epochs=45,
    batch_size=4,
    loss="weighted-cross-entropy",
    weighted_sampler=True,
    augment=["rotate-z"],
    select_by="macro_f1",
    class_weight_mu=1.0,
)
"""The paper's recipe: Adam at 1e-3, cosine annealing, 45 epochs, weighted cross-entropy with
log-smoothed inverse-frequency weights and resampling, the best epoch of a fold by its validation F1.
Batch size and augmentation are not in the text."""
SHARED_DEPARTURES = [
    "the best epoch of each fold is chosen by macro-averaged F1 over the three sites (the paper says "
    "F1 without naming the average)",
    "batch size 4 (the paper does not give one)",
    "the log-smoothed weights max(1, ln(mu N / n_c)) with mu = 1 (the paper gives no mu; the usual 0.15 "
    "gives all three classes weight 1 at the paper's mix, ICA-T 14.8%, M1 58.8%, M2 26.4%, so nothing "
    "would be weighted; mu = 1 gives 1.91, 1, 1.33)",
    "augmentation: small in-plane rotations (up to 10 degrees) of the cached maps; no left-right flips, "
    "since the pipeline mirrors every lesion to one side (the paper's text describes no augmentation)",
    "the template the maps are registered to is the phantom head, not the authors' in-house atlas",
]


@register_model(
    ModelSpec(
        name="cbam3d",
        task="occlusion",
        kind="learned",
        summary="3D CNN with CBAM attention after every stage and self-attention on the last feature map",
        inputs=MAPS,
        pipeline="occlusion",
        input_shape=(3, 512, 512, 27),
        parameters=906_572,
        citation=PAPER,
        departures=[
            "the architecture is drawn in a figure the text does not describe: four stages of two 3x3x3 "
            "convolutions with instance normalisation (batches of four 3D volumes make batch statistics "
            "noisy) and ReLU, CBAM and 2x max pooling (16, 32, 64, 128 channels), one "
            "self-attention block on the last feature map, global average pooling, dropout 0.3 and a "
            "linear layer are this implementation's choices",
            *SHARED_DEPARTURES,
        ],
        recipe=RECIPE,
    ),
    source="strokebench",
)
def build_cbam3d(spec: ModelSpec, seed: int) -> Any:
    """Return a seeded CBAM3dCNN for the spec's channels and the task's three classes."""
    from strokemodels.zoo.nets3d import CBAM3dCNN

    return seeded(seed, lambda: CBAM3dCNN(len(spec.inputs), len(TASKS[spec.task].classes)))


@register_model(
    ModelSpec(
        name="resnet18-cbam3d",
        task="occlusion",
        kind="learned",
        summary="Tahyudin et al.'s ResNet-18 + CBAM in 3D: the baseline of Papakyriakou et al. 2025",
        inputs=MAPS,
        pipeline="occlusion",
        input_shape=(3, 512, 512, 27),
        parameters=33_369_457,
        citation=PAPER + "; Tahyudin et al. 2024 (ResNet-18 + CBAM, 2D)",
        departures=[
            "trained from scratch: no pretrained weights are downloaded",
            "CBAM on the last feature map of the 3D ResNet-18, then a head of 512 -> 256 -> 3 with ReLU and "
            "dropout 0.3 (Tahyudin et al.'s head sizes are not given)",
            *SHARED_DEPARTURES,
        ],
        recipe=RECIPE,
    ),
    source="strokebench",
)
def build_resnet18_cbam3d(spec: ModelSpec, seed: int) -> Any:
    """Return a seeded ResNet18CBAM3d for the spec's channels and the task's three classes."""
    from strokemodels.zoo.nets3d import ResNet18CBAM3d

    return seeded(seed, lambda: ResNet18CBAM3d(len(spec.inputs), len(TASKS[spec.task].classes)))
