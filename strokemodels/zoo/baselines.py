"""The rule baselines' specs and builders (the rules themselves: strokemodels.zoo.rules)."""

from __future__ import annotations

from strokedata.manifest import Modality
from strokemodels.benchmark.tasks import TASKS
from strokemodels.registry import register_model
from strokemodels.spec import ModelSpec
from strokemodels.zoo.rules import (
    OCCLUSION_CLASSES,
    MajorityClass,
    RcbfThreshold,
    SpiralThreshold,
    TmaxTerritory,
)


@register_model(
    ModelSpec(
        name="majority-occlusion",
        task="occlusion",
        kind="rule",
        summary="the most frequent class of the training partition, for every patient",
        inputs=[],
        pipeline="occlusion",
        parameters=0,
        citation="a floor every learned occlusion model must beat",
    ),
    source="strokebench",
)
def build_majority(spec: ModelSpec, seed: int) -> MajorityClass:
    """Return the majority-class rule over the occlusion classes."""
    return MajorityClass(len(OCCLUSION_CLASSES))


@register_model(
    ModelSpec(
        name="tmax-territory",
        task="occlusion",
        kind="rule",
        summary="ICA-T / M1 / M2 from the share of the ACA and deep MCA territories with Tmax > 6 s",
        inputs=[Modality.TMAX],
        pipeline="occlusion",
        parameters=0,
        citation=TASKS["occlusion"].source + ", quoting Peerlings et al. 2023 (atlas-based)",
        departures=[
            "Peerlings et al.'s atlas and rules are not in the paper we have: here the phantom template's "
            "territories (the occlusion pipeline registers to it), the occluded side by the Tmax rule, ICA-T "
            "when the ACA territory's hypoperfused share exceeds a threshold, else M1 when the deep MCA "
            "territory's does, else M2; both thresholds fitted by macro F1 on the training partition",
        ],
    ),
    source="strokebench",
)
def build_tmax_territory(spec: ModelSpec, seed: int) -> TmaxTerritory:
    """Return the Tmax-territory rule with its thresholds still to fit."""
    return TmaxTerritory()


@register_model(
    ModelSpec(
        name="spiral-threshold",
        task="clot-regions",
        kind="rule",
        summary="atlas regions under SPIRAL > t, slice by slice; t swept 0.0-0.95 by F1 on the training set",
        inputs=[Modality.SPIRAL, Modality.ATLAS],
        pipeline="clot-regions",
        parameters=0,
        citation=TASKS["clot-regions"].source,
    ),
    source="strokebench",
)
def build_spiral_threshold(spec: ModelSpec, seed: int) -> SpiralThreshold:
    """Return the SPIRAL threshold rule with its threshold still to fit."""
    return SpiralThreshold()


@register_model(
    ModelSpec(
        name="rcbf-threshold",
        task="core",
        kind="rule",
        summary="core where CBF < 30% of the healthy hemisphere's mean inside the brain",
        inputs=[Modality.CBF],
        pipeline="none",
        parameters=0,
        citation="the relative-CBF threshold baseline of ISLES 2018 (" + TASKS["core"].source + ")",
        departures=[
            "the brain is where CBF > 0 and the healthy hemisphere the one with the higher mean CBF; "
            "nothing is fitted (the literature's 30%)",
        ],
    ),
    source="strokebench",
)
def build_rcbf_threshold(spec: ModelSpec, seed: int) -> RcbfThreshold:
    """Return the relative-CBF threshold rule (30%, without Tmax)."""
    return RcbfThreshold()
