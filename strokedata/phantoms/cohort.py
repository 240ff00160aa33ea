"""Per-patient draws that are not images: occlusion site and side, site, clinical scalars, mTICI.

mTICI follows a documented logistic model of phantom features, so that a model can learn it from the
images (site, clot length, collateral filling) but not perfectly:
    logit P(mTICI >= 2c) = 0.4 + b_site - 0.12 (clot length - 10 mm) + 2.0 (collateral - 0.55)
with b_site = -0.9 (ICA-T), 0 (M1), +0.5 (M2). A favourable outcome is 2c (45%) or 3 (55%); an
unfavourable one 0 (15%), 1 (10%), 2a (30%) or 2b (45%).
"""

from __future__ import annotations

import numpy as np

from strokedata.manifest import MTICI, OCCLUSION_LOCATIONS, OcclusionLocation, OcclusionSide
from strokedata.phantoms.config import PhantomConfig
from strokedata.phantoms.vessels import Occlusion

SITE_EFFECT = {"ICA-T": -0.9, "M1": 0.0, "M2": 0.5}
FAVOURABLE: tuple[tuple[MTICI, float], ...] = (("2c", 0.45), ("3", 0.55))
UNFAVOURABLE: tuple[tuple[MTICI, float], ...] = (("0", 0.15), ("1", 0.10), ("2a", 0.30), ("2b", 0.45))


def draw_site_and_side(
    rng: np.random.Generator, config: PhantomConfig
) -> tuple[OcclusionLocation, OcclusionSide]:
    """Return the occlusion location (from the configured mix) and side (left or right, equally likely)."""
    location = OCCLUSION_LOCATIONS[int(rng.choice(3, p=config.occlusion_probabilities()))]
    side: OcclusionSide = "L" if rng.uniform() < 0.5 else "R"
    return location, side


def probability_favourable(occlusion: Occlusion) -> float:
    """Return P(mTICI >= 2c) under the logistic model of this module's docstring."""
    logit = (
        0.4
        + SITE_EFFECT[occlusion.location]
        - 0.12 * (occlusion.clot_length - 10)
        + 2.0 * (occlusion.collateral - 0.55)
    )
    return float(1 / (1 + np.exp(-logit)))


def draw_mtici(rng: np.random.Generator, occlusion: Occlusion) -> MTICI:
    """Return an mTICI grade drawn from the logistic model."""
    grades = FAVOURABLE if rng.uniform() < probability_favourable(occlusion) else UNFAVOURABLE
    names = [grade for grade, _ in grades]
    return names[int(rng.choice(len(grades), p=[p for _, p in grades]))]


def draw_clinical(rng: np.random.Generator, deficit_ml: float) -> dict[str, int | float | str | bool | None]:
    """Return age (N(70, 12) in 25..98), sex, NIHSS (grows with the deficit volume) and onset to imaging."""
    return {
        "age": int(np.clip(round(rng.normal(70, 12)), 25, 98)),
        "sex": "F" if rng.uniform() < 0.5 else "M",
        "nihss": int(np.clip(round(4 + deficit_ml / 12 + rng.normal(0, 3)), 0, 42)),
        "onset_to_imaging_min": round(float(rng.lognormal(np.log(150), 0.5)), 1),
    }
