"""Samples for training: class weights against imbalance and a seeded weighted sampler (000), every
slice of every patient as a sample with its clot regions (002, 003), and core-balanced patches (002).

Nothing here imports torch: the datasets are map-style (``__len__`` / ``__getitem__``) and the sampler
an iterable of indices with ``__len__``, which ``torch.utils.data.DataLoader`` takes as they are.

Example:
    >>> from strokedata.sampling import WeightedSampler, inverse_frequency_weights, sample_weights
    >>> labels = [0, 0, 0, 1]
    >>> sampler = WeightedSampler(sample_weights(labels, inverse_frequency_weights(labels)), seed=0)
    >>> len(sampler)
    4
"""

from strokedata.sampling.patches import PatchDataset, extract_patch
from strokedata.sampling.slices import SliceDataset
from strokedata.sampling.weights import (
    MU,
    WeightedSampler,
    class_counts,
    class_weights,
    inverse_frequency_weights,
    positive_weights,
    sample_weights,
)

__all__ = [
    "MU",
    "PatchDataset",
    "SliceDataset",
    "WeightedSampler",
    "class_counts",
    "class_weights",
    "extract_patch",
    "inverse_frequency_weights",
    "positive_weights",
    "sample_weights",
]
