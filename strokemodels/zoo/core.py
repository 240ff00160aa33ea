"""The core task's networks (de Vries et al. 2021): ``ctp-transformer``, which classifies the 4 central
pixels of 32 x 32 pixel x 32 frame CTP patches (with the mirrored scan as a second channel) and, over
overlapping patches, maps a slice (the spatial attention map, TFA); and ``ctp-unet``, the second stage,
which segments each slice from the TFA, the first frame and the maximum-intensity frame. Specs here; the
torch modules in nets_core, imported when a model is built."""

from __future__ import annotations

from typing import Any

from strokedata.manifest import Modality
from strokemodels.benchmark.tasks import TASKS
from strokemodels.registry import register_model
from strokemodels.spec import ModelSpec, Recipe
from strokemodels.zoo import seeded

PAPER = TASKS["core"].source
SHARED_DEPARTURES = [
    "the series is the core pipeline's output: resampled to 32 frames, with the mirrored copy added on "
    "loading (no registration of the flipped scan beyond the pipeline's own)",
]


@register_model(
    ModelSpec(
        name="ctp-transformer",
        task="core",
        kind="learned",
        summary="Linformer over the 32 frames of a 32 x 32 CTP patch (+ mirrored channel): core or not",
        inputs=[Modality.CTP],
        pipeline="core",
        input_shape=(2, 32, 32, 32),
        parameters=2_654_337,
        citation=PAPER + "; Wang et al. 2020 (Linformer)",
        departures=[
            "Linformer's projection length k = 16 (33 tokens projected down; the paper gives none), one E "
            "and one F per layer shared by the heads; pre-norm blocks with a 4x GELU feed-forward, dropout "
            "0.1 on attention and feed-forward, a LayerNorm before the head",
            "binary cross-entropy of one logit (the paper's two-class cross-entropy); the label is the core "
            "value of the patch's centre pixel (the top-left of the central 2 x 2, which the sampler "
            "balances on) rather than a rule over all four",
            "Adam at 1e-4 with cosine decay ('a decaying learning rate'), batches of 64 and 4096 patches an "
            "epoch, which the paper does not give; the best epoch is chosen by the Dice of the validation "
            "patients' maps made at an 8-pixel stride (each patch filling its central 8 x 8)",
            *SHARED_DEPARTURES,
        ],
        recipe=Recipe(
            optimizer="adam",
            learning_rate=1e-4,
            schedule="cosine",
            epochs=150,
            batch_size=64,
            loss="bce",
            weighted_sampler=False,
            samples_per_epoch=4096,
            attention_stride=2,
        ),
        sample="patch",
    ),
    source="strokebench",
)
def build_ctp_transformer(spec: ModelSpec, seed: int) -> Any:
    """Return a seeded CTP transformer."""
    from strokemodels.zoo.nets_core import CTPTransformer

    return seeded(seed, lambda: CTPTransformer(in_channels=spec.input_shape[0]))


@register_model(
    ModelSpec(
        name="ctp-unet",
        task="core",
        kind="learned",
        summary="U-Net (three down-sampling steps) over the TFA, first and maximum-intensity frames",
        inputs=[Modality.CTP],
        pipeline="core",
        input_shape=(3, 256, 256),
        parameters=7_700_161,
        citation=PAPER + "; Ronneberger et al. 2015 (U-Net)",
        departures=[
            "Ronneberger's widths 64-128-256-512-1024 with padded 3x3 convolutions, batch normalisation, "
            "2x2 max pooling and transposed convolutions; one output logit; slices padded to a multiple of 8",
            "SGD at 1e-2 with momentum 0.9, cosine decay, batches of 8 slices, 100 epochs: the paper gives "
            "the optimiser and the loss only",
            "the generalised Dice loss over core and background with weights 1 / (reference volume)^2 over "
            "the batch, a class absent from the batch taking the other's weight (as NiftyNet does)",
            "the attention map is made once per patient by the first stage's best checkpoint and cached; "
            "`--attention-stride` may coarsen it (the paper's is every 2 pixels)",
            *SHARED_DEPARTURES,
        ],
        recipe=Recipe(
            optimizer="sgd",
            learning_rate=1e-2,
            momentum=0.9,
            schedule="cosine",
            epochs=100,
            batch_size=8,
            loss="generalized-dice",
            weighted_sampler=False,
            attention_stride=2,
        ),
        sample="slice",
        stage_of="ctp-transformer",
    ),
    source="strokebench",
)
def build_ctp_unet(spec: ModelSpec, seed: int) -> Any:
    """Return a seeded U-Net for the spec's three channels."""
    from strokemodels.zoo.nets_core import UNet2d

    return seeded(seed, lambda: UNet2d(in_channels=spec.input_shape[0]))
