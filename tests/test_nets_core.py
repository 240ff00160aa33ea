"""The infarct-core networks (002): shapes, parameter counts, training steps, seeds, the generalised Dice
loss, and the attention map's agreement with PatchDataset's patches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchio as tio
from torch import nn

from strokedata.sampling.patches import PatchDataset, extract_patch
from strokemodels.zoo.nets_core import CTPTransformer, UNet2d, attention_map, generalized_dice_loss
from tests.steps import adam_losses

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --- shapes and sizes ----------------------------------------------------------------------------------


def test_transformer_shapes_and_the_paper_size_on_meta() -> None:
    torch.manual_seed(0)
    small = CTPTransformer(patch=8, frames=5, dim=16, depth=2, heads=4, k=3)
    assert small(torch.randn(3, 2, 8, 8, 5)).shape == (3, 1)
    with pytest.raises(ValueError, match="expects"):
        small(torch.randn(3, 2, 8, 8, 6))
    with pytest.raises(ValueError, match="divisible"):
        CTPTransformer(dim=30, heads=8)
    with torch.device("meta"):
        model = CTPTransformer()
        out = model(torch.empty(64, 2, 32, 32, 32))
    assert out.shape == (64, 1) and out.device.type == "meta"


def test_unet_shapes_and_the_paper_size_on_meta() -> None:
    torch.manual_seed(0)
    small = UNet2d(base=4)
    assert small(torch.randn(2, 3, 16, 24)).shape == (2, 1, 16, 24)
    with pytest.raises(ValueError, match="multiples of 8"):
        small(torch.randn(2, 3, 16, 20))
    with torch.device("meta"):
        out = UNet2d()(torch.empty(4, 3, 256, 256))
    assert out.shape == (4, 1, 256, 256) and out.device.type == "meta"


def test_exact_parameter_counts() -> None:
    with torch.device("meta"):
        transformer, unet = CTPTransformer(), UNet2d()
    # embedding 2048*128+128, class token 128, positions 33*128, 12 blocks of 198,944, norm 256, head 129
    per_block = (
        2 * 256 + 3 * 128 * 128 + 2 * 33 * 16 + (128 * 128 + 128) + (128 * 512 + 512) + (512 * 128 + 128)
    )
    assert per_block == 198_944
    assert _count(transformer) == 2048 * 128 + 128 + 128 + 33 * 128 + 12 * per_block + 256 + 129 == 2_654_337
    assert _count(unet) == 7_700_161
    with torch.device("meta"):
        assert _count(CTPTransformer(k=64)) == 2_654_337 + 12 * 2 * 33 * 48
        assert _count(UNet2d(base=32)) == 1_927_009


# --- training and seeds ----------------------------------------------------------------------------------


def test_adam_steps_lower_the_transformer_loss() -> None:
    torch.manual_seed(0)
    model = CTPTransformer(dropout=0.0)
    patches, labels = torch.randn(2, 2, 32, 32, 32), torch.tensor([[0.0], [1.0]])
    losses = adam_losses(model, patches, labels, nn.functional.binary_cross_entropy_with_logits)
    assert losses[-1] < losses[0]


def test_adam_steps_lower_the_unet_generalised_dice_loss() -> None:
    torch.manual_seed(0)
    model = UNet2d()
    images = torch.randn(2, 3, 16, 16)
    target = (images[:, :1] > 0.5).float()
    losses = adam_losses(model, images, target, generalized_dice_loss)
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("kind", ["transformer", "unet"])
def test_the_same_seed_gives_the_same_outputs(kind: str) -> None:
    def run(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        if kind == "transformer":
            model: nn.Module = CTPTransformer(patch=8, frames=6, dim=32, depth=2, heads=4, k=4, dropout=0.5)
            inputs = torch.randn(3, 2, 8, 8, 6)
        else:
            model, inputs = UNet2d(base=8), torch.randn(2, 3, 16, 16)
        out: torch.Tensor = model.train()(inputs)  # training mode: dropout draws from the global generator
        return out

    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(3), run(4))


# --- generalised Dice loss -------------------------------------------------------------------------------


def _numpy_gdl(logits: np.ndarray, target: np.ndarray) -> float:
    """Sudre et al.'s formula written out: classes core and background, w = 1 / (sum of reference)^2."""
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    numerator = denominator = 0.0
    for prob, ref in ((p, target), (1 - p, 1 - target)):
        weight = 1 / ref.sum() ** 2
        numerator += weight * (ref * prob).sum()
        denominator += weight * (ref + prob).sum()
    return float(1 - 2 * numerator / denominator)


def test_generalised_dice_matches_the_formula_and_its_extremes() -> None:
    rng = np.random.default_rng(0)
    for _ in range(5):
        logits = rng.normal(0, 2, (3, 1, 8, 8)).astype(np.float32)
        target = (rng.random((3, 1, 8, 8)) < rng.uniform(0.05, 0.5)).astype(np.float32)
        loss = generalized_dice_loss(torch.from_numpy(logits), torch.from_numpy(target))
        assert loss.shape == ()
        assert loss.item() == pytest.approx(_numpy_gdl(logits, target), abs=1e-5)
    target_t = torch.from_numpy(target)
    assert generalized_dice_loss(100 * (2 * target_t - 1), target_t).item() < 1e-6  # perfect
    assert generalized_dice_loss(-100 * (2 * target_t - 1), target_t).item() > 1 - 1e-6  # inverse
    empty = torch.zeros(2, 1, 8, 8)  # no core in the batch: the weights stay finite
    loss = generalized_dice_loss(torch.randn(2, 1, 8, 8), empty)
    assert torch.isfinite(loss) and 0 <= loss.item() <= 1
    assert generalized_dice_loss(torch.full((2, 1, 8, 8), -100.0), empty).item() < 1e-6
    with torch.device("meta"):
        assert generalized_dice_loss(torch.empty(2, 1, 8, 8), torch.empty(2, 1, 8, 8)).shape == ()


# --- attention map ---------------------------------------------------------------------------------------


class Probe(nn.Module):
    """A hand-made network: a fixed random linear function of the whole (B, C, P, P, T) patch."""

    def __init__(self, channels: int, patch: int, frames: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(channels, patch, patch, frames) / 40)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.weight).sum(dim=(1, 2, 3, 4))[:, None]


def _patch_dataset(series: torch.Tensor, patches: int) -> PatchDataset:
    """A PatchDataset over one subject whose only slice is ``series`` (C, X, Y, T)."""
    channels, size_x, size_y, frames = series.shape
    ctp = series.permute(0, 3, 1, 2).reshape(channels * frames, size_x, size_y, 1).numpy()  # channel-major
    core = np.zeros((1, size_x, size_y, 1), dtype=np.uint8)
    core[0, 2:5, 3:6] = 1
    image, label = tio.ScalarImage(tensor=ctp), tio.LabelMap(tensor=core)  # type: ignore[no-untyped-call]
    subject = tio.Subject(CTP=image, CORE=label, patient_id="p")
    return PatchDataset(
        [subject], patches_per_epoch=patches, seed=0, frames=frames, channels=channels, signal_threshold=None
    )


@pytest.mark.parametrize("kind", ["probe", "transformer"])
def test_attention_map_agrees_with_patch_dataset(kind: str) -> None:
    torch.manual_seed(0)
    size_x, size_y, frames = 9, 8, 4
    model: nn.Module = (
        Probe(2, 32, frames)
        if kind == "probe"
        else CTPTransformer(patch=32, frames=frames, dim=16, depth=1, heads=2, k=4)
    )
    series = torch.randn(2, size_x, size_y, frames)
    dataset = _patch_dataset(series, 120)
    by_pixel = attention_map(model, series, stride=1, batch=17)
    by_block = attention_map(model, series, stride=2, batch=17)
    ids = np.arange(1, size_x * size_y + 1).reshape(1, size_x, size_y, 1)  # 0: outside the slice
    middle = slice((32 - 1) // 2, 32 // 2 + 1)  # PatchDataset's central 2 x 2: patch rows 15 .. 16
    checked = 0
    model.eval()
    for index in range(len(dataset)):
        item = dataset[index]
        x, y, _ = item["centre"].tolist()
        with torch.no_grad():
            expected = torch.sigmoid(model(torch.from_numpy(item["patch"]).permute(0, 2, 3, 1)[None]))[0, 0]
        assert by_pixel[x, y].item() == pytest.approx(expected.item(), abs=1e-5)  # stride 1: the centre
        if x % 2 == 0 and y % 2 == 0:  # stride 2: the patch of centre (x, y) fills its central 2 x 2
            central = extract_patch(ids, x, y, 0, 32, "constant")[0][middle, middle]
            block = by_block[x : x + 2, y : y + 2]  # the central 2 x 2 within the slice
            assert sorted(ids[0, x : x + 2, y : y + 2, 0].ravel().tolist()) == sorted(central[central > 0])
            np.testing.assert_allclose(block.numpy(), expected.item(), atol=1e-5)
            checked += 1
    assert checked >= 10


class CentreReader(nn.Module):
    """Returns the logit of the value at channel 0, frame 0 and patch index (P - 1) // 2 (PatchDataset's
    centre) of each patch, and records those values."""

    def __init__(self, patch: int = 32) -> None:
        super().__init__()
        self.centre = (patch - 1) // 2
        self.seen: list[torch.Tensor] = []
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = x[:, 0, self.centre, self.centre, 0]
        self.seen.append(values.clone())
        return torch.logit(values.double()).float()[:, None] + self.bias


@pytest.mark.parametrize(("stride", "size_x", "size_y"), [(2, 7, 9), (4, 10, 11), (3, 8, 11), (1, 3, 2)])
def test_attention_map_writes_every_pixel_once(stride: int, size_x: int, size_y: int) -> None:
    code = (torch.arange(size_x * size_y, dtype=torch.float64).reshape(size_x, size_y) + 1) / (
        size_x * size_y + 2
    )
    series = torch.zeros(2, size_x, size_y, 3)
    series[0] = code.float()[:, :, None]
    reader = CentreReader().train()
    result = attention_map(reader, series, stride=stride, batch=4)
    assert result.shape == (size_x, size_y) and result.dtype == torch.float32
    assert reader.training and not result.is_inference()
    # each patch ran once: one per stride x stride block, its centre 15 - (32 - stride) // 2 into the block
    shift = 15 - (32 - stride) // 2
    blocks = [(bx, by) for bx in range(0, size_x, stride) for by in range(0, size_y, stride)]
    seen = torch.cat(reader.seen).double()
    assert len(seen) == len(blocks)
    np.testing.assert_allclose(
        sorted(seen.tolist()), sorted(code[bx + shift, by + shift].item() for bx, by in blocks), rtol=1e-6
    )
    # every pixel holds the probability of the one patch whose central stride x stride block holds it
    rows = (torch.arange(size_x) // stride) * stride + shift
    cols = (torch.arange(size_y) // stride) * stride + shift
    np.testing.assert_allclose(result.numpy(), code[rows[:, None], cols[None, :]].numpy(), atol=1e-5)
    if stride == 4:  # the patch of centre (5, 5) starts at 5 - 15 = -10 and fills pixels -10 + 14 .. -10 + 17
        assert torch.nonzero(torch.isclose(result, code[5, 5].float())).tolist() == [
            [i, j] for i in range(4, 8) for j in range(4, 8)
        ]
    assert torch.equal(attention_map(reader, series, stride=stride, batch=1000), result)


def test_attention_map_on_meta() -> None:
    with torch.device("meta"):
        model = CTPTransformer()
        result = attention_map(model, torch.empty(2, 40, 34, 32), stride=2, batch=64)
    assert result.shape == (40, 34) and result.device.type == "meta"
