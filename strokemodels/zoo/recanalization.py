"""The recanalization task's networks (Zhang, Polson et al. 2022): ``scanet``, the paper's SCANet, and
``resnet34-2d``, the slice-wise ResNet-34 it compares with. Specs here; the torch modules in
nets_recanalization, imported when a model is built. The radiomics row is a fitted model without
torch (``radiomics-logreg``, strokemodels.zoo.radiomics, registered with the baselines)."""

from __future__ import annotations

from typing import Any

from strokedata.manifest import Modality
from strokemodels.benchmark.tasks import TASKS
from strokemodels.registry import register_model
from strokemodels.spec import ModelSpec, Recipe
from strokemodels.zoo import seeded

PAPER = TASKS["recanalization"].source
SCANS = [Modality.NCCT, Modality.CTA]
RECIPE = Recipe(
    optimizer="adam",
    learning_rate=1e-4,
    weight_decay=1e-4,
    schedule="constant",
    epochs=200,
    patience=20,
    batch_size=12,
    loss="weighted-bce",
    class_weight_mu=1.0,
    weighted_sampler=False,
)
"""The paper's recipe: Adam with weight decay, batch 12, learning rate 1e-4, up to 200 epochs with early
stopping. The decay's value, the patience and the loss weighting are not in the text."""
SHARED_DEPARTURES = [
    "Adam's weight decay is 1e-4 (L2, torch's Adam); the paper says 'with weight decay' without a value",
    "early stopping after 20 epochs without a better validation AUC (the paper gives no patience); the "
    "best epoch's weights are kept",
    "binary cross-entropy with the positive class weighted by the log-smoothed class weights (mu = 1); "
    "the paper names no loss",
    "a constant learning rate (no schedule is described)",
    "inputs: NCCT and CTA after the recanalization pipeline (registered to the phantom CT template, "
    "skull-stripped), resized to 224 x 224 x 26; the paper's template and resampling are its own",
]


@register_model(
    ModelSpec(
        name="scanet",
        task="recanalization",
        kind="learned",
        summary="SCANet: ResNet-34 slice branches with spatial and cross attention transformers",
        inputs=SCANS,
        pipeline="recanalization",
        input_shape=(2, 224, 224, 26),
        parameters=27_618_050,
        citation=PAPER,
        departures=[
            "the paper describes SCANet in one paragraph and a figure the text lacks: here NCCT and CTA are "
            "the two channels of each slice; the global block is ResNet-34's stem, a branch its four stages "
            "(one set of weights); neighbourhoods of 3 consecutive slices with stride 1 (24 branches at 26 "
            "slices)",
            "the spatial attention transformer is one pre-norm encoder block over the 512-channel map with a "
            "class token and learned positions (7 x 7, resized for other sizes); the cross attention "
            "transformer one block in which a learned query attends to the neighbourhood's slices, its "
            "attention weighing them; width 512, 8 heads, MLP ratio 4, dropout 0.1",
            "each branch gives two-class logits through one shared layer; the weighted softmax is sum_n a_n "
            "softmax(z_n), a a softmax of a learned score of each branch; the output is the logit of the "
            "favourable class",
            *SHARED_DEPARTURES,
        ],
        recipe=RECIPE,
    ),
    source="strokebench",
)
def build_scanet(spec: ModelSpec, seed: int) -> Any:
    """Return a seeded SCANet for the spec's channels."""
    from strokemodels.zoo.nets_recanalization import SCANet

    return seeded(seed, lambda: SCANet(in_channels=len(spec.inputs)))


@register_model(
    ModelSpec(
        name="resnet34-2d",
        task="recanalization",
        kind="learned",
        summary="slice-wise 2D ResNet-34, features averaged over slices: the baseline of Zhang et al.",
        inputs=SCANS,
        pipeline="recanalization",
        input_shape=(2, 224, 224, 26),
        parameters=21_282_049,
        citation=PAPER + "; He et al. 2016 (ResNet)",
        departures=[
            "trained from scratch: no pretrained weights are downloaded (--init-weights takes a "
            "local torchvision resnet34 state dict)",
            *SHARED_DEPARTURES,
        ],
        recipe=RECIPE,
    ),
    source="strokebench",
)
def build_resnet34_2d(spec: ModelSpec, seed: int) -> Any:
    """Return a seeded slice-wise ResNet-34 for the spec's channels."""
    from strokemodels.zoo.nets_recanalization import ResNet34Slices

    return seeded(seed, lambda: ResNet34Slices(in_channels=len(spec.inputs)))
