"""The recanalization networks (strokemodels.zoo.nets_recanalization): shapes at small and at the paper's
size, exact parameter counts, torchvision's names for the ResNet-34 trunk, learning, gradients, seeding,
and the properties of the slice mean and of SCANet's weighted softmax."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from strokemodels.zoo.nets_recanalization import NETWORKS, ResNet34Slices, ResNet34Trunk, SCANet

PAPER_INPUT = (2, 2, 224, 224, 26)  # (B, NCCT + CTA, X, Y, Z): 26 axial slices of 224 x 224
SMALL_INPUT = (2, 2, 64, 64, 8)
TORCHVISION_RESNET34_WITHOUT_FC = 21_284_672  # torchvision resnet34, 3 input channels, fc removed
CLASSES = [ResNet34Slices, SCANet]


def count(module: nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def build(cls: type[nn.Module], seed: int = 0, **options: float) -> nn.Module:
    torch.manual_seed(seed)
    return cls(in_channels=2, **options)


@pytest.fixture(scope="module")
def networks() -> dict[type[nn.Module], nn.Module]:
    """One network of each class in evaluation mode, built once (seed 0); tests must not change them."""
    return {cls: build(cls).eval() for cls in CLASSES}


def batch(shape: tuple[int, ...], seed: int = 1) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def torchvision_resnet34_shapes(in_channels: int) -> dict[str, tuple[int, ...]]:
    """The parameter and buffer names and shapes of torchvision's resnet34 without fc, written out from
    its definition (torchvision.models.resnet: BasicBlock, layers [3, 4, 6, 3])."""

    def bn(prefix: str, width: int) -> dict[str, tuple[int, ...]]:
        names = ("weight", "bias", "running_mean", "running_var")
        return {f"{prefix}.{name}": (width,) for name in names} | {f"{prefix}.num_batches_tracked": ()}

    shapes: dict[str, tuple[int, ...]] = {"conv1.weight": (64, in_channels, 7, 7), **bn("bn1", 64)}
    previous = 64
    for stage, (blocks, width) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512), strict=True), start=1):
        for block in range(blocks):
            prefix = f"layer{stage}.{block}"
            inputs = previous if block == 0 else width
            shapes[f"{prefix}.conv1.weight"] = (width, inputs, 3, 3)
            shapes |= bn(f"{prefix}.bn1", width)
            shapes[f"{prefix}.conv2.weight"] = (width, width, 3, 3)
            shapes |= bn(f"{prefix}.bn2", width)
            if block == 0 and stage > 1:
                shapes[f"{prefix}.downsample.0.weight"] = (width, inputs, 1, 1)
                shapes |= bn(f"{prefix}.downsample.1", width)
        previous = width
    return shapes


def transformer_block_parameters(dim: int, hidden: int) -> int:
    norms = 2 * 2 * dim
    attention = 4 * (dim * dim + dim)  # query, key, value, output projection
    mlp = dim * hidden + hidden + hidden * dim + dim
    return norms + attention + mlp


@pytest.mark.parametrize("cls", CLASSES)
def test_small_input_gives_one_finite_logit_per_patient(
    cls: type[nn.Module], networks: dict[type[nn.Module], nn.Module]
) -> None:
    with torch.no_grad():
        out = networks[cls](batch(SMALL_INPUT))
    assert out.shape == (2, 1)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("cls", CLASSES)
def test_paper_size_runs_on_the_meta_device(cls: type[nn.Module]) -> None:
    with torch.device("meta"):  # no initialisation cost; the weights are not used
        model = cls(in_channels=2)
    model = model.to("meta").eval()
    out = model(torch.empty(PAPER_INPUT, device="meta"))
    assert out.shape == (2, 1)
    assert out.device.type == "meta"


@pytest.mark.parametrize("shape", [(1, 2, 32, 32, 1), (1, 2, 33, 47, 2), (3, 2, 40, 32, 5)])
@pytest.mark.parametrize("cls", CLASSES)
def test_any_size_of_at_least_32_in_plane_and_any_slice_count(
    cls: type[nn.Module], shape: tuple[int, ...], networks: dict[type[nn.Module], nn.Module]
) -> None:
    with torch.no_grad():
        out = networks[cls](batch(shape))
    assert out.shape == (shape[0], 1)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("cls", CLASSES)
def test_other_shapes_are_refused(cls: type[nn.Module], networks: dict[type[nn.Module], nn.Module]) -> None:
    with pytest.raises(ValueError, match=r"\(B, 2, X, Y, Z\)"):
        networks[cls](batch((1, 3, 32, 32, 2)))
    with pytest.raises(ValueError, match="expected a batch"):
        networks[cls](batch((1, 2, 32, 32)))


def test_parameter_counts_are_exact() -> None:
    with torch.device("meta"):  # counting needs no initialised weights
        resnet, scanet = ResNet34Slices(in_channels=2), SCANet(in_channels=2)
        trunk3 = ResNet34Trunk(in_channels=3)
    trunk = 21_281_536
    assert trunk == TORCHVISION_RESNET34_WITHOUT_FC - 64 * 3 * 7 * 7 + 64 * 2 * 7 * 7
    assert count(trunk3) == TORCHVISION_RESNET34_WITHOUT_FC

    print(f"\nResNet34Slices parameters: {count(resnet):,}")
    assert count(resnet) - count(resnet.fc) == trunk
    assert count(resnet) == trunk + 512 + 1 == 21_282_049

    block = transformer_block_parameters(512, 2048)
    spatial = block + 2 * 512 + 512 + (1 + 7 * 7) * 512  # block, norm, class token, positions of 7x7 + 1
    cross = block + 2 * 512 + 512 + 3 * 512  # block, norm, query token, positions of 3 slices
    heads = (512 * 2 + 2) + 512  # two-class classifier and branch score (no bias)
    print(f"SCANet parameters: {count(scanet):,} (trunk {trunk:,}, SAT {spatial:,}, CAT {cross:,})")
    assert count(scanet.backbone) == trunk
    assert count(scanet.spatial) == spatial
    assert count(scanet.cross) == cross
    assert count(scanet) == trunk + spatial + cross + heads == 27_618_050


def test_resnet_trunk_keys_and_shapes_are_torchvision_resnet34s(
    networks: dict[type[nn.Module], nn.Module],
) -> None:
    expected = torchvision_resnet34_shapes(in_channels=2)
    assert len(expected) == 216  # torchvision resnet34's state dict holds 218 entries with fc
    resnet = {key: tuple(value.shape) for key, value in networks[ResNet34Slices].state_dict().items()}
    assert resnet == expected | {"fc.weight": (1, 512), "fc.bias": (1,)}
    scanet = networks[SCANet]
    assert isinstance(scanet, SCANet)
    backbone = {key: tuple(value.shape) for key, value in scanet.backbone.state_dict().items()}
    assert backbone == expected

    # A torchvision-style state dict (fc removed) loads by key, leaving only fc to learn.
    with torch.device("meta"):
        target = ResNet34Slices()
    result = target.load_state_dict(scanet.backbone.state_dict(), strict=False, assign=True)
    assert sorted(result.missing_keys) == ["fc.bias", "fc.weight"]
    assert result.unexpected_keys == []
    assert torch.equal(target.layer3[5].conv2.weight, scanet.backbone.layer3[5].conv2.weight)


@pytest.mark.parametrize("cls", CLASSES)
def test_gradients_reach_every_parameter_and_adam_steps_lower_the_bce_loss(cls: type[nn.Module]) -> None:
    model = build(cls, dropout=0.0) if cls is SCANet else build(cls)  # no dropout: comparable losses
    model.train()
    x = batch((4, 2, 32, 32, 4))  # 2 SCANet branches: the branch weights get a gradient
    labels = torch.tensor([[0.0], [1.0], [1.0], [0.0]])
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True)  # the paper's learning rate
    losses = []
    for step in range(3):
        optimiser.zero_grad()
        logits = model(x)
        assert logits.shape == (4, 1)
        loss = nn.functional.binary_cross_entropy_with_logits(logits, labels)
        loss.backward()
        if step == 0:
            for name, parameter in model.named_parameters():
                assert parameter.grad is not None, name
                assert torch.isfinite(parameter.grad).all(), name
                assert parameter.grad.abs().sum() > 0, name
        optimiser.step()
        losses.append(loss.item())
    with torch.no_grad():
        final = nn.functional.binary_cross_entropy_with_logits(model(x), labels).item()
    assert all(math.isfinite(value) for value in losses)
    assert final < 0.5 * losses[0], (losses, final)


@pytest.mark.parametrize("cls", CLASSES)
def test_the_same_seed_gives_the_same_network_and_outputs(
    cls: type[nn.Module], networks: dict[type[nn.Module], nn.Module]
) -> None:
    first, again, other = networks[cls], build(cls, seed=0).eval(), build(cls, seed=1).eval()
    pairs = list(zip(first.state_dict().values(), again.state_dict().values(), strict=True))
    assert all(torch.equal(a, b) for a, b in pairs)
    x = batch((1, 2, 32, 32, 4))
    with torch.no_grad():
        outputs = [first(x), again(x), first(x), other(x)]
    assert torch.equal(outputs[0], outputs[1])
    assert torch.equal(outputs[0], outputs[2])  # deterministic on the CPU
    assert not torch.equal(outputs[0], outputs[3])


@pytest.mark.parametrize("cls", CLASSES)
def test_patients_do_not_affect_each_other_in_evaluation(
    cls: type[nn.Module], networks: dict[type[nn.Module], nn.Module]
) -> None:
    x = batch((3, 2, 32, 32, 4))
    with torch.no_grad():
        together, alone = networks[cls](x), networks[cls](x[1:2])
    torch.testing.assert_close(together[1:2], alone, rtol=1e-4, atol=1e-5)


def test_resnet_baseline_ignores_the_slice_order(networks: dict[type[nn.Module], nn.Module]) -> None:
    x = batch((2, 2, 32, 32, 5))
    with torch.no_grad():
        torch.testing.assert_close(networks[ResNet34Slices](x.flip(-1)), networks[ResNet34Slices](x))


def test_scanet_uses_the_slice_order(networks: dict[type[nn.Module], nn.Module]) -> None:
    x = batch((2, 2, 32, 32, 5))
    with torch.no_grad():
        assert not torch.allclose(networks[SCANet](x.flip(-1)), networks[SCANet](x), rtol=1e-4, atol=1e-5)


def test_scanet_neighbourhoods_cover_every_slice() -> None:
    with torch.device("meta"):
        model, strided, blocks = SCANet(), SCANet(stride=2), SCANet(neighbourhood=4, stride=4)
    assert model.windows(26) == list(range(24))  # 24 branches of 3 slices at the paper's size
    assert model.windows(2) == [0]
    assert model.windows(1) == [0]
    assert strided.windows(26) == [*range(0, 23, 2), 23]
    assert blocks.windows(8) == [0, 4]


def test_scanet_output_is_the_log_odds_of_the_weighted_softmax(
    networks: dict[type[nn.Module], nn.Module],
) -> None:
    model = networks[SCANet]
    assert isinstance(model, SCANet)
    x = batch(SMALL_INPUT)
    with torch.no_grad():
        logits = model(x)
        log_probabilities, log_weights, slice_weights = model.branches(x)
    branches = len(model.windows(8))
    assert log_probabilities.shape == (2, branches, 2)
    assert slice_weights.shape == (2, branches, 3)
    weights, probabilities = log_weights.exp(), log_probabilities.exp()
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(2))
    torch.testing.assert_close(probabilities.sum(dim=2), torch.ones(2, branches))
    torch.testing.assert_close(slice_weights.sum(dim=2), torch.ones(2, branches))
    favourable = (weights * probabilities[..., 1]).sum(dim=1, keepdim=True)
    torch.testing.assert_close(torch.sigmoid(logits), favourable, rtol=1e-5, atol=1e-6)


def test_networks_are_named_as_the_zoo_names_them() -> None:
    assert {"resnet34-2d": ResNet34Slices, "scanet": SCANet} == NETWORKS
