"""The rule baselines' specs and builders (the rules themselves: strokemodels.zoo.rules, and the fitted
radiomics model: strokemodels.zoo.radiomics)."""

from __future__ import annotations

from strokedata.manifest import N_REGIONS, Modality
from strokemodels.benchmark.tasks import TASKS
from strokemodels.registry import register_model
from strokemodels.spec import ModelSpec
from strokemodels.zoo.radiomics import RadiomicsLogReg
from strokemodels.zoo.rules import (
    OCCLUSION_CLASSES,
    MajorityClass,
    Prevalence,
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


@register_model(
    ModelSpec(
        name="majority-recanalization",
        task="recanalization",
        kind="rule",
        summary="the training share of favourable recanalization, for every patient",
        inputs=[],
        pipeline="recanalization",
        parameters=0,
        citation="a floor every learned recanalization model must beat",
    ),
    source="strokebench",
)
def build_majority_recanalization(spec: ModelSpec, seed: int) -> Prevalence:
    """Return the prevalence rule of one output."""
    return Prevalence(1)


@register_model(
    ModelSpec(
        name="majority-regions",
        task="clot-regions",
        kind="rule",
        summary="each region's training share of slices with clot, on every slice (at 0.5: no region)",
        inputs=[Modality.MCTA1],
        pipeline="clot-regions",
        parameters=0,
        citation="a floor every learned clot-regions model must beat",
    ),
    source="strokebench",
)
def build_majority_regions(spec: ModelSpec, seed: int) -> Prevalence:
    """Return the prevalence rule of the 15 regions."""
    return Prevalence(N_REGIONS)


@register_model(
    ModelSpec(
        name="radiomics-logreg",
        task="recanalization",
        kind="rule",
        summary="first-order and shape features of the hypodense, hypoperfused and clot regions, "
        "logistic regression",
        inputs=[Modality.NCCT, Modality.CTA, Modality.BRAIN_MASK],
        pipeline="recanalization",
        parameters=0,
        citation=TASKS["recanalization"].source + " (its radiomics row)",
        departures=[
            "the paper gives its radiomics model's result only: the regions (NCCT darker than its mirror, "
            "CTA enhancement below its mirror, dense 50-90 HU voxels above their mirror), the 14 features "
            "and the classifier (standardised features, logistic regression, C = 1, balanced classes) are "
            "this implementation's; it is fitted like a rule (no gradient training), its 43 fitted numbers "
            "kept as JSON",
        ],
    ),
    source="strokebench",
)
def build_radiomics_logreg(spec: ModelSpec, seed: int) -> RadiomicsLogReg:
    """Return the radiomics model, to fit."""
    return RadiomicsLogReg()
